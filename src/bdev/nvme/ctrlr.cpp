#include "bdev/nvme/ctrlr.h"

#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "bdev/nvme/ns_bdev.h"
#include "common/log.h"
#include "reactor/offload.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

Reactor& main_reactor() {
  return ReactorSet::instance().main();
}

}  // namespace

Connection connect_all(const Trid& trid, const PathOptions& opts, const std::vector<char>& wanted,
                       uint16_t depth) {
  Connection c;
  PathOptions o = opts;
  o.io_qpairs = wanted.size();
  c.admin = connect_path(trid, o, &c.error, &c.err_no);
  if (!c.admin) return c;
  c.error = c.admin->bring_up(&c.info);
  if (!c.error.empty()) {
    c.error = fmt::format("bring-up of {} failed: {}", trid.describe(), c.error);
    c.err_no = EIO;
    c.admin.reset();
    return c;
  }
  uint16_t d = depth ? std::min(depth, c.info.io_depth) : c.info.io_depth;
  c.qpairs.resize(wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (!wanted[i]) continue;
    c.qpairs[i] = c.admin->create_io_qpair(static_cast<uint16_t>(i + 1), d, &c.error);
    if (!c.qpairs[i]) {
      c.err_no = EIO;
      c.qpairs.clear();
      c.admin.reset();
      return c;
    }
  }
  return c;
}

std::vector<char> initially_wanted(Trtype t) {
  return std::vector<char>(ReactorSet::instance().size(), t == Trtype::kVfioUser ? 1 : 0);
}

Ctrlr::Ctrlr(std::string name, Trid trid, PathOptions popts, Resiliency res)
    : name_(std::move(name)), popts_(std::move(popts)), res_(res) {
  trids_.push_back(std::move(trid));
}

Ctrlr::~Ctrlr() {
  teardown_admin();
}

void Ctrlr::init() {
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  auto& set = ReactorSet::instance();
  admin_flush_ = std::make_unique<Reactor::PassTask>(main_reactor(), [weak] {
    if (auto c = weak.lock()) c->poll_admin();
  });
  wanted_ = initially_wanted(active_trid().trtype);
  for (size_t i = 0; i < set.size(); ++i) {
    paths_.push_back(std::make_shared<ReactorPath>(
        set.at(i),
        [weak](uint64_t gen) {
          main_reactor().send([weak, gen] {
            if (auto c = weak.lock()) c->path_lost(gen, "an I/O qpair failed");
          });
        },
        [weak, i] {
          main_reactor().send([weak, i] {
            if (auto c = weak.lock()) c->want(i);
          });
        }));
  }
}

const char* Ctrlr::state_str() const {
  switch (state_) {
    case State::kDeleting:
      return "deleting";
    case State::kFailed:
      return "failed";
    case State::kResetting:
      return "resetting";
    case State::kReconnectDelayed:
      return "reconnect_is_delayed";
    case State::kEnabled:
      break;
  }
  return "enabled";
}

std::vector<std::string> Ctrlr::bdev_names() const {
  std::vector<std::string> out;
  for (const auto& [nsid, b] : ns_) out.push_back(b->name());
  return out;
}

void Ctrlr::send_all(void (ReactorPath::*fn)()) {
  for (auto& p : paths_) p->reactor().send([p, fn] { ((*p).*fn)(); });
}

