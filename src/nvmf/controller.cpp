// Controller lifecycle, the register model (CC/CSTS state machine), qpair
// bookkeeping, keep-alive and the completion path shared by every command
// family. The commands themselves live in admin.cpp, io.cpp, logs.cpp,
// features.cpp, aer.cpp and discovery.cpp.
#include "nvmf/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "nvme/nvm.h"
#include "nvmf/auth/target_auth.h"
#include "nvmf/fault.h"
#include "nvmf/poll_group.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

namespace {
constexpr size_t kMaxErrorEntries = 64;  // ELPE + 1
// CAP.TO in 500 ms units: how long a host waits for CSTS.RDY. nvemu flips
// RDY synchronously, so this only bounds a host's patience.
constexpr uint8_t kCapTimeout = 20;
constexpr uint32_t kDiscoveryDefaultKatoMs = 120000;  // as SPDK: reap idle discovery hosts
}  // namespace

Controller::Controller(Kind kind, std::shared_ptr<Subsystem> subsys, Reactor& home,
                       const TransportOpts& opts)
    : kind_(kind),
      discovery_(subsys->type() == Subsystem::Type::kDiscovery),
      subsys_(std::move(subsys)),
      home_(&home),
      opts_(opts),
      created_us_(now_us()) {
  uint32_t depth = kind == Kind::kPcie ? std::max(opts.max_queue_depth, opts.max_aq_depth)
                                       : opts.max_queue_depth;
  depth = std::clamp<uint32_t>(depth, 2, 65536);
  cap_ = nvme::Cap::make(static_cast<uint16_t>(depth - 1), true, kCapTimeout, 0, 0);
  seen_ns_ = subsys_->namespaces();
  kato_timer_ = std::make_shared<uint64_t>(0);
  last_keep_alive_us_ = now_us();
}

Controller::~Controller() {
  if (!unregistered_ && cntlid()) subsys_->unregister_controller(cntlid());
  uint64_t id = *kato_timer_;
  if (id) home_->send([id] { Reactor::current()->cancel_timer(id); });
}

uint64_t Controller::now_us() {
  return Reactor::now_us();
}

std::shared_ptr<Controller> Controller::create_pcie(std::shared_ptr<Subsystem> subsys,
                                                    QueueHost* host, Reactor& home,
                                                    const TransportOpts& opts) {
  std::shared_ptr<Controller> c(new Controller(Kind::kPcie, std::move(subsys), home, opts));
  c->qhost_ = host;
  uint16_t id = c->subsys_->register_controller(c);
  if (id == 0) {
    c->unregistered_ = true;
    return nullptr;
  }
  c->cntlid_ = id;
  return c;
}

std::shared_ptr<Controller> Controller::create_fabrics(std::shared_ptr<Subsystem> subsys,
                                                       Reactor& home, const TransportOpts& opts,
                                                       std::string hostnqn,
                                                       const std::array<uint8_t, 16>& hostid,
                                                       uint32_t kato_ms) {
  std::shared_ptr<Controller> c(new Controller(Kind::kFabrics, std::move(subsys), home, opts));
  c->hostnqn_ = std::move(hostnqn);
  c->hostid_ = hostid;
  if (c->discovery_ && kato_ms == 0) kato_ms = kDiscoveryDefaultKatoMs;
  c->kato_ms_ = kato_ms;
  uint16_t id = c->subsys_->register_controller(c);
  if (id == 0) {
    c->unregistered_ = true;
    return nullptr;
  }
  c->cntlid_ = id;
  c->start_keep_alive_timer();
  return c;
}

bool Controller::ready() const {
  return (cc_.load() & nvme::cc::kEn) && (csts_.load() & nvme::csts::kRdy);
}

// ---- Registers ----------------------------------------------------------

uint64_t Controller::read_register(uint32_t offset, unsigned size) {
  nvme::RegisterBlock r{};
  r.cap = cap_.raw;
  r.vs = nvme::kVersion;
  r.intms = intms_;
  r.intmc = intms_;
  r.cc = cc_.load();
  r.csts = csts_.load();
  r.aqa = aqa_;
  r.asq = asq_;
  r.acq = acq_;
  if ((size != 4 && size != 8) || offset + size > sizeof r) return 0;
  uint64_t v = 0;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(&r) + offset, size);
  return v;
}

