// One NVMe controller, whatever transport carries it (NVMe Base 2.0, 3.1 and
// 7; NVMe over Fabrics 1.1, 3.3). A fabrics controller is born from an admin
// Connect (see fabrics.h) and dies when its admin queue goes; a PCIe
// controller is created by its transport, one per emulated function, and
// lives as long as the function.
//
// Threading. A controller has a home reactor: its admin queue's (fabrics) or
// the one passed to create_pcie(). Admin commands, register access, the
// keep-alive timer, AERs and logs run there. I/O qpairs may live on other
// reactors; the I/O path reads only immutable state, atomics and the
// subsystem's namespace snapshot, and reaches the bdev through the per-reactor
// poll group. The methods the subsystem calls (cntlid, on_namespace_changed,
// on_subsystem_removed, info_json, qpairs_json) are safe from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nvme/log.h"
#include "nvme/registers.h"
#include "nvme/sqe.h"
#include "nvmf/request.h"
#include "nvmf/subsystem.h"
#include "nvmf/transport.h"

namespace nvemu {
class Reactor;
}

namespace nvemu::nvmf {

class Controller : public std::enable_shared_from_this<Controller> {
 public:
  enum class Kind : uint8_t { kFabrics, kPcie };

  // ---- Transport API -------------------------------------------------------

  // PCIe: one controller per emulated function. The transport keeps the
  // returned pointer; registers start in reset state (CC.EN=0). Returns
  // nullptr when the subsystem has no free controller ID.
  static std::shared_ptr<Controller> create_pcie(std::shared_ptr<Subsystem> subsys, QueueHost* host,
                                                 Reactor& home, const TransportOpts& opts);
  // Fabrics: called by the admin Connect (fabrics.cpp); not for transports.
  static std::shared_ptr<Controller> create_fabrics(std::shared_ptr<Subsystem> subsys,
                                                    Reactor& home, const TransportOpts& opts,
                                                    std::string hostnqn,
                                                    const std::array<uint8_t, 16>& hostid,
                                                    uint32_t kato_ms);
  ~Controller();

  // How many data bytes a command arriving on qp moves (0 = none), from the
  // command and the namespace's block size: PCIe transports need it to walk
  // PRPs/SGLs before execute(). On qp's reactor. For an unknown opcode or
  // namespace it returns 0 and execute() reports the error.
  uint32_t data_length(const nvme::Sqe& cmd, Qpair& qp) const;

  // Controller registers (Base 2.0, 3.1.3): BAR0 for PCIe, Property Get/Set
  // for fabrics. size is 4 or 8 bytes. Home reactor only. Reads of undefined
  // offsets return 0; writes to read-only or undefined offsets are ignored.
  uint64_t read_register(uint32_t offset, unsigned size);
  void write_register(uint32_t offset, uint64_t value, unsigned size);

  // Executes an admin (req->qpair->qid() == 0) or I/O command. Fabrics
  // transports go through submit_request() instead. Ends in exactly one
  // req->qpair->complete(req) on the qpair's reactor.
  void execute(Request* req);
  // execute() for a request already counted as received (submit_request).
  void dispatch(Request* req);

  // PCIe: the transport created a queue pair for this controller (the admin
  // queue on enable, an I/O queue on Create I/O SQ). On qp's reactor. Sets
  // qp->controller(). Fabrics qpairs are attached by Connect.
  void attach_qpair(Qpair* qp);

  // ---- Subsystem API (any thread) ------------------------------------------

