#include "bdev/rbd/rbd.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "common/log.h"
#include "reactor/mpsc_queue.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::rbd {
namespace {

constexpr const char* kLog = "bdev_rbd";

class RbdChannel;

// One I/O in librbd. From the channel's pool; the pool only grows (to the
// deepest queue seen), so steady-state submission allocates nothing of ours.
struct Task {
  BdevIo* io = nullptr;
  RbdChannel* ch = nullptr;
  uint64_t len = 0;
  int64_t ret = 0;
  std::vector<iovec> clipped;  // the caller's iovecs cut to len, when longer
  Task* next_free = nullptr;
};

class RbdChannel final : public Channel {
 public:
  RbdChannel(RbdBdev& b, Reactor* reactor) : Channel(b), b_(b), reactor_(reactor) {}
  ~RbdChannel() override;
  bool init(std::string* error);

  // librbd's completion thread.
  static void on_complete(rbd_completion_t c, void* arg);

 protected:
  void do_submit(BdevIo* io) override;

 private:
  Task* get_task();
  void drain();  // the eventfd fired
  void reap();
  void finish(Task* t);

  RbdBdev& b_;
  Reactor* reactor_;
  int efd_ = -1;
  MpscQueue<Task*> done_;
  // Callbacks between their first and last touch of this channel; the
  // destructor waits for none to remain.
  std::atomic<int> callbacks_{0};
  // Set by the first completion after a drain, which writes the eventfd.
  std::atomic<bool> armed_{false};
  std::deque<Task> tasks_;
  Task* free_ = nullptr;
  uint64_t inflight_ = 0;
};

bool RbdChannel::init(std::string* error) {
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) {
    *error = fmt::format("eventfd: {}; raise the open file limit (ulimit -n)", strerror(errno));
    return false;
  }
  reactor_->add_fd(efd_, EPOLLIN, [this](uint32_t) { drain(); });
  return true;
}

RbdChannel::~RbdChannel() {
  assert(Reactor::current() == reactor_);
  // librbd cannot cancel: wait for what is in flight, whose buffers belong
  // to callers and may still be written.
  while (inflight_ > 0) {
    pollfd pfd{efd_, POLLIN, 0};
    poll(&pfd, 1, 1000);
    drain();
  }
  while (callbacks_.load(std::memory_order_acquire) > 0) sched_yield();
  if (efd_ >= 0) {
    reactor_->remove_fd(efd_);
    close(efd_);
  }
}

Task* RbdChannel::get_task() {
  if (!free_) {
    tasks_.emplace_back();
    tasks_.back().ch = this;
    return &tasks_.back();
  }
  Task* t = free_;
  free_ = t->next_free;
  return t;
}

void RbdChannel::on_complete(rbd_completion_t c, void* arg) {
  auto* t = static_cast<Task*>(arg);
  RbdChannel* ch = t->ch;  // t may be reused once pushed
  ch->callbacks_.fetch_add(1, std::memory_order_acq_rel);
  t->ret = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  ch->done_.push(t);
  // One eventfd write per batch: none while the reactor has a wake-up
  // pending that will drain this push too.
  if (!ch->armed_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(ch->efd_, &one, sizeof one);
  }
  ch->callbacks_.fetch_sub(1, std::memory_order_acq_rel);
}