void Controller::write_register(uint32_t offset, uint64_t value, unsigned size) {
  auto lo = static_cast<uint32_t>(value);
  auto set64 = [&](uint64_t& reg, uint32_t base) {
    if (cc_.load() & nvme::cc::kEn) return;  // admin queue registers are fixed while enabled
    if (size == 8 && offset == base)
      reg = value;
    else if (offset == base)
      reg = (reg & ~0xffffffffull) | lo;
    else
      reg = (reg & 0xffffffffull) | (uint64_t{lo} << 32);
  };
  switch (offset) {
    case nvme::reg::kIntms:
      intms_ |= lo;
      return;
    case nvme::reg::kIntmc:
      intms_ &= ~lo;
      return;
    case nvme::reg::kAqa:
      if (!(cc_.load() & nvme::cc::kEn)) aqa_ = lo & 0x0fff0fff;
      return;
    case nvme::reg::kAsq:
    case nvme::reg::kAsq + 4:
      set64(asq_, nvme::reg::kAsq);
      return;
    case nvme::reg::kAcq:
    case nvme::reg::kAcq + 4:
      set64(acq_, nvme::reg::kAcq);
      return;
    case nvme::reg::kNssr:
      // CAP.NSSRS is 0: NVM Subsystem Reset is not supported, writes are ignored.
      return;
    case nvme::reg::kCc:
      break;
    default:
      return;  // read-only or reserved
  }

  uint32_t old = cc_.load();
  uint32_t cc = lo & 0x00fffff1;  // defined fields only
  cc_.store(cc);
  bool was_en = old & nvme::cc::kEn, en = cc & nvme::cc::kEn;
  if (was_en && !en) {
    disable();
    return;
  }
  if (!was_en && en) {
    enable();
    return;
  }
  if (en && nvme::cc::shn(cc) != nvme::cc::kShnNone && nvme::cc::shn(old) == nvme::cc::kShnNone)
    shutdown();
}

void Controller::enable() {
  uint32_t cc = cc_.load();
  // MPS must fit CAP.MPSMIN..MPSMAX and CSS name the NVM set (0) or "admin
  // only" (7); anything else is a host bug the spec answers with CFS.
  bool bad = nvme::cc::mps(cc) < cap_.mpsmin() || nvme::cc::mps(cc) > cap_.mpsmax() ||
             (nvme::cc::css(cc) != 0 && nvme::cc::css(cc) != 7) || nvme::cc::ams(cc) != 0;
  if (!bad && kind_ == Kind::kPcie && qhost_ && !qhost_->on_enable()) bad = true;
  if (bad) {
    LOG_ERROR("nvmf", "controller {} of {}: CC.EN=1 with invalid CC {:#x}; setting CSTS.CFS",
              cntlid(), subsys_->nqn(), cc);
    csts_.store(csts_.load() | nvme::csts::kCfs);
    return;
  }
  csts_.store((csts_.load() & ~nvme::csts::kShstMask) | nvme::csts::kRdy);
}

void Controller::disable() {
  // A controller reset: queues and outstanding commands are gone, features
  // return to defaults (Base 2.0, 3.7.2). Fabrics I/O qpairs are the
  // queues; the admin queue survives as the association.
  aer_abort_all();
  aer_pending_.clear();
  aer_masked_ = 0;
  feat_ = Features{};
  if (kind_ == Kind::kPcie) {
    if (qhost_) qhost_->on_disable();
  } else {
    disconnect_all(false);
  }
  csts_.store(csts_.load() & ~(nvme::csts::kRdy | nvme::csts::kShstMask | nvme::csts::kCfs));
}