void Ctrlr::take_over(Connection conn) {
  admin_ = std::move(conn.admin);
  info_ = std::move(conn.info);
  state_ = State::kEnabled;
  reset_start_us_ = 0;
  fast_failed_ = false;
  if (fast_fail_timer_) main_reactor().cancel_timer(std::exchange(fast_fail_timer_, 0));
  const uint64_t gen = gen_;
  std::vector<char> got(paths_.size(), 0);
  for (size_t i = 0; i < paths_.size(); ++i) {
    if (i >= conn.qpairs.size() || !conn.qpairs[i]) continue;
    got[i] = 1;
    auto held = std::make_shared<std::unique_ptr<IoQpair>>(std::move(conn.qpairs[i]));
    auto p = paths_[i];
    p->reactor().send([p, held, gen] { p->attach(std::move(*held), gen); });
  }
  Reactor& m = main_reactor();
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  admin_fd_ = admin_->fd();
  if (admin_fd_ >= 0)
    m.add_fd(admin_fd_, EPOLLIN, [weak](uint32_t) {
      if (auto c = weak.lock()) c->poll_admin();
    });
  uint64_t period = std::max<uint64_t>(options().nvme_adminq_poll_period_us, 1000);
  admin_timer_ = m.add_timer(
      microseconds(period),
      [weak] {
        if (auto c = weak.lock()) c->poll_admin();
      },
      microseconds(period));
  // Keep-alive at half the timeout we connected with, as SPDK does.
  if (popts_.kato_ms) {
    keep_alive_timer_ = m.add_timer(
        milliseconds(popts_.kato_ms / 2),
        [weak] {
          auto c = weak.lock();
          if (!c || c->state_ != State::kEnabled) return;
          n::Sqe s{};
          s.opc = 0x18;
          c->admin_cmd(s, nullptr, 0, [](const n::Cqe&) {});
        },
        milliseconds(popts_.kato_ms / 2));
  }
  // Reactors that asked while this connection was being made.
  for (size_t i = 0; i < paths_.size(); ++i)
    if (wanted_[i] && !got[i]) make_qpair(i);
  arm_aer();
  apply_namespaces(info_.namespaces);
  finish_resets("");
}

void Ctrlr::teardown_admin() {
  Reactor* m = ReactorSet::instance().created() ? &main_reactor() : nullptr;
  if (m) {
    if (admin_fd_ >= 0) m->remove_fd(admin_fd_);
    for (auto* t : {&admin_timer_, &keep_alive_timer_})
      if (*t) m->cancel_timer(std::exchange(*t, 0));
  }
  admin_fd_ = -1;
  // Pending admin callbacks run now (or when a worker's qpair attempt comes
  // back) and see a newer generation.
  std::shared_ptr<AdminPath> old = std::move(admin_);
  old.reset();
}

bool Ctrlr::admin_cmd(const n::Sqe& sqe, void* buf, uint32_t len,
                      std::function<void(const n::Cqe&)> fn) {
  if (!admin_) return false;
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  uint64_t gen = gen_;
  bool to_ctrlr = false;
  bool ok = admin_->submit_admin(sqe, buf, len, to_ctrlr,
                                 [weak, gen, fn = std::move(fn)](const n::Cqe& c) {
                                   auto self = weak.lock();
                                   if (!self || self->gen_ != gen) return;
                                   fn(c);
                                 });
  if (ok) admin_flush_->schedule();
  return ok;
}

void Ctrlr::poll_admin() {
  if (!admin_ || state_ != State::kEnabled) return;
  if (admin_->poll() < 0 || admin_->failed()) path_lost(gen_, "admin queue: " + admin_->error());
}

void Ctrlr::path_lost(uint64_t gen, const std::string& why) {
  if (gen != gen_ || state_ != State::kEnabled) return;
  LOG_WARN("bdev_nvme", "{}: connection to {} lost ({}); I/O is queued while it reconnects", name_,
           active_trid().describe(), why);
  begin_reset(true, why);
}

