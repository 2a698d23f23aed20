// The controller <-> transport contract, part 2: transports and queue pairs.
//
// A Transport owns listeners and the connections/functions behind them; each
// queue it serves is a Qpair bound to one reactor. The controller talks back
// only through Qpair (complete a request, drop the queue) and, for
// transports whose queues live in host memory (PCIe), through QueueHost.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/counter.h"
#include "nvme/sqe.h"
#include "nvmf/request.h"
#include "nvmf/subsystem.h"

namespace nvemu {
class Reactor;
}

namespace nvemu::nvmf {

class Controller;
struct NsChannel;
struct QpairAuth;
class PollGroup;

// Options every transport takes (nvmf_create_transport, SPDK names).
struct TransportOpts {
  std::string trtype;
  uint32_t max_queue_depth = 128;
  uint32_t max_io_qpairs_per_ctrlr = 127;
  uint32_t in_capsule_data_size = 4096;
  uint32_t max_io_size = 131072;
  uint32_t io_unit_size = 131072;
  uint32_t max_aq_depth = 128;
  uint32_t num_shared_buffers = 511;
  uint32_t buf_cache_size = 32;
  bool dif_insert_or_strip = false;
  uint32_t abort_timeout_sec = 1;
  bool zcopy = false;
  uint32_t acceptor_poll_rate = 10000;
  nlohmann::json specific = nlohmann::json::object();  // transport-only options (c2h_success, ...)
  nlohmann::json to_json() const;                      // nvmf_get_transports entry
};

class Qpair {
 public:
  Qpair(Reactor& reactor, uint16_t qid, uint32_t sq_size)
      : reactor_(&reactor), qid_(qid), sq_size_(sq_size) {}
  virtual ~Qpair() = default;

  Reactor& reactor() const { return *reactor_; }
  uint16_t qid() const { return qid_; }
  uint32_t sq_size() const { return sq_size_; }
  const std::shared_ptr<Controller>& controller() const { return ctrlr_; }
  void set_controller(std::shared_ptr<Controller> c) { ctrlr_ = std::move(c); }

  // Controller -> transport, on this qpair's reactor, exactly once per request
  // the controller received (submit_request, Controller::execute). Not
  // virtual: every completion passes the queue's counters (IoState) on its
  // way to the transport's deliver(). A request the transport fails on its
  // own, before handing it in, goes to deliver() directly.
  void complete(Request* req) {
    io.completed(req->status);
    deliver(req);
  }
  // Controller -> transport: stop serving this queue (keep-alive expired,
  // controller failed or deleted). The transport tears it down asynchronously
  // and must still complete or abort every request it has handed in.
  virtual void disconnect() = 0;
  virtual std::string trtype() const = 0;
  virtual nlohmann::json peer_json() const { return nlohmann::json::object(); }

 protected:
  // Transport: send req's completion to the host (complete() calls it).
  virtual void deliver(Request* req) = 0;

 public:
  // ---- Controller-private: the I/O path's per-queue state (nvmf/io.cpp) ----
  // Touched only on this qpair's reactor; transports leave it alone.
  struct IoState {
    PollGroup* group = nullptr;  // this reactor's, once looked up
    // Namespace channels by nsid - 1, valid while the subsystem's
    // namespace generation equals `generation`.
    uint64_t generation = ~uint64_t{0};
    std::vector<NsChannel*> channels;
    // Fused Compare and Write: the first half waits here for the second.
    Request* fused_first = nullptr;
    // SMART counters of this queue: one writer, read by the controller
    // (Get Log Page) from its own reactor, folded into its totals when the
    // queue goes.
    std::atomic<uint64_t> units_read{0}, units_written{0};  // 512-byte units
    std::atomic<uint64_t> read_cmds{0}, write_cmds{0}, media_errors{0};
    // Metrics (nvemu_qpair_*), read from the main thread while the queue is
    // listed by its controller: commands received and not yet completed
    // (AERs parked on the admin queue and commands a fault holds included),
    // and commands completed with a non-zero status. Entry and completion
    // both run on this qpair's reactor, so inflight has one writer too.
    std::atomic<uint64_t> inflight{0}, errors{0};
    void received() { add_single_writer(inflight, 1); }
    void completed(const nvme::Status& s) {
      inflight.store(inflight.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      if (!s.ok()) [[unlikely]]
        add_single_writer(errors, 1);
    }
  };
  IoState io;

  // ---- Controller-private: in-band authentication (nvmf/auth) ---------------
  // Set at Connect when the host must authenticate; on this qpair's reactor.
  std::shared_ptr<QpairAuth> auth;

 protected:
  void set_qid(uint16_t qid) { qid_ = qid; }
  void set_sq_size(uint32_t n) { sq_size_ = n; }

 private:
  Reactor* reactor_;
  uint16_t qid_;
  uint32_t sq_size_;
  std::shared_ptr<Controller> ctrlr_;
};

// For transports whose queues live in host memory (PCIe): the controller
// validates the admin command or register write, then asks the transport to
// act on host memory. A fabrics controller has no QueueHost, and those admin
// commands are then invalid opcodes, as the spec says.
class QueueHost {
 public:
  virtual ~QueueHost() = default;
  // CC.EN 0->1 with AQA/ASQ/ACQ programmed: map the admin queues. A non-OK
  // return sets CSTS.CFS.
  virtual bool on_enable() = 0;
  // CC.EN 1->0 or a controller reset: delete every queue, abort in-flight I/O.
  virtual void on_disable() = 0;
  // CC.SHN set: quiesce; the controller sets CSTS.SHST when this returns.
  virtual void on_shutdown() = 0;
  virtual nvme::Status create_io_cq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc, bool ien,
                                    uint16_t iv) = 0;
  virtual nvme::Status create_io_sq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc,
                                    uint16_t cqid, uint8_t qprio) = 0;
  virtual nvme::Status delete_io_cq(uint16_t qid) = 0;
  virtual nvme::Status delete_io_sq(uint16_t qid) = 0;
  // Fault injection: end the host's connection as a link failure would
  // (vfio-user: close the client socket). Any thread.
  virtual void drop_host() {}
};

class Transport {
 public:
  explicit Transport(TransportOpts opts) : opts_(std::move(opts)) {}
  virtual ~Transport() = default;
  const TransportOpts& opts() const { return opts_; }
  const std::string& trtype() const { return opts_.trtype; }

  // Main thread. Returns "" on success, else why not (address in use, ...).
  virtual std::string listen(const ListenAddress& addr) = 0;
  // The same, for the subsystem the listener is added to. Called once per
  // address (the target reference-counts addresses shared by subsystems).
  // Transports whose listener *is* one controller (a PCIe function) need the
  // subsystem; the others ignore it.
  virtual std::string listen_for_subsystem(const ListenAddress& addr, const std::string& subnqn) {
    (void)subnqn;
    return listen(addr);
  }
  virtual void stop_listen(const ListenAddress& addr) = 0;
  // Main thread: a subsystem or one of its listeners is going away; drop
  // every qpair of that subsystem (reached through addr when given).
  virtual void disconnect_subsystem(const std::string& nqn) { (void)nqn; }
  virtual nlohmann::json stats_json() const { return nlohmann::json::object(); }

 protected:
  TransportOpts opts_;
};

}  // namespace nvemu::nvmf