void Controller::shutdown() {
  csts_.store((csts_.load() & ~nvme::csts::kShstMask) | nvme::csts::kShstOccurring);
  if (kind_ == Kind::kPcie) {
    if (qhost_) qhost_->on_shutdown();
  } else {
    disconnect_all(false);
  }
  csts_.store((csts_.load() & ~nvme::csts::kShstMask) | nvme::csts::kShstComplete);
}

void Controller::fail(const char* why) {
  LOG_ERROR("nvmf", "controller {} of {} (host {}) failed: {}; disconnecting", cntlid(),
            subsys_->nqn(), hostnqn_, why);
  csts_.store(csts_.load() | nvme::csts::kCfs);
  disconnect_all(true);
}

// ---- Keep alive (Base 2.0, 3.9) ------------------------------------------

void Controller::start_keep_alive_timer() {
  if (kato_ms_ == 0) return;
  keep_alive();
  std::weak_ptr<Controller> weak = weak_from_this();
  auto holder = kato_timer_;
  uint64_t period_us = std::max<uint64_t>(uint64_t{kato_ms_} * 1000 / 4, 1000);
  auto arm = [weak, holder, period_us] {
    *holder = Reactor::current()->add_timer(
        std::chrono::microseconds(period_us),
        [weak, holder] {
          auto self = weak.lock();
          if (!self) {
            Reactor::current()->cancel_timer(*holder);
            return;
          }
          self->check_keep_alive();
        },
        std::chrono::microseconds(period_us));
  };
  if (home_->on_thread())
    arm();
  else
    home_->send(arm);
}

void Controller::stop_keep_alive_timer() {
  auto holder = kato_timer_;
  if (home_->on_thread()) {
    if (*holder) home_->cancel_timer(*holder);
    *holder = 0;
    return;
  }
  home_->send([holder] {
    if (*holder) Reactor::current()->cancel_timer(*holder);
    *holder = 0;
  });
}

void Controller::check_keep_alive() {
  if (kato_ms_ == 0 || unregistered_) return;
  uint64_t idle = now_us() - last_keep_alive_us_.load();
  // A host cannot send a Keep Alive before its admin queue has
  // authenticated: until then the DH-HMAC-CHAP transaction's own timeout
  // (KATO per step, nvmf/auth) decides, so a slow host computing ffdhe8192
  // gets a full KATO for each step rather than one for the whole exchange.
  {
    std::lock_guard lk(qp_mu_);
    if (admin_qp_ && !auth_target::may_run(*admin_qp_)) return;
  }
  if (idle <= uint64_t{kato_ms_} * 1000) return;
  stop_keep_alive_timer();
  fail(
      fmt::format("keep alive timeout ({} ms without a command, KATO {} ms)", idle / 1000, kato_ms_)
          .c_str());
}

// ---- Qpairs ----------------------------------------------------------------

void Controller::set_admin_qpair(Qpair* qp) {
  std::lock_guard lk(qp_mu_);
  admin_qp_ = qp;
}

bool Controller::add_io_qpair(Qpair* qp) {
  std::lock_guard lk(qp_mu_);
  if (admin_gone_) return false;
  return io_qps_.emplace(qp->qid(), qp).second;
}

void Controller::attach_qpair(Qpair* qp) {
  qp->set_controller(shared_from_this());
  if (qp->qid() == 0)
    set_admin_qpair(qp);
  else
    add_io_qpair(qp);
}

namespace {
void add_counts(Controller::SmartCounts& into, const Qpair& qp) {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  into.units_read += get(qp.io.units_read);
  into.units_written += get(qp.io.units_written);
  into.read_cmds += get(qp.io.read_cmds);
  into.write_cmds += get(qp.io.write_cmds);
  into.media_errors += get(qp.io.media_errors);
}
}  // namespace

Controller::SmartCounts Controller::smart_counts() const {
  std::lock_guard lk(qp_mu_);
  SmartCounts c = smart_gone_;
  for (const auto& [qid, qp] : io_qps_) add_counts(c, *qp);
  return c;
}

size_t Controller::num_io_qpairs() const {
  std::lock_guard lk(qp_mu_);
  return io_qps_.size();
}

