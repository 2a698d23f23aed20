// LBA range locks for fused Compare and Write, which must be atomic against
// every other write to its blocks from any qpair on any reactor (NVMe Base
// 2.0, 3.4.2; NVM Command Set 1.0, 3.4.1).
//
// The I/O path stays lock-free. Each reactor that runs I/O on a namespace
// joins the namespace's RangeLockTable once (when it opens its channel).
// Taking a lock is the rare path: the table (under its mutex) makes the lock
// active unless it overlaps one already active, then messages every joined
// reactor. Each reactor records the lock in its channel, holds back new
// writes to the range and acknowledges once its in-flight writes to the
// range have completed. When every reactor has acknowledged, `granted` runs
// on the owner's reactor; the owner's own reads and writes pass the lock.
// Releasing messages every reactor again, which lets the held writes go.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace nvemu {
class Reactor;
}

namespace nvemu::nvmf {

struct Namespace;

struct LbaRange {
  uint64_t slba = 0, nlb = 0;
  bool overlaps(const LbaRange& o) const { return slba < o.slba + o.nlb && o.slba < slba + nlb; }
};

struct RangeLock {
  LbaRange range;
  Reactor* owner = nullptr;
  std::shared_ptr<const Namespace> ns;  // keeps the namespace while locked
  std::function<void()> granted;        // runs on owner once every reactor holds the range
  std::atomic<size_t> acks_pending{0};
};

class RangeLockTable {
 public:
  // Reactor r runs I/O on the namespace from now on. Returns the locks
  // active now, which r's channel must honour (it has no writes in flight
  // yet, so they need no acknowledgement from it).
  std::vector<std::shared_ptr<RangeLock>> join(Reactor& r);
  // r closed its channel for the namespace.
  void leave(Reactor& r);

  // Owner's reactor. Locks lock->range; lock->granted runs on the owner once
  // the range is quiet everywhere. Waits (FIFO) behind active locks that
  // overlap it.
  void acquire(std::shared_ptr<RangeLock> lock);
  // Owner's reactor, after granted: lets held-back writes go and starts the
  // waiting locks that now fit.
  void release(const std::shared_ptr<RangeLock>& lock);

 private:
  // Messages every joined reactor (the caller holds mu_ for the snapshot).
  void start_locked(const std::shared_ptr<RangeLock>& lock);

  std::mutex mu_;  // the rare path only; never taken per I/O
  std::vector<Reactor*> reactors_;
  std::vector<std::shared_ptr<RangeLock>> active_;
  std::deque<std::shared_ptr<RangeLock>> waiting_;
};

// A reactor's side, called from the messages above (poll_group.cpp).
void on_range_locked(const std::shared_ptr<RangeLock>& lock);
void on_range_unlocked(const std::shared_ptr<RangeLock>& lock);
// One reactor has quiesced the range: the last acknowledgement grants it.
void acknowledge(const std::shared_ptr<RangeLock>& lock);

}  // namespace nvemu::nvmf