void Ctrlr::begin_reset(bool failover, const std::string& why) {
  (void)why;
  state_ = State::kResetting;
  ++gen_;
  if (!reset_start_us_) reset_start_us_ = Reactor::now_us();
  teardown_admin();
  send_all(&ReactorPath::detach);
  if (failover && trids_.size() > 1) {
    active_ = (active_ + 1) % trids_.size();
    LOG_NOTICE("bdev_nvme", "{}: failing over to {}", name_, active_trid().describe());
  }
  if (res_.fast_io_fail_timeout_sec && !fast_fail_timer_ && !fast_failed_) {
    std::weak_ptr<Ctrlr> weak = weak_from_this();
    fast_fail_timer_ = main_reactor().add_timer(seconds(res_.fast_io_fail_timeout_sec), [weak] {
      auto c = weak.lock();
      if (!c) return;
      c->fast_fail_timer_ = 0;
      if (c->state_ == State::kEnabled || c->state_ == State::kDeleting) return;
      LOG_WARN("bdev_nvme", "{}: fast_io_fail_timeout_sec ({}) passed; failing queued I/O",
               c->name_, c->res_.fast_io_fail_timeout_sec);
      c->fast_failed_ = true;
      c->send_all(&ReactorPath::fail_fast);
    });
  }
  connect_attempt();
}

void Ctrlr::connect_attempt() {
  state_ = State::kResetting;
  auto self = shared_from_this();
  auto conn = std::make_shared<Connection>();
  uint64_t gen = gen_;
  Trid t = active_trid();
  PathOptions po = popts_;
  std::vector<char> wanted = wanted_;
  uint16_t depth = static_cast<uint16_t>(options().io_queue_requests);
  offload([conn, t, po, wanted, depth] { *conn = connect_all(t, po, wanted, depth); },
          [self, conn, gen] { self->reconnect_done(std::move(*conn), gen); });
}

uint16_t Ctrlr::io_depth() const {
  uint16_t depth = static_cast<uint16_t>(options().io_queue_requests);
  return depth ? std::min(depth, info_.io_depth) : info_.io_depth;
}

void Ctrlr::want(size_t index) {
  if (index >= wanted_.size() || wanted_[index]) return;
  wanted_[index] = 1;
  if (state_ != State::kEnabled || !admin_) return;  // the next connection brings it
  make_qpair(index);
}

void Ctrlr::make_qpair(size_t index) {
  // Connecting an I/O qpair blocks; it reads only what bring-up fixed, so a
  // worker does it while the main reactor keeps driving the admin queue.
  auto self = shared_from_this();
  auto admin = admin_;
  auto held = std::make_shared<std::unique_ptr<IoQpair>>();
  auto err = std::make_shared<std::string>();
  uint64_t gen = gen_;
  uint16_t depth = io_depth();
  offload(
      [admin, held, err, index, depth] {
        *held = admin->create_io_qpair(static_cast<uint16_t>(index + 1), depth, err.get());
      },
      [self, admin, held, err, index, gen] {
        self->qpair_made(index, gen, std::move(*held), *err);
      });
}

void Ctrlr::qpair_made(size_t index, uint64_t gen, std::unique_ptr<IoQpair> qp,
                       const std::string& err) {
  if (gen != gen_ || state_ != State::kEnabled) return;  // a reconnect brings one
  if (!qp) {
    path_lost(gen, "I/O qpair for reactor " + std::to_string(index) + ": " + err);
    return;
  }
  auto held = std::make_shared<std::unique_ptr<IoQpair>>(std::move(qp));
  auto p = paths_[index];
  p->reactor().send([p, held, gen] { p->attach(std::move(*held), gen); });
}

void Ctrlr::reconnect_done(Connection c, uint64_t gen) {
  if (state_ == State::kDeleting || gen != gen_) return;  // c closes as it goes
  if (c.error.empty()) {
    LOG_NOTICE("bdev_nvme", "{}: reconnected to {}", name_, active_trid().describe());
    take_over(std::move(c));
    return;
  }
  LOG_WARN("bdev_nvme", "{}: reconnect to {} failed: {}", name_, active_trid().describe(), c.error);
  finish_resets(c.error);
  uint64_t elapsed_us = Reactor::now_us() - reset_start_us_;
  if (res_.ctrlr_loss_timeout_sec == 0) {
    state_ = State::kFailed;
    fast_failed_ = true;
    send_all(&ReactorPath::fail_fast);
    return;
  }
  if (res_.ctrlr_loss_timeout_sec > 0 &&
      elapsed_us >= static_cast<uint64_t>(res_.ctrlr_loss_timeout_sec) * 1000000) {
    destroy("ctrlr_loss_timeout_sec passed");
    return;
  }
  state_ = State::kReconnectDelayed;
  if (trids_.size() > 1) active_ = (active_ + 1) % trids_.size();
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  reconnect_timer_ = main_reactor().add_timer(seconds(res_.reconnect_delay_sec), [weak] {
    auto c = weak.lock();
    if (!c) return;
    c->reconnect_timer_ = 0;
    if (c->state_ == State::kReconnectDelayed) c->connect_attempt();
  });
}

