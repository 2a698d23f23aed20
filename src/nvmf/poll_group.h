// Per-reactor I/O state of the controller layer: one bdev Channel per
// namespace, opened lazily on the first I/O a reactor runs against it, and
// the pending first half of fused commands per qpair. Touched only by its own
// reactor's thread (it is thread_local), so the I/O path takes no lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "bdev/bdev.h"
#include "nvmf/subsystem.h"

namespace nvemu::nvmf {

class Qpair;
struct Request;

// A namespace as one reactor sees it. Each in-flight request holds the entry
// (inflight count), and the entry holds the Namespace and its bdev, so a
// namespace removed while I/O runs stays alive until that I/O completes.
struct NsChannel {
  std::shared_ptr<const Namespace> ns;
  std::shared_ptr<bdev::Bdev> bdev;
  std::unique_ptr<bdev::Channel> channel;
  uint64_t inflight = 0;
  bool removed = false;
};

class PollGroup {
 public:
  // The calling reactor's poll group.
  static PollGroup& current();

  // The channel for ns on this reactor, opened on first use. Never null.
  NsChannel* get(const std::shared_ptr<const Namespace>& ns);
  void start_io(NsChannel* c) { ++c->inflight; }
  // The request is done with the namespace; frees a removed entry's channel
  // when its last I/O completes.
  void end_io(NsChannel* c);
  // The namespace left its subsystem: close its channel here once idle.
  void drop(const Namespace* ns);
  size_t channel_count() const { return by_ns_.size(); }

  // Fused Compare and Write: the first half waits here for the second.
  Request*& fused_first(Qpair* qp) { return fused_[qp]; }
  // A qpair left this reactor: forget its state and close channels of
  // namespaces nobody references any more (subsystem deleted).
  void forget_qpair(Qpair* qp) {
    fused_.erase(qp);
    prune();
  }
  // Closes idle channels whose namespace only this poll group still holds.
  void prune();

 private:
  std::map<const Namespace*, std::unique_ptr<NsChannel>> by_ns_;
  std::vector<std::unique_ptr<NsChannel>> dying_;
  std::unordered_map<Qpair*, Request*> fused_;
};

}  // namespace nvemu::nvmf