  uint16_t cntlid() const { return cntlid_.load(std::memory_order_relaxed); }
  // Namespace nsid was added, removed or resized: Changed Namespace List log
  // plus a Namespace Attribute Changed event when the host enabled it.
  void on_namespace_changed(uint32_t nsid);
  // The subsystem is being deleted: disconnect every qpair.
  void on_subsystem_removed();
  // The discovery log changed (discovery controllers only): raise the
  // Discovery Log Page Change event when enabled.
  void on_discovery_changed();
  // nvmf_subsystem_get_controllers entry (SPDK shape).
  nlohmann::json info_json() const;
  // nvmf_subsystem_get_qpairs entries for this controller.
  nlohmann::json qpairs_json() const;
  // Calls fn for every queue listed (admin first, then I/O by qid), under
  // the lock that keeps them alive while listed: fn may read a queue's
  // identity and its IoState atomics, and must not call back into the
  // controller. The enumeration nvmf_subsystem_get_qpairs and the metrics use.
  void for_each_qpair(const std::function<void(const Qpair&)>& fn) const;

  // ---- Read-only accessors ---------------------------------------------------

  Kind kind() const { return kind_; }
  bool is_discovery() const { return discovery_; }
  const std::shared_ptr<Subsystem>& subsystem() const { return subsys_; }
  const std::string& hostnqn() const { return hostnqn_; }
  const std::array<uint8_t, 16>& hostid() const { return hostid_; }
  const TransportOpts& opts() const { return opts_; }
  Reactor& home() const { return *home_; }
  uint32_t kato_ms() const { return kato_ms_; }
  // CC.EN=1 and CSTS.RDY=1: I/O queues may connect and run.
  bool ready() const;
  uint32_t csts() const { return csts_.load(); }
  size_t num_io_qpairs() const;
  // Highest I/O queue ID allowed (Number of Queues).
  uint16_t max_io_qid() const { return static_cast<uint16_t>(opts_.max_io_qpairs_per_ctrlr); }

  // ---- Internal: used by the command files (admin.cpp, io.cpp, ...) ---------
  //
  // Everything below is the controller's own business, exposed to its
  // sibling .cpp files only.

  // Fabrics Connect for an I/O queue: adds qp under qid. Returns false when
  // qid is taken.
  bool add_io_qpair(Qpair* qp);
  void set_admin_qpair(Qpair* qp);
  void remove_qpair(Qpair* qp);
  void keep_alive() { last_keep_alive_us_.store(now_us()); }
  // Completion for every command: a delay fault may hold it back
  // (fault.h); then complete_now().
  void complete(Request* req);
  // Records a failure in the Error log and counts, then hands the request
  // back to its transport. On the request's qpair's reactor.
  void complete_now(Request* req);
  // Fails the controller: CSTS.CFS=1 and every qpair disconnected.
  void fail(const char* why);
  // The host was removed from the subsystem: every qpair goes. Any thread.
  void on_host_removed() { disconnect_all(true); }
  // The admin queue completed DH-HMAC-CHAP (nvmf/auth): I/O queues may
  // connect. Stays false for hosts without a key (nothing to check).
  std::atomic<bool> host_authenticated{false};

  // ---- Fault injection (fault_rpc.cpp), any thread ----------------------------
  // CSTS.CFS=1 (Base 2.0, 3.1.3.6; Property Get reads it on fabrics). A
  // controller reset (CC.EN 1->0) clears it. Commands keep running.
  void raise_cfs();
  // Ends the connection to the host as a link failure would: every TCP
  // connection of a fabrics controller, the vfio-user client socket of a
  // PCIe one (QueueHost::drop_host).
  void drop_connection();

  // SMART / Health counters (Base 2.0, 5.16.1.3): every I/O qpair's, live
  // ones and those gone. Any thread.
  struct SmartCounts {
    uint64_t units_read = 0, units_written = 0;  // 512-byte units
    uint64_t read_cmds = 0, write_cmds = 0, media_errors = 0;
  };
  SmartCounts smart_counts() const;

  // Per-controller feature values (Base 2.0, 5.27.1).
  struct Features {
    uint32_t arbitration = 0;
    uint32_t power_mgmt = 0;
    uint16_t temp_over = 0x0157;  // 343 K (70 C)
    uint16_t temp_under = 0;
    uint32_t error_recovery = 0;
    bool write_cache = true;
    uint32_t irq_coalescing = 0;
    std::map<uint16_t, uint32_t> irq_vector_config;
    uint32_t write_atomicity = 0;
    uint32_t async_event_config = 0;
    uint32_t num_queues_set = 0;  // 0: never set
  };