void Ctrlr::finish_resets(const std::string& err) {
  auto waiters = std::move(reset_waiters_);
  reset_waiters_.clear();
  for (auto& w : waiters) w(err);
}

std::string Ctrlr::reset(std::function<void(const std::string&)> done) {
  if (state_ == State::kDeleting) return "controller is being deleted";
  if (state_ == State::kResetting) return "controller is already resetting";
  reset_waiters_.push_back(std::move(done));
  if (state_ == State::kEnabled) {
    reset_start_us_ = 0;
    begin_reset(false, "reset requested");
    return "";
  }
  // Failed or waiting to reconnect: try now.
  if (reconnect_timer_) main_reactor().cancel_timer(std::exchange(reconnect_timer_, 0));
  ++gen_;
  connect_attempt();
  return "";
}

bool Ctrlr::remove_trid(size_t index) {
  if (trids_.size() <= 1) return false;
  bool was_active = index == active_;
  trids_.erase(trids_.begin() + static_cast<long>(index));
  if (index < active_) --active_;
  if (active_ >= trids_.size()) active_ = 0;
  if (was_active && state_ == State::kEnabled) begin_reset(false, "its path was removed");
  return true;
}

void Ctrlr::destroy(const char* why, bool stopped) {
  if (state_ == State::kDeleting) return;
  LOG_NOTICE("bdev_nvme", "{}: deleting ({})", name_, why);
  state_ = State::kDeleting;
  ++gen_;
  Reactor& m = main_reactor();
  for (auto* t : {&reconnect_timer_, &fast_fail_timer_})
    if (*t) m.cancel_timer(std::exchange(*t, 0));
  teardown_admin();
  auto self = shared_from_this();  // the registry's reference goes below
  auto bdevs = std::move(ns_);
  ns_.clear();
  for (auto& [nsid, b] : bdevs) Registry::instance().remove(b->name());
  if (stopped)
    for (auto& p : paths_) p->shutdown();
  else
    send_all(&ReactorPath::shutdown);
  finish_resets(fmt::format("controller {} was deleted", name_));
  auto it = ctrlrs().find(name_);
  if (it != ctrlrs().end() && it->second == self) ctrlrs().erase(it);
}

void Ctrlr::apply_namespaces(const std::vector<NsInfo>& list) {
  std::map<uint32_t, const NsInfo*> want;
  for (const auto& ns : list) want[ns.nsid] = &ns;
  for (auto it = ns_.begin(); it != ns_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    LOG_NOTICE("bdev_nvme", "{}: namespace {} went away; removing bdev {}", name_, it->first,
               it->second->name());
    Registry::instance().remove(it->second->name());
    it = ns_.erase(it);
  }
  for (const auto& [nsid, ns] : want) {
    if (ns_.count(nsid)) continue;
    auto b = std::make_shared<NsBdev>(name_, *ns, weak_from_this(), paths_);
    if (!Registry::instance().add(b)) {
      LOG_ERROR("bdev_nvme", "{}: a bdev named {} already exists; namespace {} is not exposed",
                name_, b->name(), nsid);
      continue;
    }
    LOG_NOTICE("bdev_nvme", "{}: namespace {} is bdev {}", name_, nsid, b->name());
    ns_[nsid] = b;
  }
}