void Controller::remove_qpair(Qpair* qp) {
  bool admin_went = false, finished = false;
  {
    std::lock_guard lk(qp_mu_);
    if (qp == admin_qp_) {
      admin_qp_ = nullptr;
      admin_went = kind_ == Kind::kFabrics;
      if (admin_went) admin_gone_ = true;
    } else {
      auto it = io_qps_.find(qp->qid());
      if (it != io_qps_.end() && it->second == qp) {
        io_qps_.erase(it);
        add_counts(smart_gone_, *qp);
      }
    }
    finished = admin_gone_ && io_qps_.empty() && !unregistered_;
    if (finished) unregistered_ = true;
  }
  PollGroup::of(qp->reactor()).qpair_gone();
  if (admin_went && !finished) disconnect_all(false);
  if (finished) {
    stop_keep_alive_timer();
    subsys_->unregister_controller(cntlid());
    LOG_INFO("nvmf", "controller {} of {} (host {}) destroyed", cntlid(), subsys_->nqn(), hostnqn_);
  }
}

bool Controller::attached(const Qpair* qp) const {
  std::lock_guard lk(qp_mu_);
  return qp == admin_qp_ || std::any_of(io_qps_.begin(), io_qps_.end(),
                                        [qp](const auto& e) { return e.second == qp; });
}

void Controller::disconnect_on_reactor(Qpair* qp, Reactor& reactor) {
  // The qpair may be destroyed before the message runs; qpair_destroyed runs
  // on the same reactor, so checking membership there is race-free.
  std::weak_ptr<Controller> weak = weak_from_this();
  reactor.send([weak, qp] {
    auto self = weak.lock();
    if (!self) return;
    if (self->attached(qp)) qp->disconnect();
  });
}

void Controller::disconnect_all(bool include_admin) {
  // A qpair is alive while it is listed (its transport calls
  // qpair_destroyed, which unlists it, before freeing it), so its reactor
  // is read under the lock; after it, only the pointer's identity is used.
  std::vector<std::pair<Qpair*, Reactor*>> list;
  {
    std::lock_guard lk(qp_mu_);
    for (auto& [qid, qp] : io_qps_) list.emplace_back(qp, &qp->reactor());
    if (include_admin && admin_qp_) list.emplace_back(admin_qp_, &admin_qp_->reactor());
  }
  for (auto [qp, reactor] : list) disconnect_on_reactor(qp, *reactor);
}

// ---- Subsystem notifications ------------------------------------------------

void Controller::on_subsystem_removed() {
  disconnect_all(true);
}

void Controller::on_namespace_changed(uint32_t nsid) {
  std::weak_ptr<Controller> weak = weak_from_this();
  home_->send([weak, nsid] {
    auto self = weak.lock();
    if (!self) return;
    auto now = self->subsys_->namespaces();
    // Namespaces that left: close their channels on every reactor that may
    // hold one, after their in-flight I/O.
    std::vector<const Namespace*> gone;
    if (self->seen_ns_)
      for (auto& [id, ns] : *self->seen_ns_) {
        auto it = now->find(id);
        if (it == now->end() || it->second != ns) gone.push_back(ns.get());
      }
    self->seen_ns_ = now;
    if (!gone.empty()) {
      std::vector<Reactor*> reactors{self->home_};
      {
        std::lock_guard lk(self->qp_mu_);
        for (auto& [qid, qp] : self->io_qps_) reactors.push_back(&qp->reactor());
      }
      std::sort(reactors.begin(), reactors.end());
      reactors.erase(std::unique(reactors.begin(), reactors.end()), reactors.end());
      for (Reactor* r : reactors)
        r->send([gone] {
          for (const Namespace* ns : gone) PollGroup::current().drop(ns);
        });
    }
    self->note_changed_ns(nsid);
    if (self->feat_.async_event_config & nvme::aen::kCfgNsAttr)
      self->aer_raise(nvme::aen::kTypeNotice, nvme::aen::kNoticeNsAttrChanged,
                      nvme::lid::kChangedNsList);
  });
}