 private:
  Controller(Kind kind, std::shared_ptr<Subsystem> subsys, Reactor& home,
             const TransportOpts& opts);
  static uint64_t now_us();
  void start_keep_alive_timer();
  void stop_keep_alive_timer();
  void check_keep_alive();
  void disable();
  void shutdown();
  void enable();
  void disconnect_all(bool include_admin);
  // `reactor` is qp's, read while qp was known attached (qp may be gone now).
  void disconnect_on_reactor(Qpair* qp, Reactor& reactor);
  void maybe_finish_destroy();
  // qp is one of this controller's queues (still listed). Any thread.
  bool attached(const Qpair* qp) const;
  void record_error(const Request* req);

  // Command families, one file each. A handler returns the status to
  // complete with, or nullopt when it completes the request later itself.
  using Result = std::optional<nvme::Status>;
  void exec_admin(Request* req);                              // admin.cpp
  Result identify(Request* req);                              // admin.cpp
  Result identify_controller(Request* req);                   // admin.cpp
  Result abort_cmd(Request* req);                             // admin.cpp
  Result queue_cmd(Request* req);                             // admin.cpp (PCIe)
  Result get_log_page(Request* req);                          // logs.cpp
  Result get_features(Request* req);                          // features.cpp
  Result set_features(Request* req);                          // features.cpp
  void build_discovery_log(std::vector<uint8_t>& out) const;  // discovery.cpp
  void exec_io(Request* req);                                 // io.cpp

 public:
  // Asynchronous events (aer.cpp). Home reactor only.
  Result aer_submit(Request* req);
  void aer_raise(uint8_t type, uint8_t info, uint8_t log_page);
  void aer_clear(uint8_t log_page);  // the host read the page with RAE=0
  void aer_abort_all();
  bool aer_abort(uint16_t cid);

 private:
  void aer_dispatch();

  // Changed namespaces since the last read of log 04h.
  void note_changed_ns(uint32_t nsid);

  const Kind kind_;
  const bool discovery_;
  std::shared_ptr<Subsystem> subsys_;
  Reactor* home_;
  QueueHost* qhost_ = nullptr;
  TransportOpts opts_;
  std::atomic<uint16_t> cntlid_{0};
  std::string hostnqn_;
  std::array<uint8_t, 16> hostid_{};
  uint8_t host_behavior_acre_ = 0;  // Host Behavior Support: Advanced Command Retry
  uint64_t created_us_;

  // Registers.
  nvme::Cap cap_{};
  std::atomic<uint32_t> cc_{0}, csts_{0};
  uint32_t aqa_ = 0, intms_ = 0;
  uint64_t asq_ = 0, acq_ = 0;

  // Keep alive, in ms (0 = off).
  uint32_t kato_ms_ = 0;
  std::atomic<uint64_t> last_keep_alive_us_{0};
  std::shared_ptr<uint64_t> kato_timer_;  // shared with the timer callback

  // Qpairs.
  mutable std::mutex qp_mu_;
  Qpair* admin_qp_ = nullptr;
  std::map<uint16_t, Qpair*> io_qps_;
  bool admin_gone_ = false;
  bool unregistered_ = false;

  // Admin-side state (home reactor).
  Features feat_;
  std::vector<Request*> aer_reqs_;
  std::deque<uint32_t> aer_pending_;  // packed cdw0 values
  uint32_t aer_masked_ = 0;           // bit per log page class awaiting a read
  std::vector<uint32_t> changed_ns_;
  bool changed_ns_overflow_ = false;
  std::shared_ptr<const NamespaceTable> seen_ns_;

  // Error log (any reactor adds, home reads).
  mutable std::mutex err_mu_;
  std::deque<nvme::ErrorLogEntry> errors_;
  uint64_t error_count_ = 0;

  SmartCounts smart_gone_;  // of qpairs already removed (qp_mu_)
};

}  // namespace nvemu::nvmf