void RbdChannel::do_submit(BdevIo* io) {
  assert(Reactor::current() == reactor_);
  const uint64_t bs = b_.block_size();
  const uint64_t off = io->offset_blocks * bs, len = io->num_blocks * bs;
  if (len == 0 && io->type != IoType::kFlush) return complete(io, IoStatus::kSuccess);

  Task* t = get_task();
  t->io = io;
  t->len = len;
  const iovec* iov = io->iovs;
  int iovcnt = io->iovcnt;
  if (io->type == IoType::kRead || io->type == IoType::kWrite) {
    // librbd transfers every byte of the iovecs: cut longer ones to len.
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; ++i) total += io->iovs[i].iov_len;
    if (total < len) {
      t->next_free = free_;
      free_ = t;
      return complete(io, IoStatus::kError);  // the caller's bug; touch nothing
    }
    if (total > len) {
      t->clipped.clear();
      uint64_t want = len;
      for (int i = 0; i < iovcnt && want > 0; ++i) {
        uint64_t n = std::min<uint64_t>(io->iovs[i].iov_len, want);
        t->clipped.push_back({io->iovs[i].iov_base, n});
        want -= n;
      }
      iov = t->clipped.data();
      iovcnt = static_cast<int>(t->clipped.size());
    }
  }

  rbd_completion_t c;
  int rc = rbd_aio_create_completion(t, &RbdChannel::on_complete, &c);
  if (rc == 0) {
    rbd_image_t img = b_.image();
    switch (io->type) {
      case IoType::kRead:
        rc = rbd_aio_readv(img, iov, iovcnt, off, c);
        break;
      case IoType::kWrite:
        rc = rbd_aio_writev(img, iov, iovcnt, off, c);
        break;
      case IoType::kFlush:
        rc = rbd_aio_flush(img, c);
        break;
      case IoType::kUnmap:
        rc = rbd_aio_discard(img, off, len, c);
        break;
      case IoType::kWriteZeroes:
        rc = rbd_aio_write_zeroes(img, off, len, c, 0, 0);
        break;
    }
    if (rc < 0) rbd_aio_release(c);
  }
  if (rc < 0) {
    t->next_free = free_;
    free_ = t;
    IoStatus st = map_rbd_status(rc, io->type, len);
    LOG_DEBUG(kLog, "{}: submitting at block {} (+{}): {}", b_.name(), io->offset_blocks,
              io->num_blocks, strerror(-rc));
    return complete(io, st);
  }
  ++inflight_;
}

void RbdChannel::drain() {
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(efd_, &v, sizeof v);
  // An exchange, not a store: it acquires the pushes of every callback that
  // saw armed_ set and skipped its write, so reap() finds them.
  armed_.exchange(false, std::memory_order_acq_rel);
  reap();
}

void RbdChannel::reap() {
  Task* t;
  while (done_.pop(&t)) finish(t);
}

void RbdChannel::finish(Task* t) {
  BdevIo* io = t->io;
  IoStatus st = map_rbd_status(t->ret, io->type, t->len);
  if (st != IoStatus::kSuccess)
    LOG_DEBUG(kLog, "{}: I/O at block {} (+{}) returned {}: {}", b_.name(), io->offset_blocks,
              io->num_blocks, t->ret, io_status_name(st));
  t->io = nullptr;
  t->next_free = free_;
  free_ = t;
  --inflight_;
  complete(io, st);  // last: the callback may submit again
}

}  // namespace

IoStatus map_rbd_status(int64_t rc, IoType type, uint64_t expected_len) {
  const bool read = type == IoType::kRead;
  if (rc >= 0) {
    // A read returns its byte count; short means the image ended early.
    if (read && static_cast<uint64_t>(rc) != expected_len) return IoStatus::kMediaRead;
    return IoStatus::kSuccess;
  }
  switch (-rc) {
    case EIO:
    case ENOENT:
      return read ? IoStatus::kMediaRead : IoStatus::kMediaWrite;
    case ENOSPC:
    case EDQUOT:
      return IoStatus::kMediaWrite;
    case EINVAL:
    case ERANGE:
      return IoStatus::kOutOfRange;
    case ENOMEM:
      return IoStatus::kNoMem;
    case ECANCELED:
    case ESHUTDOWN:
      return IoStatus::kAborted;
    default:
      return IoStatus::kError;
  }
}

Image::~Image() {
  rbd_flush(image_);
  rbd_close(image_);
  rados_ioctx_destroy(ioctx_);
}

