#include "bdev/uring.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "common/log.h"
#include "reactor/reactor.h"

namespace nvemu::bdev {
namespace {

constexpr const char* kLog = "bdev_uring";
// Ring size and the most I/Os a channel has in flight. The CQ ring is twice
// the SQ ring, so with one SQE per in-flight I/O it never overflows.
constexpr unsigned kQueueDepth = 128;
// Bounce buffers for unaligned iovecs under O_DIRECT, allocated when the
// channel opens. Larger I/Os take a one-off aligned allocation.
constexpr unsigned kBounceBufs = 16;
constexpr size_t kBounceBufSize = 128 * 1024;
// Zero source for write_zeroes when fallocate cannot zero; every iovec of
// such a write points at it.
constexpr size_t kZeroBufSize = 128 * 1024;
constexpr size_t kBufAlign = 4096;

// Set by tests before creating a bdev, on the creating thread.
UringTestHooks g_hooks;

bool is_pow2(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// The one errno -> IoStatus mapping of this backend (documented in uring.h).
IoStatus map_errno(int err, IoType type) {
  switch (err) {
    case ENODATA:
      return type == IoType::kRead ? IoStatus::kMediaRead : IoStatus::kMediaWrite;
    case ENOSPC:
    case EDQUOT:
      return IoStatus::kMediaWrite;
    case ENOMEM:
    case ENOBUFS:
      return IoStatus::kNoMem;
    case ECANCELED:
      return IoStatus::kAborted;
    default:
      return IoStatus::kError;
  }
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuf = std::unique_ptr<uint8_t, AlignedFree>;

AlignedBuf aligned_buf(size_t len) {
  len = (len + kBufAlign - 1) / kBufAlign * kBufAlign;
  return AlignedBuf(static_cast<uint8_t*>(std::aligned_alloc(kBufAlign, len)));
}

class UringBdevImpl final : public UringBdev {
 public:
  UringBdevImpl(const std::string& name, const std::string& filename, uint32_t block_size,
                uint64_t num_blocks, int fd, bool direct, uint32_t mem_align, uint32_t len_align)
      : UringBdev(name, "URING bdev", block_size, num_blocks),
        filename_(filename),
        fd_(fd),
        direct_(direct),
        mem_align_(mem_align),
        len_align_(len_align) {}
  ~UringBdevImpl() override { close(fd_); }

  const std::string& filename() const override { return filename_; }
  bool direct_io() const override { return direct_; }
  int fd() const { return fd_; }
  uint32_t mem_align() const { return mem_align_; }
  uint32_t len_align() const { return len_align_; }

  // Learned per bdev on the first EOPNOTSUPP, so later I/Os skip the
  // fallocate mode the file system lacks.
  std::atomic<bool> zero_range_ok{true};
  std::atomic<bool> punch_hole_ok{true};

  bool has_write_cache() const override { return true; }
  bool supports(IoType type) const override {
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
  std::unique_ptr<Channel> open_channel() override;
  std::string module_name() const override { return "uring"; }
  nlohmann::json driver_specific() const override { return {{"uring", {{"filename", filename_}}}}; }
  nlohmann::json config_entry() const override {
    return {{"method", "bdev_uring_create"},
            {"params",
             {{"name", name()},
              {"filename", filename_},
              {"block_size", block_size()},
              {"uuid", uuid()}}}};
  }

 private:
  std::string filename_;
  int fd_;
  bool direct_;
  uint32_t mem_align_;  // O_DIRECT: iov_base alignment
  uint32_t len_align_;  // O_DIRECT: iov_len and file offset alignment
};

// What an in-flight I/O is doing now. Unmap and write_zeroes step down
// kZeroRange -> kPunchHole -> kWriteZeroBuf as the file system refuses.
enum class Op : uint8_t { kReadv, kWritev, kFsync, kZeroRange, kPunchHole, kWriteZeroBuf };

// Per-I/O state, from a fixed per-channel array: one SQE in flight at most.
struct Task {
  BdevIo* io = nullptr;
  Op op = Op::kReadv;
  uint64_t offset = 0;       // byte offset of the whole I/O
  uint64_t len = 0;          // bytes of the whole I/O
  uint64_t done = 0;         // bytes transferred so far (short reads/writes)
  bool direct_iovs = false;  // the caller's iovecs cover exactly len: pass them on
  uint8_t* bounce = nullptr;
  AlignedBuf owned;        // a bounce buffer larger than the pool's
  struct iovec one {};     // the bounce buffer's iovec
  std::vector<iovec> iov;  // rest of a short transfer; zero-buffer iovecs
  Task* next_free = nullptr;
};

class UringChannel final : public Channel {
 public:
  UringChannel(UringBdevImpl& b, Reactor* reactor) : Channel(b), b_(b), reactor_(reactor) {}
  ~UringChannel() override;

  // Sets up the ring, eventfd, file registration and buffers.
  bool init(std::string* error);

 protected:
  void do_submit(BdevIo* io) override;

 private:
  enum class Prep : uint8_t { kIssue, kDone, kWait };
  bool start(BdevIo* io);  // false: out of tasks or bounce buffers; stays pending
  Prep prepare_rw(Task* t);
  void issue(Task* t);
  void flush_sq();
  void reap();
  int process_cqes();
  void on_cqe(Task* t, int res);
  void finish(Task* t, IoStatus status);
  void run_pending();
  void build_rest_iovs(Task* t);
  void build_zero_iovs(Task* t);

  UringBdevImpl& b_;
  Reactor* reactor_;
  struct io_uring ring_ {};
  bool ring_ok_ = false;
  int efd_ = -1;
  bool efd_watched_ = false;  // added to the reactor
  bool fixed_file_ = false;
  std::vector<Task> tasks_;
  Task* free_tasks_ = nullptr;
  AlignedBuf pool_;
  std::vector<uint8_t*> free_bounce_;
  AlignedBuf zero_buf_;
  std::deque<BdevIo*> pending_;
  unsigned inflight_ = 0;  // SQEs prepared and not yet reaped
  bool in_reap_ = false;
  bool closing_ = false;
  Reactor::TimerId retry_timer_ = 0;
};

std::unique_ptr<Channel> UringBdevImpl::open_channel() {
  Reactor* r = Reactor::current();
  if (!r) {
    LOG_ERROR(kLog, "{}: a uring channel must be opened on a reactor thread", name());
    return nullptr;
  }
  auto ch = std::make_unique<UringChannel>(*this, r);
  std::string error;
  if (!ch->init(&error)) {
    LOG_ERROR(kLog, "{}: cannot open a channel on {}: {}", name(), filename_, error);
    return nullptr;
  }
  return ch;
}

bool UringChannel::init(std::string* error) {
  int rc = io_uring_queue_init(kQueueDepth, &ring_, 0);
  if (rc < 0) {
    *error = fmt::format(
        "io_uring_queue_init: {}; check that io_uring is enabled "
        "(sysctl kernel.io_uring_disabled=0, no seccomp filter) and RLIMIT_MEMLOCK",
        strerror(-rc));
    return false;
  }
  ring_ok_ = true;
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) {
    *error = fmt::format("eventfd: {}; raise the open file limit (ulimit -n)", strerror(errno));
    return false;
  }
  rc = io_uring_register_eventfd(&ring_, efd_);
  if (rc < 0) {
    *error = fmt::format("io_uring_register_eventfd: {}", strerror(-rc));
    return false;
  }
  int fd = b_.fd();
  fixed_file_ = io_uring_register_files(&ring_, &fd, 1) == 0;
  if (!fixed_file_)
    LOG_INFO(kLog, "{}: io_uring_register_files failed; using the plain fd", b_.name());

  tasks_.resize(kQueueDepth);
  for (Task& t : tasks_) {
    t.next_free = free_tasks_;
    free_tasks_ = &t;
  }
  zero_buf_ = aligned_buf(kZeroBufSize);
  if (b_.direct_io()) pool_ = aligned_buf(kBounceBufs * kBounceBufSize);
  if (!zero_buf_ || (b_.direct_io() && !pool_)) {
    *error = "cannot allocate the channel's buffers; free memory";
    return false;
  }
  std::memset(zero_buf_.get(), 0, kZeroBufSize);
  if (b_.direct_io()) {
    for (unsigned i = 0; i < kBounceBufs; ++i)
      free_bounce_.push_back(pool_.get() + i * kBounceBufSize);
  }
  reactor_->add_fd(efd_, EPOLLIN, [this](uint32_t) {
    uint64_t v;
    [[maybe_unused]] ssize_t n = read(efd_, &v, sizeof v);
    reap();
  });
  efd_watched_ = true;
  return true;
}

UringChannel::~UringChannel() {
  assert(Reactor::current() == reactor_);
  closing_ = true;
  // I/Os that never reached the ring are cancelled; those in flight finish:
  // their buffers belong to the caller and the kernel may still write them.
  std::deque<BdevIo*> pending = std::move(pending_);
  pending_.clear();
  for (BdevIo* io : pending) complete(io, IoStatus::kAborted);
  if (ring_ok_) {
    while (inflight_ > 0) {
      int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        LOG_ERROR(kLog, "{}: draining {} I/Os before close: {}", b_.name(), inflight_,
                  strerror(-rc));
        break;
      }
      process_cqes();
    }
  }
  if (retry_timer_) reactor_->cancel_timer(retry_timer_);
  if (efd_ >= 0) {
    if (efd_watched_) reactor_->remove_fd(efd_);
    close(efd_);
  }
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

void UringChannel::do_submit(BdevIo* io) {
  assert(Reactor::current() == reactor_);
  if (closing_) {
    complete(io, IoStatus::kAborted);
    return;
  }
  // Keep order: nothing overtakes an I/O already waiting for resources.
  if (!pending_.empty() || !start(io)) pending_.push_back(io);
  flush_sq();
  reap();  // opportunistic: buffered I/O often completes during submit
}

bool UringChannel::start(BdevIo* io) {
  Task* t = free_tasks_;
  if (!t) return false;
  const uint64_t bs = b_.block_size();
  t->io = io;
  t->offset = io->offset_blocks * bs;
  t->len = io->num_blocks * bs;
  t->done = 0;
  t->bounce = nullptr;
  switch (io->type) {
    case IoType::kRead:
      t->op = Op::kReadv;
      break;
    case IoType::kWrite:
      t->op = Op::kWritev;
      break;
    case IoType::kFlush:
      t->op = Op::kFsync;
      break;
    case IoType::kWriteZeroes:
    case IoType::kUnmap:
      t->op = b_.zero_range_ok.load(std::memory_order_relaxed) && io->type == IoType::kWriteZeroes
                  ? Op::kZeroRange
              : b_.punch_hole_ok.load(std::memory_order_relaxed) ? Op::kPunchHole
                                                                 : Op::kWriteZeroBuf;
      break;
  }
  if (t->len == 0 && io->type != IoType::kFlush) {
    complete(io, IoStatus::kSuccess);  // nothing to transfer
    return true;
  }
  if (t->op == Op::kReadv || t->op == Op::kWritev) {
    // t stays on the free list until issued: after kDone a callback may
    // already have reused it, so it is not touched again.
    Prep p = prepare_rw(t);
    if (p != Prep::kIssue) return p == Prep::kDone;
  }
  free_tasks_ = t->next_free;
  issue(t);
  return true;
}

// Decides between the caller's iovecs and a bounce buffer: kIssue, kDone
// (completed with an error) or kWait (no bounce buffer free).
UringChannel::Prep UringChannel::prepare_rw(Task* t) {
  BdevIo* io = t->io;
  const bool direct = b_.direct_io();
  const uint64_t mem_mask = b_.mem_align() - 1, len_mask = b_.len_align() - 1;
  uint64_t total = 0, raw = 0;
  bool aligned = true;
  for (int i = 0; i < io->iovcnt; ++i) {
    raw += io->iovs[i].iov_len;
    if (total == t->len) continue;
    uint64_t n = std::min<uint64_t>(io->iovs[i].iov_len, t->len - total);
    if (direct &&
        ((reinterpret_cast<uintptr_t>(io->iovs[i].iov_base) & mem_mask) || (n & len_mask)))
      aligned = false;
    total += n;
  }
  if (total < t->len) {
    // A short buffer is the caller's bug; never touch memory past it.
    complete(io, IoStatus::kError);
    return Prep::kDone;
  }
  // Iovecs longer than the I/O are clipped (build_rest_iovs), never passed on.
  t->direct_iovs = raw == t->len;
  if (aligned && io->iovcnt <= IOV_MAX) return Prep::kIssue;
  if (t->len <= kBounceBufSize) {
    if (free_bounce_.empty()) return Prep::kWait;
    t->bounce = free_bounce_.back();
    free_bounce_.pop_back();
  } else {
    // Unaligned and larger than a pool buffer: the one allocating path.
    t->owned = aligned_buf(t->len);
    if (!t->owned) {
      complete(io, IoStatus::kNoMem);
      return Prep::kDone;
    }
    t->bounce = t->owned.get();
  }
  if (t->op == Op::kWritev) {
    uint64_t off = 0;
    for (int i = 0; i < io->iovcnt && off < t->len; ++i) {
      uint64_t n = std::min<uint64_t>(io->iovs[i].iov_len, t->len - off);
      std::memcpy(t->bounce + off, io->iovs[i].iov_base, n);
      off += n;
    }
  }
  return Prep::kIssue;
}

// The caller's iovecs from t->done on, clipped to the I/O's length.
void UringChannel::build_rest_iovs(Task* t) {
  t->iov.clear();
  uint64_t skip = t->done, want = t->len - t->done;
  for (int i = 0; i < t->io->iovcnt && want > 0; ++i) {
    const iovec& v = t->io->iovs[i];
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    uint64_t n = std::min<uint64_t>(v.iov_len - skip, want);
    t->iov.push_back({static_cast<uint8_t*>(v.iov_base) + skip, n});
    skip = 0;
    want -= n;
  }
}

void UringChannel::build_zero_iovs(Task* t) {
  t->iov.clear();
  uint64_t want = t->len - t->done;
  while (want > 0 && t->iov.size() < IOV_MAX) {
    uint64_t n = std::min<uint64_t>(want, kZeroBufSize);
    t->iov.push_back({zero_buf_.get(), n});
    want -= n;
  }
}

// Prepares the SQE for the task's current step. At most kQueueDepth tasks
// exist and each has one SQE outstanding, so the SQ ring always has room.
void UringChannel::issue(Task* t) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    flush_sq();
    sqe = io_uring_get_sqe(&ring_);
  }
  assert(sqe);
  const int fd = fixed_file_ ? 0 : b_.fd();
  const uint64_t off = t->offset + t->done;
  switch (t->op) {
    case Op::kReadv:
    case Op::kWritev: {
      const iovec* iov;
      int cnt;
      if (t->bounce) {
        t->one = {t->bounce + t->done, t->len - t->done};
        iov = &t->one;
        cnt = 1;
      } else if (t->done == 0 && t->direct_iovs) {  // the common path
        iov = t->io->iovs;
        cnt = t->io->iovcnt;
      } else {
        build_rest_iovs(t);
        iov = t->iov.data();
        cnt = static_cast<int>(t->iov.size());
      }
      if (t->op == Op::kReadv)
        io_uring_prep_readv(sqe, fd, iov, cnt, off);
      else  // FUA: RWF_DSYNC makes this write durable (data + size) before its CQE
        io_uring_prep_writev2(sqe, fd, iov, cnt, off, t->io->fua ? RWF_DSYNC : 0);
      break;
    }
    case Op::kWriteZeroBuf:
      build_zero_iovs(t);
      io_uring_prep_writev(sqe, fd, t->iov.data(), static_cast<int>(t->iov.size()), off);
      break;
    case Op::kFsync:  // FLUSH completes when fdatasync(2) has returned
      io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
      break;
    case Op::kZeroRange:
      io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(t->offset), static_cast<off_t>(t->len));
      break;
    case Op::kPunchHole:
      io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(t->offset), static_cast<off_t>(t->len));
      break;
  }
  if (fixed_file_) io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
  io_uring_sqe_set_data(sqe, t);
  ++inflight_;
}

