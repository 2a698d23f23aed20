// One emulated NVMe PCIe function served over vfio-user: a Unix socket at
// <dir>/cntrl (as SPDK names it), at most one client at a time, and behind
// it the function's config space, BAR0 (controller registers + doorbells),
// interrupts, the client's DMA maps, the NVMe queues and one PCIe
// Controller that lives as long as the function.
//
// Threading. Everything runs on the endpoint's reactor (the controller's
// home): socket, messages, polling. create() and destroy() may be called
// from any thread.
//
// Doorbells. BAR0's doorbell page (0x1000..0x1fff) is a memfd page the
// client mmaps (sparse mmap area), so a host writes doorbells without a
// message. The reactor polls them every pass; when it goes to sleep, the
// endpoint's poller bounds the sleep to `idle_poll_us` (default 200 us;
// Reactor::limit_sleep_us) while queues exist. Trade-off: an idle target
// costs ~1/idle_poll_us wakeups per second instead of a spinning core, and
// the first command after an idle period waits up to idle_poll_us (later
// ones see polling latency while the reactor spins after work).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nvmf/transport.h"
#include "nvmf/vfio_user/dma.h"
#include "nvmf/vfio_user/irq.h"
#include "nvmf/vfio_user/pci_config.h"
#include "nvmf/vfio_user/queues.h"
#include "reactor/reactor.h"
#include "wire/vfio_user/msg_socket.h"

namespace nvemu::nvmf {
class Controller;
}

namespace nvemu::vfio_user {

struct EndpointStats {
  uint64_t messages = 0, errors = 0, clients = 0, rejected_clients = 0;
};

class Endpoint : public std::enable_shared_from_this<Endpoint> {
 public:
  // Creates <dir>/cntrl (and dir when missing; a stale socket file is
  // replaced, a live one refused) and the function's controller for subsys;
  // starts serving on `reactor`. nullptr with *error on failure.
  static std::shared_ptr<Endpoint> create(const std::string& dir,
                                          std::shared_ptr<nvmf::Subsystem> subsys, Reactor& reactor,
                                          const nvmf::TransportOpts& opts, std::string* error);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Any thread. Stops listening, drops the client, and once every request
  // in flight has come back frees the function; `done` then runs on the
  // endpoint's reactor.
  void destroy(std::function<void()> done = {});

  const std::string& dir() const { return dir_; }
  const std::string& socket_path() const { return path_; }
  const std::string& subnqn() const { return subnqn_; }
  Reactor& reactor() const { return reactor_; }
  nlohmann::json info_json() const;  // owner reactor
  // CSTS.RDY=1 and not shut down: a host driver is using the controller.
  bool controller_ready() const;  // owner reactor

  // Handles one request as if the attached client had sent it; the reply
  // goes to the client socket. For the message fuzzer and protocol tests.
  void handle_message(Message& m);
  // Attaches an already-connected socket as the client (tests, fuzzing).
  void attach_client(int fd);

 private:
  Endpoint(Reactor& reactor, const nvmf::TransportOpts& opts);
  bool init(const std::string& dir, std::shared_ptr<nvmf::Subsystem> subsys, std::string* error);
  void start();
  void on_accept();
  void on_client_event(uint32_t events);
  void drop_client(const std::string& why);
  void device_reset();
  int poll();
  void finish_destroy_if_drained();
  void finish_destroy();

  // Replies (endpoint_msgs.cpp).
  void reply(const Message& req, const void* payload, size_t len, const int* fds = nullptr,
             size_t nfds = 0);
  void reply_error(const Message& req, int err, const std::string& why);
  int dispatch(Message& m, std::string* why);
  int on_version(Message& m, std::string* why);
  int on_dma_map(Message& m, std::string* why);
  int on_dma_unmap(Message& m, std::string* why);
  int on_get_info(Message& m, std::string* why);
  int on_region_info(Message& m, std::string* why);
  int on_irq_info(Message& m, std::string* why);
  int on_set_irqs(Message& m, std::string* why);
  int on_region_read(Message& m, std::string* why);
  int on_region_write(Message& m, std::string* why);
  int on_reset(Message& m, std::string* why);
  // Region access: 0 or an errno.
  int region_access(uint32_t region, uint64_t offset, uint8_t* data, uint32_t count, bool write,
                    std::string* why);
  int bar0_access(uint64_t offset, uint8_t* data, uint32_t count, bool write, std::string* why);
  int config_access(uint64_t offset, uint8_t* data, uint32_t count, bool write, std::string* why);

  Reactor& reactor_;
  nvmf::TransportOpts opts_;
  std::string dir_, path_, subnqn_;
  UniqueFd listen_fd_, client_fd_, doorbell_fd_;
  pid_t client_pid_ = 0;
  uint32_t* doorbells_ = nullptr;  // mmap of the memfd's doorbell page
  PciConfig config_;
  Irqs irqs_{config_};
  DmaTable dma_;
  Queues queues_;
  std::shared_ptr<nvmf::Controller> ctrlr_;
  MsgReader reader_;
  bool negotiated_ = false;
  Reactor::PollerId poller_ = 0;
  uint32_t idle_poll_us_ = 200;
  bool destroying_ = false;
  bool finishing_ = false;
  std::function<void()> on_destroyed_;
  std::shared_ptr<Endpoint> self_;  // held while destroying
  EndpointStats stats_;
};

}  // namespace nvemu::vfio_user
