#include "nvmf/poll_group.h"

#include <algorithm>

#include "common/log.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

NsChannel::NsChannel(std::shared_ptr<const Namespace> n, Reactor& r)
    : ns(std::move(n)), bdev(ns->bdev), reactor(&r) {
  locks = ns->range_locks->join(r);
  channel = bdev->open_channel();
}

NsChannel::~NsChannel() {
  channel.reset();
  ns->range_locks->leave(*reactor);
}

bool NsChannel::write_overlaps(const RangeLock& lock) const {
  for (const Request* w = writes; w; w = w->write_next)
    if (lock.range.overlaps({w->bdev_io.offset_blocks, w->bdev_io.num_blocks})) return true;
  return false;
}

bool NsChannel::blocked_by_lock(const Request* req, const RangeLock* mine) const {
  LbaRange r{req->bdev_io.offset_blocks, req->bdev_io.num_blocks};
  return std::any_of(locks.begin(), locks.end(), [&](const std::shared_ptr<RangeLock>& l) {
    return l.get() != mine && l->range.overlaps(r);
  });
}

PollGroup& PollGroup::current() {
  return Reactor::current()->local<PollGroup>();
}

PollGroup& PollGroup::of(Reactor& r) {
  return r.local<PollGroup>();
}

PollGroup::~PollGroup() {
  // The reactor is going away. Channels with I/O in flight are left open:
  // closing one completes its I/O into requests whose qpairs may be gone.
  size_t busy = 0;
  auto let_go = [&busy](std::unique_ptr<NsChannel>& c) {
    if (c->inflight == 0) return;
    ++busy;
    (void)c.release();
  };
  for (auto& [ns, c] : by_ns_) let_go(c);
  for (auto& c : dying_) let_go(c);
  if (busy) LOG_WARN("nvmf", "reactor stopped with I/O in flight on {} namespace channel(s)", busy);
}

NsChannel* PollGroup::get(const std::shared_ptr<const Namespace>& ns) {
  auto it = by_ns_.find(ns.get());
  if (it != by_ns_.end()) return it->second.get();
  prune();  // a new namespace: a good moment to let go of dead ones
  auto c = std::make_unique<NsChannel>(ns, reactor_);
  NsChannel* raw = c.get();
  by_ns_.emplace(ns.get(), std::move(c));
  return raw;
}

NsChannel* PollGroup::lookup_slow(Qpair& qp, const Subsystem& s, uint32_t nsid) {
  // Namespace IDs beyond this are looked up every time (rare: SPDK's
  // default subsystem holds 32).
  constexpr uint32_t kMaxCachedNsid = 4096;
  auto table = s.namespaces();
  auto it = table->find(nsid);
  if (it == table->end()) return nullptr;
  NsChannel* c = get(it->second);
  if (nsid - 1 < kMaxCachedNsid) {
    if (qp.io.channels.size() < nsid) qp.io.channels.resize(nsid, nullptr);
    qp.io.channels[nsid - 1] = c;
  }
  return c;
}

NsChannel* PollGroup::find(const Namespace* ns) const {
  auto it = by_ns_.find(ns);
  return it == by_ns_.end() ? nullptr : it->second.get();
}

NsChannel* PollGroup::find_any(const Namespace* ns) const {
  if (NsChannel* c = find(ns)) return c;
  for (auto& c : dying_)
    if (c->ns.get() == ns) return c.get();
  return nullptr;
}

void PollGroup::end_io(NsChannel* c) {
  --c->inflight;
  if (c->removed && c->inflight == 0)
    std::erase_if(dying_, [c](const std::unique_ptr<NsChannel>& d) { return d.get() == c; });
}

void PollGroup::prune() {
  std::erase_if(by_ns_, [](const auto& e) {
    return e.second->inflight == 0 && e.second->ns.use_count() == 1;
  });
}

void PollGroup::drop(const Namespace* ns) {
  auto it = by_ns_.find(ns);
  if (it == by_ns_.end()) return;
  std::unique_ptr<NsChannel> c = std::move(it->second);
  by_ns_.erase(it);
  if (c->inflight == 0) return;  // closes the channel now
  c->removed = true;
  dying_.push_back(std::move(c));
}

void PollGroup::on_locked(const std::shared_ptr<RangeLock>& lock) {
  NsChannel* c = find_any(lock->ns.get());
  if (!c) {  // no I/O to this namespace here
    acknowledge(lock);
    return;
  }
  if (std::find(c->locks.begin(), c->locks.end(), lock) == c->locks.end()) c->locks.push_back(lock);
  if (c->write_overlaps(*lock))
    c->unacked.push_back(lock);
  else
    acknowledge(lock);
}

void PollGroup::acknowledge_drained(NsChannel* c) {
  std::vector<std::shared_ptr<RangeLock>> drained;
  std::erase_if(c->unacked, [&](const std::shared_ptr<RangeLock>& l) {
    if (c->write_overlaps(*l)) return false;
    drained.push_back(l);
    return true;
  });
  for (auto& l : drained) acknowledge(l);
}

void PollGroup::on_unlocked(const std::shared_ptr<RangeLock>& lock) {
  NsChannel* c = find_any(lock->ns.get());
  if (!c) return;
  std::erase(c->locks, lock);
  std::erase(c->unacked, lock);
  // Let go, in arrival order, every held write no other lock still covers.
  // The pin keeps a removed namespace's channel alive while they complete.
  start_io(c);
  std::deque<Request*> still;
  std::deque<Request*> held = std::move(c->held);
  c->held.clear();
  for (Request* req : held) {
    if (c->blocked_by_lock(req, nullptr)) {
      still.push_back(req);
      continue;
    }
    link_write(c, req);
    c->channel->submit(&req->bdev_io);
  }
  c->held.insert(c->held.begin(), still.begin(), still.end());
  end_io(c);
}

void on_range_locked(const std::shared_ptr<RangeLock>& lock) {
  PollGroup::current().on_locked(lock);
}

void on_range_unlocked(const std::shared_ptr<RangeLock>& lock) {
  PollGroup::current().on_unlocked(lock);
}

}  // namespace nvemu::nvmf