OpenResult open_image(std::shared_ptr<Connection> conn, const std::string& pool,
                      const std::string& image, const std::string& where) {
  OpenResult out;
  rados_ioctx_t ioctx = nullptr;
  int rc = rados_ioctx_create(conn->handle(), pool.c_str(), &ioctx);
  if (rc < 0) {
    out.err = rc;
    out.message = rc == -ENOENT
                      ? fmt::format(
                            "pool '{}' does not exist in {}; create it (ceph osd pool create {} && "
                            "rbd pool init {}) or give an existing pool_name",
                            pool, where, pool, pool)
                      : fmt::format("cannot open pool '{}' in {}: {}", pool, where, strerror(-rc));
    return out;
  }
  rbd_image_t img = nullptr;
  rc = rbd_open(ioctx, image.c_str(), &img, nullptr);
  if (rc < 0) {
    rados_ioctx_destroy(ioctx);
    out.err = rc;
    out.message = rc == -ENOENT ? fmt::format(
                                      "image '{}' does not exist in pool '{}' of {}; create it "
                                      "(rbd create --size 1G {}/{}) or give an existing rbd_name",
                                      image, pool, where, pool, image)
                                : fmt::format("cannot open image '{}/{}' in {}: {}", pool, image,
                                              where, strerror(-rc));
    return out;
  }
  rbd_image_info_t info{};
  rc = rbd_stat(img, &info, sizeof info);
  if (rc < 0) {
    rbd_close(img);
    rados_ioctx_destroy(ioctx);
    out.err = rc;
    out.message = fmt::format("cannot stat image '{}/{}': {}", pool, image, strerror(-rc));
    return out;
  }
  out.image = std::make_shared<Image>(std::move(conn), ioctx, img);
  out.size_bytes = info.size;
  return out;
}

RbdBdev::RbdBdev(const RbdParams& p, std::shared_ptr<Image> image, uint64_t num_blocks)
    : Bdev(p.name, "Ceph Rbd Disk", p.block_size, num_blocks), p_(p), image_(std::move(image)) {
  write_cache_ = image_->connection().conf("rbd_cache") == "true";
  if (!p.uuid.empty()) set_uuid(p.uuid);
}

bool RbdBdev::supports(IoType type) const {
  switch (type) {
    case IoType::kRead:
    case IoType::kWrite:
    case IoType::kFlush:
    case IoType::kUnmap:
    case IoType::kWriteZeroes:
      return true;
  }
  return false;
}

std::unique_ptr<Channel> RbdBdev::open_channel() {
  Reactor* r = Reactor::current();
  if (!r) {
    LOG_ERROR(kLog, "{}: an rbd channel must be opened on a reactor thread", name());
    return nullptr;
  }
  auto ch = std::make_unique<RbdChannel>(*this, r);
  std::string error;
  if (!ch->init(&error)) {
    LOG_ERROR(kLog, "{}: cannot open a channel: {}", name(), error);
    return nullptr;
  }
  return ch;
}

nlohmann::json RbdBdev::driver_specific() const {
  nlohmann::json rbd = {{"pool_name", p_.pool_name}, {"rbd_name", p_.rbd_name}};
  if (!p_.cluster_name.empty()) {
    // As SPDK: a shared cluster's entry, not the bdev's own settings.
    if (const auto* e = Clusters::instance().find(p_.cluster_name))
      e->params.add_to(rbd, "config_param");
  } else {
    if (p_.private_conn.user_id) rbd["user_id"] = *p_.private_conn.user_id;
    if (p_.private_conn.config) rbd["config"] = config_map_json(*p_.private_conn.config);
  }
  return {{"rbd", rbd}};
}

nlohmann::json RbdBdev::config_entry() const {
  nlohmann::json params = {{"name", name()},
                           {"pool_name", p_.pool_name},
                           {"rbd_name", p_.rbd_name},
                           {"block_size", block_size()}};
  if (p_.private_conn.user_id) params["user_id"] = *p_.private_conn.user_id;
  if (p_.private_conn.config) params["config"] = config_map_json(*p_.private_conn.config);
  // SPDK v23.01 leaves cluster_name out, so its saved bdev cannot find its
  // cluster on replay; nvemu writes it (as later SPDK releases do).
  if (!p_.cluster_name.empty()) params["cluster_name"] = p_.cluster_name;
  params["uuid"] = uuid();
  return {{"method", "bdev_rbd_create"}, {"params", params}};
}

}  // namespace nvemu::bdev::rbd
