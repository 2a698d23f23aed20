// Per-reactor I/O state of the controller layer: one bdev Channel per
// namespace, opened lazily on the first I/O a reactor runs against it.
// Owned by its reactor (Reactor::local) and touched only on its thread, so
// the I/O path takes no lock.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "bdev/bdev.h"
#include "nvmf/range_lock.h"
#include "nvmf/request.h"
#include "nvmf/subsystem.h"
#include "nvmf/transport.h"

namespace nvemu {
class Reactor;
}

namespace nvemu::nvmf {

// A namespace as one reactor sees it. Each in-flight request holds the entry
// (inflight count), and the entry holds the Namespace and its bdev, so a
// namespace removed while I/O runs stays alive until that I/O completes.
struct NsChannel {
  NsChannel(std::shared_ptr<const Namespace> ns, Reactor& reactor);
  ~NsChannel();  // leaves the namespace's range lock table
  NsChannel(const NsChannel&) = delete;
  NsChannel& operator=(const NsChannel&) = delete;

  std::shared_ptr<const Namespace> ns;
  std::shared_ptr<bdev::Bdev> bdev;
  std::unique_ptr<bdev::Channel> channel;
  Reactor* reactor;
  uint64_t inflight = 0;
  bool removed = false;

  // Range locks (range_lock.h) this reactor honours; those still waiting
  // for this reactor's writes to their range to finish; writes held back.
  std::vector<std::shared_ptr<RangeLock>> locks;
  std::vector<std::shared_ptr<RangeLock>> unacked;
  std::deque<Request*> held;
  Request* writes = nullptr;  // in flight, linked through write_prev/next

  bool write_overlaps(const RangeLock& lock) const;
  bool blocked_by_lock(const Request* req, const RangeLock* mine) const;
};

class PollGroup {
 public:
  explicit PollGroup(Reactor& r) : reactor_(r) {}
  ~PollGroup();

  // The poll group of reactor r, of the calling reactor, and of qp's.
  static PollGroup& of(Reactor& r);
  static PollGroup& current();
  static PollGroup& of(Qpair& qp) {
    if (!qp.io.group) qp.io.group = &of(qp.reactor());
    return *qp.io.group;
  }

  // The channel for namespace nsid of s as qpair qp (on this reactor) sees
  // it, or nullptr when s has no such namespace. Cached in qp until s
  // publishes a new namespace table, so the common case is two loads.
  NsChannel* lookup(Qpair& qp, const Subsystem& s, uint32_t nsid) {
    Qpair::IoState& io = qp.io;
    uint64_t g = s.ns_generation();
    if (io.generation != g) {
      io.channels.clear();
      io.generation = g;
    }
    if (nsid - 1 < io.channels.size() && io.channels[nsid - 1]) return io.channels[nsid - 1];
    return lookup_slow(qp, s, nsid);
  }
  // The channel for ns on this reactor, opened on first use. Never null.
  NsChannel* get(const std::shared_ptr<const Namespace>& ns);
  // The open channel for ns, or nullptr.
  NsChannel* find(const Namespace* ns) const;
  void start_io(NsChannel* c) { ++c->inflight; }
  // The request is done with the namespace; frees a removed entry's channel
  // when its last I/O completes.
  void end_io(NsChannel* c);
  // The namespace left its subsystem: close its channel here once idle.
  void drop(const Namespace* ns);
  size_t channel_count() const { return by_ns_.size(); }

  // Every write (Write, Write Zeroes, Unmap) with its bdev_io set up passes
  // here before it reaches the bdev. False: a range lock other than `mine`
  // covers it, and it is submitted when that lock is released.
  bool admit_write(NsChannel* c, Request* req, const RangeLock* mine) {
    if (!c->locks.empty() && c->blocked_by_lock(req, mine)) {
      c->held.push_back(req);
      return false;
    }
    link_write(c, req);
    return true;
  }
  // An admitted write completed (not for a retry after kNoMem).
  void write_done(NsChannel* c, Request* req) {
    unlink_write(c, req);
    if (!c->unacked.empty()) acknowledge_drained(c);
  }
  void on_locked(const std::shared_ptr<RangeLock>& lock);
  void on_unlocked(const std::shared_ptr<RangeLock>& lock);

  // A qpair left this reactor: close channels of namespaces nobody
  // references any more (subsystem deleted).
  void qpair_gone() { prune(); }
  // Closes idle channels whose namespace only this poll group still holds.
  void prune();

 private:
  static void link_write(NsChannel* c, Request* req) {
    req->write_prev = nullptr;
    req->write_next = c->writes;
    if (c->writes) c->writes->write_prev = req;
    c->writes = req;
  }
  static void unlink_write(NsChannel* c, Request* req) {
    if (req->write_prev)
      req->write_prev->write_next = req->write_next;
    else
      c->writes = req->write_next;
    if (req->write_next) req->write_next->write_prev = req->write_prev;
    req->write_prev = req->write_next = nullptr;
  }
  NsChannel* lookup_slow(Qpair& qp, const Subsystem& s, uint32_t nsid);
  void acknowledge_drained(NsChannel* c);
  NsChannel* find_any(const Namespace* ns) const;  // open or dying

  Reactor& reactor_;
  std::map<const Namespace*, std::unique_ptr<NsChannel>> by_ns_;
  std::vector<std::unique_ptr<NsChannel>> dying_;
};

}  // namespace nvemu::nvmf