nlohmann::json Ctrlr::info_json() const {
  nlohmann::json trid = nlohmann::json::object();
  active_trid().dump(trid);
  return {{"state", state_str()},
          {"trid", trid},
          {"cntlid", info_.cntlid},
          {"host",
           {{"nqn", popts_.hostnqn},
            {"addr", active_trid().hostaddr},
            {"svcid", active_trid().hostsvcid}}}};
}

nlohmann::json Ctrlr::namespace_json(uint32_t nsid, bool can_share) const {
  nlohmann::json trid = nlohmann::json::object();
  active_trid().dump(trid);
  nlohmann::json cd = {{"cntlid", info_.cntlid},
                       {"vendor_id", fmt::format("{:#06x}", info_.vid)},
                       {"model_number", info_.mn},
                       {"serial_number", info_.sn},
                       {"firmware_revision", info_.fr},
                       {"oacs",
                        {{"security", info_.oacs & 1},
                         {"format", (info_.oacs >> 1) & 1},
                         {"firmware", (info_.oacs >> 2) & 1},
                         {"ns_manage", (info_.oacs >> 3) & 1}}},
                       {"multi_ctrlr", (info_.cmic & 2) != 0},
                       {"ana_reporting", (info_.cmic & 8) != 0}};
  if (!info_.subnqn.empty()) cd["subnqn"] = info_.subnqn;
  uint32_t mjr = info_.ver >> 16, mnr = (info_.ver >> 8) & 0xff, ter = info_.ver & 0xff;
  std::string ver = ter ? fmt::format("{}.{}.{}", mjr, mnr, ter) : fmt::format("{}.{}", mjr, mnr);
  nlohmann::json j = {{"trid", trid},
                      {"ctrlr_data", cd},
                      {"vs", {{"nvme_version", ver}}},
                      {"ns_data", {{"id", nsid}, {"can_share", can_share}}}};
  if (active_trid().trtype == Trtype::kVfioUser) j["pci_address"] = active_trid().traddr;
  return j;
}

void Ctrlr::config_entries(nlohmann::json& out) const {
  // The active path first, so a replay connects where I/O went last; the
  // others come back as failover paths.
  for (size_t k = 0; k < trids_.size(); ++k) {
    const Trid& t = trids_[(active_ + k) % trids_.size()];
    nlohmann::json p = {{"name", name_}};
    t.dump(p);
    p["prchk_reftag"] = false;
    p["prchk_guard"] = false;
    p["ctrlr_loss_timeout_sec"] = res_.ctrlr_loss_timeout_sec;
    p["reconnect_delay_sec"] = res_.reconnect_delay_sec;
    p["fast_io_fail_timeout_sec"] = res_.fast_io_fail_timeout_sec;
    p["hdgst"] = popts_.hdgst;
    p["ddgst"] = popts_.ddgst;
    if (!popts_.hostnqn.empty()) p["hostnqn"] = popts_.hostnqn;
    if (popts_.dhchap_key) p["dhchap_key"] = popts_.dhchap_key->name;  // names only
    if (popts_.dhchap_ctrlr_key) p["dhchap_ctrlr_key"] = popts_.dhchap_ctrlr_key->name;
    if (!t.hostaddr.empty()) p["hostaddr"] = t.hostaddr;
    if (k > 0) p["multipath"] = "failover";
    out.push_back({{"method", "bdev_nvme_attach_controller"}, {"params", p}});
  }
}

std::map<std::string, std::shared_ptr<Ctrlr>>& ctrlrs() {
  static std::map<std::string, std::shared_ptr<Ctrlr>> m;
  return m;
}

std::shared_ptr<Ctrlr> find_ctrlr(const std::string& name) {
  auto it = ctrlrs().find(name);
  return it == ctrlrs().end() ? nullptr : it->second;
}

void shutdown() {
  auto all = std::move(ctrlrs());
  ctrlrs().clear();
  for (auto& [name, c] : all) c->destroy("shutting down", true);
}

}  // namespace nvemu::bdev::nvme
