// The I/O side of a controller on one reactor: its I/O qpair and the I/O
// that waits for one (while the controller reconnects or fails over). Every
// namespace bdev's channel on that reactor shares it. Owner reactor only:
// the main reactor changes it by message (attach a new qpair, detach on a
// reset, fail queued I/O when fast_io_fail_timeout_sec passes).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bdev/bdev.h"
#include "bdev/nvme/path.h"
#include "nvme/nvm.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::nvme {

class NsChannel;

class ReactorPath {
 public:
  // on_lost runs on this reactor when the qpair fails; it messages the
  // controller (main reactor), tagged with the qpair's generation.
  // on_first_use runs (on this reactor) when the first channel opens here
  // and no qpair was made for it yet: the controller then makes one.
  ReactorPath(Reactor& r, std::function<void(uint64_t gen)> on_lost,
              std::function<void()> on_first_use = nullptr);
  ~ReactorPath();
  ReactorPath(const ReactorPath&) = delete;
  ReactorPath& operator=(const ReactorPath&) = delete;

  Reactor& reactor() const { return reactor_; }

  // ---- owner reactor; the main reactor sends these ----
  // A connected qpair: queued I/O goes out on it, fail-fast ends.
  void attach(std::unique_ptr<IoQpair> qp, uint64_t gen);
  // Drops the qpair; its outstanding I/O is queued again for the next one.
  void detach();
  // Fails queued I/O now and new I/O at once, until the next attach.
  void fail_fast();
  // The controller is gone: detach, fail everything, for good.
  void shutdown();

  // A channel opens on this reactor (owner thread).
  void add_user();

  // ---- I/O path ----
  void submit(NsChannel* ch, uint32_t nsid, BdevIo* io);
  // The channel closes: its queued I/O completes as aborted.
  void forget(NsChannel* ch);

  size_t queued() const { return queued_count_; }

 private:
  struct Io {
    ReactorPath* owner = nullptr;
    NsChannel* ch = nullptr;  // null once the channel closed while in flight
    BdevIo* io = nullptr;
    uint32_t nsid = 0;
    Io* next = nullptr;
    // A deallocate's one Dataset Management range, sent as its data.
    ::nvemu::nvme::DsmRange range{};
    struct iovec range_iov {};
  };
  Io* get_io();
  void put_io(Io* io);
  void enqueue(Io* io);
  void drain();
  bool try_submit(Io* io);
  int poll();
  void lost();
  void complete(Io* io, IoStatus s);
  static void done(void* ctx, const ::nvemu::nvme::Cqe& cqe);

  Reactor& reactor_;
  std::function<void(uint64_t)> on_lost_;
  std::function<void()> on_first_use_;
  bool asked_ = false;
  std::unique_ptr<IoQpair> qp_;
  uint64_t gen_ = 0;
  int fd_ = -1;
  Reactor::PollerId poller_ = 0;
  Reactor::PassTask flush_;
  bool fail_fast_ = false, dead_ = false;
  // Queued I/O, in order; a free list of Io records grown on demand.
  Io *head_ = nullptr, *tail_ = nullptr, *free_ = nullptr;
  size_t queued_count_ = 0;
  std::vector<std::unique_ptr<Io[]>> blocks_;
};

// A namespace bdev's channel: hands its I/O to the reactor's path.
class NsChannel final : public Channel {
 public:
  NsChannel(Bdev& b, uint32_t nsid, std::shared_ptr<ReactorPath> path);
  ~NsChannel() override;
  void finish(BdevIo* io, IoStatus s) { complete(io, s); }

 protected:
  void do_submit(BdevIo* io) override;

 private:
  uint32_t nsid_;
  std::shared_ptr<ReactorPath> path_;
};

}  // namespace nvemu::bdev::nvme