void UringChannel::flush_sq() {
  if (io_uring_sq_ready(&ring_) == 0) return;
  int rc;
  do {
    rc = io_uring_submit(&ring_);
  } while (rc == -EINTR);
  if (rc >= 0 || retry_timer_) return;
  // The kernel is short of resources (EAGAIN) or holds unreaped completions
  // (EBUSY): the SQEs stay queued and go in on the next reap or on this timer.
  LOG_DEBUG(kLog, "{}: io_uring_submit: {}; retrying", b_.name(), strerror(-rc));
  retry_timer_ = reactor_->add_timer(std::chrono::milliseconds(1), [this] {
    retry_timer_ = 0;
    flush_sq();
    reap();
  });
}

int UringChannel::process_cqes() {
  int n = 0;
  struct io_uring_cqe* cqe;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
    auto* t = static_cast<Task*>(io_uring_cqe_get_data(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --inflight_;
    on_cqe(t, res);
    ++n;
  }
  return n;
}

void UringChannel::reap() {
  if (in_reap_) return;  // a completion callback submitted: the outer loop reaps
  in_reap_ = true;
  for (;;) {
    int n = process_cqes();
    if (!closing_) run_pending();
    flush_sq();
    if (n == 0 && io_uring_cq_ready(&ring_) == 0) break;
  }
  in_reap_ = false;
}

void UringChannel::run_pending() {
  while (!pending_.empty()) {
    BdevIo* io = pending_.front();
    if (!start(io)) break;
    pending_.pop_front();
  }
}

void UringChannel::on_cqe(Task* t, int res) {
  if (res == -EINTR || res == -EAGAIN) {
    issue(t);
    return;
  }
  switch (t->op) {
    case Op::kReadv:
    case Op::kWritev:
    case Op::kWriteZeroBuf: {
      if (res < 0) return finish(t, map_errno(-res, t->io->type));
      if (res == 0) {
        // End of file (the file shrank) or a device that takes no more.
        return finish(t, t->op == Op::kReadv ? IoStatus::kMediaRead : IoStatus::kMediaWrite);
      }
      t->done += static_cast<uint64_t>(res);
      if (t->done < t->len) {
        // A short transfer: issue the rest, unless O_DIRECT cannot continue
        // from an unaligned point, which only end of file produces.
        if (b_.direct_io() && ((t->offset + t->done) & (b_.len_align() - 1)))
          return finish(t, t->op == Op::kReadv ? IoStatus::kMediaRead : IoStatus::kMediaWrite);
        return issue(t);
      }
      if (t->op == Op::kReadv && t->bounce) {
        uint64_t off = 0;
        for (int i = 0; i < t->io->iovcnt && off < t->len; ++i) {
          uint64_t n = std::min<uint64_t>(t->io->iovs[i].iov_len, t->len - off);
          std::memcpy(t->io->iovs[i].iov_base, t->bounce + off, n);
          off += n;
        }
      }
      return finish(t, IoStatus::kSuccess);
    }
    case Op::kZeroRange:
      if (res == -EOPNOTSUPP) {
        b_.zero_range_ok.store(false, std::memory_order_relaxed);
        t->op =
            b_.punch_hole_ok.load(std::memory_order_relaxed) ? Op::kPunchHole : Op::kWriteZeroBuf;
        return issue(t);
      }
      break;
    case Op::kPunchHole:
      if (res == -EOPNOTSUPP) {
        b_.punch_hole_ok.store(false, std::memory_order_relaxed);
        t->op = Op::kWriteZeroBuf;
        return issue(t);
      }
      break;
    case Op::kFsync:
      break;
  }
  finish(t, res < 0 ? map_errno(-res, t->io->type) : IoStatus::kSuccess);
}

void UringChannel::finish(Task* t, IoStatus status) {
  BdevIo* io = t->io;
  if (t->bounce && !t->owned) free_bounce_.push_back(t->bounce);
  t->owned.reset();
  t->bounce = nullptr;
  t->io = nullptr;
  t->next_free = free_tasks_;
  free_tasks_ = t;
  if (status != IoStatus::kSuccess)
    LOG_DEBUG(kLog, "{}: I/O at block {} (+{}) failed: {}", b_.name(), io->offset_blocks,
              io->num_blocks, io_status_name(status));
  complete(io, status);  // last: the callback may submit again
}

std::string open_error(const std::string& filename, int err) {
  std::string fix;
  switch (err) {
    case ENOENT:
      fix = fmt::format("create it first (e.g. truncate -s 1G {}) or give an existing block device",
                        filename);
      break;
    case EACCES:
    case EPERM:
      fix = "give nvemu read-write access to it (file mode, owner or group)";
      break;
    case EROFS:
      fix = "the uring bdev needs read-write access; use a writable file system";
      break;
    case EISDIR:
      fix = "give a regular file or a block device, not a directory";
      break;
    case EBUSY:
      fix = "the device is in use (mounted or opened exclusively); release it first";
      break;
    default:
      fix = "check the path and that it is a regular file or a block device";
      break;
  }
  return fmt::format("cannot open {}: {}; {}", filename, strerror(err), fix);
}

}  // namespace

