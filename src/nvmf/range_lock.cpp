#include "nvmf/range_lock.h"

#include <algorithm>

#include "reactor/reactor.h"

namespace nvemu::nvmf {
namespace {

// Whether any lock in locks overlaps r.
template <typename Locks>
bool overlaps_any(const Locks& locks, const LbaRange& r) {
  return std::any_of(locks.begin(), locks.end(),
                     [&](const std::shared_ptr<RangeLock>& o) { return o->range.overlaps(r); });
}

}  // namespace

std::vector<std::shared_ptr<RangeLock>> RangeLockTable::join(Reactor& r) {
  std::lock_guard<std::mutex> g(mu_);
  if (std::find(reactors_.begin(), reactors_.end(), &r) == reactors_.end()) reactors_.push_back(&r);
  return active_;
}

void RangeLockTable::leave(Reactor& r) {
  std::lock_guard<std::mutex> g(mu_);
  std::erase(reactors_, &r);
}

void RangeLockTable::acquire(std::shared_ptr<RangeLock> lock) {
  std::lock_guard<std::mutex> g(mu_);
  // Behind an overlapping waiter too, so locks on one range go in order.
  if (overlaps_any(active_, lock->range) || overlaps_any(waiting_, lock->range)) {
    waiting_.push_back(std::move(lock));
    return;
  }
  active_.push_back(lock);
  start_locked(lock);
}

void RangeLockTable::release(const std::shared_ptr<RangeLock>& lock) {
  std::lock_guard<std::mutex> g(mu_);
  std::erase(active_, lock);
  // Sent before any waiter's lock message, so every reactor lets the held
  // writes go first and the next lock then waits for them.
  for (Reactor* r : reactors_) r->send([lock] { on_range_unlocked(lock); });
  std::vector<std::shared_ptr<RangeLock>> passed;  // still waiting, earlier in line
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (overlaps_any(active_, (*it)->range) || overlaps_any(passed, (*it)->range)) {
      passed.push_back(*it++);
      continue;
    }
    active_.push_back(*it);
    start_locked(*it);
    it = waiting_.erase(it);
  }
}

void RangeLockTable::start_locked(const std::shared_ptr<RangeLock>& lock) {
  lock->acks_pending.store(reactors_.size(), std::memory_order_relaxed);
  if (reactors_.empty()) {  // nobody runs I/O here: the range is quiet
    lock->owner->send([lock] { lock->granted(); });
    return;
  }
  for (Reactor* r : reactors_) r->send([lock] { on_range_locked(lock); });
}

void acknowledge(const std::shared_ptr<RangeLock>& lock) {
  if (lock->acks_pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
    lock->owner->send([lock] { lock->granted(); });
}

}  // namespace nvemu::nvmf
