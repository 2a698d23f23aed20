// A named remote controller (bdev_nvme_attach_controller's `name`): its
// paths (one trid, or several with multipath failover), the connection in
// use, one ReactorPath per reactor and one NsBdev per active namespace.
// Main reactor only. Its state machine, as SPDK's bdev_nvme:
//
//   enabled ── qpair/admin lost, or reset ──► resetting ──ok──► enabled
//                                               │ fail
//                                               ▼
//      reconnect_is_delayed ◄── reconnect_delay_sec ──► resetting ...
//   fast_io_fail_timeout_sec after the loss: queued I/O fails, new I/O fails
//   ctrlr_loss_timeout_sec after the loss: deleted (bdevs removed); 0 means
//   one attempt, then "failed"; -1 means never.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bdev/nvme/channel.h"
#include "bdev/nvme/options.h"
#include "bdev/nvme/path.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::nvme {

class NsBdev;

// What a blocking bring-up on a worker thread produced.
struct Connection {
  std::unique_ptr<AdminPath> admin;
  CtrlrInfo info;
  std::vector<std::unique_ptr<IoQpair>> qpairs;  // by reactor index; null where not wanted
  std::string error;
  int err_no = 0;
};

// Worker thread: connect, bring up, and connect I/O qpair i + 1 for each
// reactor index i that `wanted` marks. `depth` 0 takes the controller's limit.
Connection connect_all(const Trid& trid, const PathOptions& opts, const std::vector<char>& wanted,
                       uint16_t depth);
// Which reactors get an I/O qpair at connect time: all of them for vfio-user
// (its queues are created through the admin queue, which the main reactor
// owns once connected); none for TCP, whose qpairs are made when a reactor
// first opens a channel.
std::vector<char> initially_wanted(Trtype t);

class Ctrlr : public std::enable_shared_from_this<Ctrlr> {
 public:
  enum class State { kEnabled, kResetting, kReconnectDelayed, kFailed, kDeleting };

  Ctrlr(std::string name, Trid trid, PathOptions popts, Resiliency res);
  ~Ctrlr();
  // After make_shared: one ReactorPath per reactor.
  void init();

  const std::string& name() const { return name_; }
  State state() const { return state_; }
  const char* state_str() const;
  const std::vector<Trid>& trids() const { return trids_; }
  const Trid& active_trid() const { return trids_[active_]; }
  const PathOptions& path_options() const { return popts_; }
  const Resiliency& resiliency() const { return res_; }
  const CtrlrInfo& info() const { return info_; }
  std::vector<std::string> bdev_names() const;

  // Takes over a fresh connection: qpairs to their reactors, admin polling,
  // keep-alive, AER, and the namespaces' bdevs.
  void take_over(Connection conn);
  // A second path (multipath failover).
  void add_trid(const Trid& t) { trids_.push_back(t); }
  // Removes one path; false when it is the only one (detach the controller).
  bool remove_trid(size_t index);

  // bdev_nvme_reset_controller: disconnect everything, connect again.
  // "" or why not (busy, deleting); `done` gets "" or the reconnect error.
  std::string reset(std::function<void(const std::string&)> done);
  // Detach: bdevs removed, qpairs closed; the registry entry goes too.
  // `stopped`: the reactors no longer run (app shutdown), so their paths
  // are shut down here.
  void destroy(const char* why, bool stopped = false);

  nlohmann::json info_json() const;                                    // bdev_nvme_get_controllers
  nlohmann::json namespace_json(uint32_t nsid, bool can_share) const;  // driver_specific
  void config_entries(nlohmann::json& out) const;                      // save_config

 private:
  friend struct Rescan;
  void path_lost(uint64_t gen, const std::string& why);
  void begin_reset(bool failover, const std::string& why);
  void connect_attempt();
  void reconnect_done(Connection c, uint64_t gen);
  void teardown_admin();
  // A reactor opened its first channel: give it a qpair.
  void want(size_t index);
  void make_qpair(size_t index);  // on a worker, for the current connection
  void qpair_made(size_t index, uint64_t gen, std::unique_ptr<IoQpair> qp, const std::string& err);
  uint16_t io_depth() const;
  void poll_admin();
  void send_all(void (ReactorPath::*fn)());
  void apply_namespaces(const std::vector<NsInfo>& list);
  void finish_resets(const std::string& err);
  // Asynchronous admin command on the current connection; fn is dropped if
  // the connection goes away first.
  bool admin_cmd(const ::nvemu::nvme::Sqe& sqe, void* buf, uint32_t len,
                 std::function<void(const ::nvemu::nvme::Cqe&)> fn);
  // aen.cpp
  void arm_aer();
  void on_aer(const ::nvemu::nvme::Cqe& cqe);
  void rescan();

  std::string name_;
  std::vector<Trid> trids_;
  size_t active_ = 0;
  PathOptions popts_;
  Resiliency res_;
  State state_ = State::kResetting;
  CtrlrInfo info_;
  // Shared with a worker making a qpair on it; released on the main reactor.
  std::shared_ptr<AdminPath> admin_;
  std::vector<char> wanted_;  // by reactor index: has or needs a qpair
  uint64_t gen_ = 1;          // bumped whenever the connection is torn down
  uint64_t reset_start_us_ = 0;
  int admin_fd_ = -1;
  Reactor::TimerId admin_timer_ = 0, keep_alive_timer_ = 0, reconnect_timer_ = 0,
                   fast_fail_timer_ = 0;
  bool fast_failed_ = false;
  // Sends what admin_cmd queued at the end of the pass: polling the queue
  // from inside one of its own completion callbacks would re-enter it.
  std::unique_ptr<Reactor::PassTask> admin_flush_;
  std::vector<std::shared_ptr<ReactorPath>> paths_;  // by reactor index
  std::map<uint32_t, std::shared_ptr<NsBdev>> ns_;
  std::vector<std::function<void(const std::string&)>> reset_waiters_;
};

// Controllers by name. Main thread.
std::map<std::string, std::shared_ptr<Ctrlr>>& ctrlrs();
std::shared_ptr<Ctrlr> find_ctrlr(const std::string& name);

void register_rpcs();
// Joins attach/reconnect workers and drops every controller (app shutdown).
void shutdown();

}  // namespace nvemu::bdev::nvme