void uring_set_test_hooks(const UringTestHooks& hooks) {
  g_hooks = hooks;
}

std::shared_ptr<Bdev> create_uring_bdev(const std::string& name, const std::string& filename,
                                        uint32_t block_size, std::string* error,
                                        const std::string& uuid) {
  if (name.empty()) {
    *error = "bdev_uring_create: name is empty; give the bdev a name";
    return nullptr;
  }
  if (filename.empty()) {
    *error = "bdev_uring_create: filename is empty; give a regular file or a block device";
    return nullptr;
  }
  if (block_size != 0 && (block_size < 512 || !is_pow2(block_size))) {
    *error = fmt::format(
        "block_size {} for {} is invalid: it must be a power of two and at least 512; "
        "pass 0 to detect it",
        block_size, filename);
    return nullptr;
  }

  bool direct = true;
  int fd = -1;
  if (g_hooks.fail_direct_open)
    errno = EINVAL;
  else
    fd = open(filename.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0 && errno == EINVAL) {
    LOG_NOTICE(kLog,
               "{}: the file system does not support O_DIRECT; using buffered I/O (the page "
               "cache keeps a copy; flush still makes writes durable)",
               filename);
    direct = false;
    fd = open(filename.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) {
    *error = open_error(filename, errno);
    return nullptr;
  }
  auto fail = [&](std::string msg) -> std::shared_ptr<Bdev> {
    close(fd);
    *error = std::move(msg);
    return nullptr;
  };

  struct stat st {};
  if (fstat(fd, &st) != 0)
    return fail(fmt::format("cannot stat {}: {}", filename, strerror(errno)));
  uint64_t size = 0;
  uint32_t logical = 512;          // smallest block the device addresses
  uint32_t mem_align = kBufAlign;  // unknown: a page is always enough
  if (S_ISBLK(st.st_mode)) {
    int ssz = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0 || ioctl(fd, BLKSSZGET, &ssz) != 0 || ssz <= 0)
      return fail(
          fmt::format("cannot read the size of block device {}: {}", filename, strerror(errno)));
    logical = static_cast<uint32_t>(ssz);
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else {
    return fail(fmt::format("{} is neither a regular file nor a block device; give one of those",
                            filename));
  }
  if (direct) {
    struct statx sx {};
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
        sx.stx_dio_offset_align > 0) {
      logical = std::max(logical, sx.stx_dio_offset_align);
      mem_align = std::max<uint32_t>(sx.stx_dio_mem_align, 1);
    } else if (S_ISBLK(st.st_mode)) {
      mem_align = logical;
    }
  }

  if (block_size == 0) {
    block_size = logical;
  } else if (block_size < logical) {
    return fail(fmt::format(
        "block_size {} is smaller than the {}-byte logical block size of {}; use {} (or a "
        "larger power of two), or 0 to detect it",
        block_size, logical, filename, logical));
  } else if (block_size != logical) {
    LOG_NOTICE(kLog, "{}: block_size {} differs from the detected {}", filename, block_size,
               logical);
  }
  uint64_t num_blocks = size / block_size;
  if (num_blocks == 0)
    return fail(fmt::format(
        "{} holds {} bytes, less than one {}-byte block; grow it (e.g. truncate -s 1G {})",
        filename, size, block_size, filename));
  if (size % block_size != 0)
    LOG_WARN(kLog, "{}: size {} is not a multiple of block_size {}; the last {} bytes are unused",
             filename, size, block_size, size % block_size);

  auto b = std::make_shared<UringBdevImpl>(name, filename, block_size, num_blocks, fd, direct,
                                           mem_align, logical);
  if (!uuid.empty()) {
    b->set_uuid(uuid);
  } else {
    char* real = realpath(filename.c_str(), nullptr);
    b->set_uuid(name_based_uuid(kNvemuUuidNamespace,
                                fmt::format("uring:{}:{}", name, real ? real : filename)));
    std::free(real);
  }
  if (g_hooks.no_fallocate) {
    b->zero_range_ok = false;
    b->punch_hole_ok = false;
  }
  LOG_INFO(kLog, "created {} on {}: {} x {} B, {} I/O", name, filename, num_blocks, block_size,
           direct ? "direct" : "buffered");
  return b;
}

}  // namespace nvemu::bdev