void Controller::on_discovery_changed() {
  if (!discovery_) return;
  std::weak_ptr<Controller> weak = weak_from_this();
  home_->send([weak] {
    auto self = weak.lock();
    if (self && (self->feat_.async_event_config & nvme::aen::kCfgDiscovery))
      self->aer_raise(nvme::aen::kTypeNotice, nvme::aen::kNoticeDiscoveryChanged,
                      nvme::lid::kDiscovery);
  });
}

void Controller::note_changed_ns(uint32_t nsid) {
  if (changed_ns_overflow_) return;
  if (std::find(changed_ns_.begin(), changed_ns_.end(), nsid) != changed_ns_.end()) return;
  if (changed_ns_.size() == 1024) {
    changed_ns_overflow_ = true;
    changed_ns_.clear();
    return;
  }
  changed_ns_.push_back(nsid);
}

// ---- Completion and the Error log ---------------------------------------------

void Controller::record_error(const Request* req) {
  const nvme::Status& s = req->status;
  if (s.ok()) return;
  // Aborts caused by queue teardown are not errors of the command.
  if (s.sct == nvme::Sct::kGeneric && s.sc == nvme::sc::kAbortedSqDeletion) return;
  nvme::ErrorLogEntry e{};
  e.sqid = req->qpair ? req->qpair->qid() : 0;
  e.cid = req->cmd.cid;
  e.status = s.field();
  e.param_error_location = s.error_location;
  e.nsid = req->cmd.nsid;
  if (e.sqid != 0) e.lba = uint64_t{req->cmd.cdw10} | uint64_t{req->cmd.cdw11} << 32;
  std::lock_guard lk(err_mu_);
  e.error_count = ++error_count_;
  errors_.push_front(e);
  if (errors_.size() > kMaxErrorEntries) errors_.pop_back();
}

void Controller::complete(Request* req) {
  if (fault::armed() && fault::on_complete(*this, req)) [[unlikely]]
    return;
  complete_now(req);
}

void Controller::complete_now(Request* req) {
  record_error(req);
  req->qpair->complete(req);
}

// ---- Fault injection --------------------------------------------------------------

void Controller::raise_cfs() {
  LOG_WARN("nvmf", "controller {} of {}: CSTS.CFS raised by fault injection", cntlid(),
           subsys_->nqn());
  csts_.fetch_or(nvme::csts::kCfs);
}

void Controller::drop_connection() {
  LOG_WARN("nvmf", "controller {} of {} (host {}): connection dropped by fault injection", cntlid(),
           subsys_->nqn(), hostnqn_);
  if (kind_ == Kind::kPcie) {
    if (qhost_) qhost_->drop_host();
    return;
  }
  disconnect_all(true);
}

// ---- JSON for the RPC layer -----------------------------------------------------

namespace {
std::string uuid_text(const std::array<uint8_t, 16>& b) {
  std::string s;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", b[i]);
  }
  return s;
}
}  // namespace

nlohmann::json Controller::info_json() const {
  return {{"cntlid", cntlid()},
          {"hostnqn", hostnqn_},
          {"hostid", uuid_text(hostid_)},
          {"num_io_qpairs", num_io_qpairs()}};
}

void Controller::for_each_qpair(const std::function<void(const Qpair&)>& fn) const {
  std::lock_guard lk(qp_mu_);
  if (admin_qp_) fn(*admin_qp_);
  for (auto& [qid, qp] : io_qps_) fn(*qp);
}

nlohmann::json Controller::qpairs_json() const {
  nlohmann::json out = nlohmann::json::array();
  for_each_qpair([&](const Qpair& qp) {
    nlohmann::json addr = qp.peer_json();
    if (!addr.is_object()) addr = nlohmann::json::object();
    if (!addr.contains("trtype")) addr["trtype"] = qp.trtype();
    out.push_back({{"cntlid", cntlid()},
                   {"qid", qp.qid()},
                   {"state", "active"},
                   {"trtype", qp.trtype()},
                   {"hostnqn", hostnqn_},
                   {"listen_address", addr}});
  });
  return out;
}

}  // namespace nvemu::nvmf
