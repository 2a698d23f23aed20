// The command-path half of fault injection (fault.h): matching, the
// per-reactor table snapshot, and the requests held back (no_completion,
// delay) until their delay ends, an Abort names them or their queue goes.
#include "nvmf/fault.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/counter.h"
#include "common/log.h"
#include "nvmf/controller.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

std::atomic<bool> fault::g_armed{false};

namespace {

// One reactor's view: the armed command faults and the requests it holds.
struct Local {
  explicit Local(Reactor&) {}
  std::shared_ptr<const FaultList> table;
  struct Held {
    Request* req;
    Qpair* qp;
    std::shared_ptr<Fault> fault;
    Reactor::TimerId timer;  // delay only
  };
  std::vector<Held> held;
};

// qp's reactor's view; the hooks run there (loopback tests call them with
// no reactor running).
Local& local(Qpair* qp) {
  return qp->reactor().local<Local>();
}

// SplitMix64: the n-th draw of a seeded run depends only on (seed, n), so a
// run repeats whatever reactor a command lands on.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

bool Fault::matches(const std::string& subnqn, uint16_t ctrl, uint16_t qid,
                    const nvme::Sqe& cmd) const {
  if (queue == Queue::kAdmin && qid != 0) return false;
  if (queue == Queue::kIo && qid == 0) return false;
  if (opcode && cmd.opc != *opcode) return false;
  if (nsid && cmd.nsid != *nsid) return false;
  if (cntlid && ctrl != *cntlid) return false;
  // A fused pair is one operation whose halves must meet: left alone.
  if (cmd.fuse() != nvme::kFuseNone) return false;
  return subnqn == nqn;
}

bool Fault::take() {
  uint64_t n = matched.fetch_add(1, std::memory_order_relaxed);
  if (probability < 1.0) {
    double draw = static_cast<double>(mix(seed ^ mix(n)) >> 11) * 0x1.0p-53;
    if (draw >= probability) return false;
  }
  uint64_t h = hits.load(std::memory_order_relaxed);
  do {
    if (count && h >= count) return false;
  } while (!hits.compare_exchange_weak(h, h + 1, std::memory_order_relaxed));
  return true;
}

const char* Fault::action_name(Action a) {
  switch (a) {
    case Action::kStatus:
      return "status";
    case Action::kNoCompletion:
      return "no_completion";
    case Action::kDelay:
      return "delay";
    case Action::kCfs:
      return "cfs";
    case Action::kDropConnection:
      return "drop_connection";
    case Action::kSurpriseRemove:
      return "surprise_remove";
  }
  return "?";
}

nlohmann::json Fault::to_json() const {
  nlohmann::json j = {{"id", id},
                      {"action", action_name(action)},
                      {"nqn", nqn},
                      {"hits", hits.load(std::memory_order_relaxed)}};
  if (cntlid) j["cntlid"] = *cntlid;
  if (nsid) j["nsid"] = *nsid;
  if (opcode) j["opcode"] = *opcode;
  if (queue != Queue::kAny) j["queue"] = queue == Queue::kAdmin ? "admin" : "io";
  if (is_command_fault()) {
    j["matched"] = matched.load(std::memory_order_relaxed);
    if (count) j["count"] = count;
  }
  if (action == Action::kStatus) {
    j["sct"] = static_cast<unsigned>(status.sct);
    j["sc"] = status.sc;
    j["dnr"] = status.dnr;
    j["more"] = status.more;
  }
  if (probability < 1.0) {
    j["probability"] = probability;
    j["seed"] = seed;
  }
  if (action == Action::kDelay) j["delay_us"] = delay_us;
  if (!vuid.empty()) j["vuid"] = vuid;
  return j;
}

namespace fault {

bool on_execute(Controller& c, Request* req) {
  Local& l = local(req->qpair);
  if (!l.table) return false;
  Qpair* qp = req->qpair;
  for (const auto& f : *l.table) {
    if (f->action == Fault::Action::kDelay) continue;
    if (!f->matches(c.subsystem()->nqn(), c.cntlid(), qp->qid(), req->cmd) || !f->take()) continue;
    if (f->action == Fault::Action::kStatus) {
      req->status = f->status;
      if (qp->qid() != 0 && f->status.sct == nvme::Sct::kMediaError)
        add_single_writer(qp->io.media_errors, 1);
      c.complete(req);
      return true;
    }
    LOG_INFO("nvmf", "fault {}: holding opcode {:#04x} cid {} on qid {} of controller {} ({})",
             f->id, req->cmd.opc, req->cmd.cid, qp->qid(), c.cntlid(), f->nqn);
    l.held.push_back({req, qp, f, 0});
    return true;
  }
  return false;
}

namespace {
void delay_ended(Request* req) {
  Local& l = local(req->qpair);
  auto it = std::find_if(l.held.begin(), l.held.end(),
                         [req](const Local::Held& h) { return h.req == req && h.timer; });
  if (it == l.held.end()) return;  // aborted or its queue went first
  l.held.erase(it);
  if (auto& c = req->qpair->controller())
    c->complete_now(req);
  else
    req->qpair->complete(req);
}
}  // namespace

bool on_complete(Controller& c, Request* req) {
  Local& l = local(req->qpair);
  if (!l.table) return false;
  for (const auto& f : *l.table) {
    if (f->action != Fault::Action::kDelay) continue;
    if (!f->matches(c.subsystem()->nqn(), c.cntlid(), req->qpair->qid(), req->cmd) || !f->take())
      continue;
    Reactor::TimerId t = req->qpair->reactor().add_timer(std::chrono::microseconds(f->delay_us),
                                                         [req] { delay_ended(req); });
    l.held.push_back({req, req->qpair, f, t});
    return true;
  }
  return false;
}

void qpair_closing(Qpair* qp) {
  Local& l = local(qp);
  if (l.held.empty()) return;
  std::vector<Local::Held> mine;
  std::erase_if(l.held, [&](const Local::Held& h) {
    if (h.qp != qp) return false;
    mine.push_back(h);
    return true;
  });
  for (auto& h : mine) {
    if (h.timer) {
      qp->reactor().cancel_timer(h.timer);  // executed: its own status stands
    } else {
      h.req->status = nvme::Status::generic(nvme::sc::kAbortedSqDeletion, false);
    }
    qp->complete(h.req);
  }
  if (!mine.empty())
    LOG_INFO("nvmf", "fault: queue {} went with {} held command(s); aborted", qp->qid(),
             mine.size());
}

bool abort_held(Qpair* qp, uint16_t cid) {
  Local& l = local(qp);
  auto it = std::find_if(l.held.begin(), l.held.end(),
                         [&](const Local::Held& h) { return h.qp == qp && h.req->cmd.cid == cid; });
  if (it == l.held.end()) return false;
  Local::Held h = *it;
  l.held.erase(it);
  if (h.timer) qp->reactor().cancel_timer(h.timer);
  h.req->status = nvme::Status::generic(nvme::sc::kAbortedByRequest, false);
  if (auto& c = qp->controller())
    c->complete_now(h.req);
  else
    qp->complete(h.req);
  return true;
}

size_t held_here() {
  return Reactor::current()->local<Local>().held.size();
}

void publish(const FaultList& faults, std::function<void()> done) {
  auto snap = std::make_shared<FaultList>();
  for (const auto& f : faults)
    if (f->is_command_fault()) snap->push_back(f);
  std::shared_ptr<const FaultList> table;
  if (!snap->empty()) table = std::move(snap);
  // Set first when arming (reactors then find the table as it lands); when
  // disarming, a reactor that still holds the old table only skips it.
  g_armed.store(table != nullptr, std::memory_order_relaxed);
  auto& set = ReactorSet::instance();
  Reactor& main = set.main();
  auto left = std::make_shared<size_t>(set.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (size_t i = 0; i < set.size(); ++i) {
    set.at(i).send([table, left, shared_done, &main] {
      Reactor::current()->local<Local>().table = table;
      main.send([left, shared_done] {
        if (--*left == 0 && *shared_done) (*shared_done)();
      });
    });
  }
}

}  // namespace fault
}  // namespace nvemu::nvmf
