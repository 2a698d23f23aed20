// Per-reactor I/O: no locks, no allocation once the Io records for the
// reactor's queue depth exist. A lost qpair's I/O is queued again, in order,
// and goes out on the next qpair the controller hands over.
#include "bdev/nvme/channel.h"

#include "common/log.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;

constexpr size_t kIoBlock = 256;

// Statuses that say the path, not the command, failed: the I/O is retried
// on the next connection instead of failing.
bool path_error(const n::Cqe& c) {
  if (c.sct() == static_cast<uint8_t>(n::Sct::kPath)) return true;
  return c.sct() == 0 &&
         (c.sc() == n::sc::kTransientTransportError || c.sc() == n::sc::kAbortedSqDeletion);
}

IoStatus to_io_status(const n::Cqe& c) {
  if ((c.status >> 1) == 0) return IoStatus::kSuccess;
  if (c.sct() == 0 && c.sc() == n::sc::kLbaOutOfRange) return IoStatus::kOutOfRange;
  if (c.sct() == static_cast<uint8_t>(n::Sct::kMediaError)) {
    if (c.sc() == 0x81) return IoStatus::kMediaRead;
    if (c.sc() == 0x80) return IoStatus::kMediaWrite;
  }
  return IoStatus::kError;
}

}  // namespace

ReactorPath::ReactorPath(Reactor& r, std::function<void(uint64_t)> on_lost,
                         std::function<void()> on_first_use)
    : reactor_(r),
      on_lost_(std::move(on_lost)),
      on_first_use_(std::move(on_first_use)),
      flush_(r, [this] {
        if (qp_ && (qp_->poll() < 0 || qp_->failed())) lost();
      }) {}

ReactorPath::~ReactorPath() {
  // shutdown() ran on the owner reactor; nothing is registered any more.
  if (poller_) reactor_.remove_poller(poller_);
  if (fd_ >= 0) reactor_.remove_fd(fd_);
}

ReactorPath::Io* ReactorPath::get_io() {
  if (!free_) {
    auto block = std::make_unique<Io[]>(kIoBlock);
    for (size_t i = 0; i < kIoBlock; ++i) put_io(&block[i]);
    blocks_.push_back(std::move(block));
  }
  Io* io = free_;
  free_ = io->next;
  io->next = nullptr;
  io->owner = this;
  return io;
}

void ReactorPath::put_io(Io* io) {
  io->ch = nullptr;
  io->io = nullptr;
  io->next = free_;
  free_ = io;
}

void ReactorPath::enqueue(Io* io) {
  io->next = nullptr;
  if (tail_)
    tail_->next = io;
  else
    head_ = io;
  tail_ = io;
  ++queued_count_;
}

void ReactorPath::complete(Io* io, IoStatus s) {
  NsChannel* ch = io->ch;
  BdevIo* bio = io->io;
  put_io(io);
  if (ch) ch->finish(bio, s);
}

bool ReactorPath::try_submit(Io* io) {
  if (!qp_) return false;
  BdevIo* b = io->io;
  const struct iovec* iovs = b->iovs;
  int iovcnt = b->iovcnt;
  uint32_t len = 0;
  uint8_t opc = n::nvm_opc::kFlush;
  switch (b->type) {
    case IoType::kRead:
    case IoType::kWrite:
      opc = b->type == IoType::kRead ? n::nvm_opc::kRead : n::nvm_opc::kWrite;
      len = static_cast<uint32_t>(b->num_blocks * io->ch->bdev().block_size());
      break;
    case IoType::kFlush:
      break;
    case IoType::kWriteZeroes:
      opc = n::nvm_opc::kWriteZeroes;
      break;
    case IoType::kUnmap:
      opc = n::nvm_opc::kDatasetManagement;
      io->range = {0, static_cast<uint32_t>(b->num_blocks), b->offset_blocks};
      io->range_iov = {&io->range, sizeof io->range};
      iovs = &io->range_iov;
      iovcnt = 1;
      len = sizeof io->range;
      break;
  }
  return qp_->submit(opc, io->nsid, b->offset_blocks, static_cast<uint32_t>(b->num_blocks), iovs,
                     iovcnt, len, &ReactorPath::done, io);
}

void ReactorPath::submit(NsChannel* ch, uint32_t nsid, BdevIo* bio) {
  Io* io = get_io();
  io->ch = ch;
  io->io = bio;
  io->nsid = nsid;
  if (dead_ || fail_fast_) {
    complete(io, IoStatus::kError);
    return;
  }
  // One command each: Write Zeroes counts blocks in 16 bits, a DSM range in 32.
  if ((bio->type == IoType::kWriteZeroes && bio->num_blocks > (1u << 16)) ||
      (bio->type == IoType::kUnmap && bio->num_blocks > UINT32_MAX)) {
    complete(io, IoStatus::kError);
    return;
  }
  if (head_ || !try_submit(io)) {
    enqueue(io);
    return;
  }
  flush_.schedule();
}

void ReactorPath::drain() {
  if (fail_fast_ || dead_) {
    while (head_) {
      Io* io = head_;
      head_ = io->next;
      --queued_count_;
      complete(io, IoStatus::kError);
    }
    tail_ = nullptr;
    return;
  }
  bool sent = false;
  while (head_ && try_submit(head_)) {
    head_ = head_->next;
    --queued_count_;
    sent = true;
  }
  if (!head_) tail_ = nullptr;
  if (sent) flush_.schedule();
}

void ReactorPath::done(void* ctx, const n::Cqe& cqe) {
  Io* io = static_cast<Io*>(ctx);
  ReactorPath* self = io->owner;
  if (!io->ch) {  // its channel closed meanwhile
    self->put_io(io);
    return;
  }
  if (path_error(cqe) && (!self->qp_ || self->qp_->failed()) && !self->fail_fast_ && !self->dead_) {
    self->enqueue(io);  // retried on the next qpair
    return;
  }
  self->complete(io, to_io_status(cqe));
}

int ReactorPath::poll() {
  if (!qp_) return 0;
  int n = qp_->poll();
  if (n < 0 || qp_->failed()) {
    lost();
    return 1;
  }
  if (head_) drain();
  return n;
}

void ReactorPath::lost() {
  LOG_WARN("bdev_nvme", "I/O qpair on reactor {} lost: {}; {} I/O queued until it reconnects",
           reactor_.index(), qp_ ? qp_->error() : std::string("?"), queued_count_);
  uint64_t gen = gen_;
  detach();
  if (on_lost_) on_lost_(gen);
}

void ReactorPath::attach(std::unique_ptr<IoQpair> qp, uint64_t gen) {
  detach();
  if (dead_) return;
  qp_ = std::move(qp);
  gen_ = gen;
  asked_ = true;
  fail_fast_ = false;
  fd_ = qp_->fd();
  if (fd_ >= 0) reactor_.add_fd(fd_, EPOLLIN, [this](uint32_t) { poll(); });
  poller_ = reactor_.add_poller([this] {
    if (!qp_) return 0;
    // Shared-memory queues have no fd to wake the reactor: keep looking
    // while commands are out.
    bool busy = qp_->outstanding() > 0;
    if (fd_ >= 0 && !busy && !head_) return 0;
    int n = poll();
    if (fd_ < 0 && busy) reactor_.limit_sleep_us(50);
    return n;
  });
  drain();
}

void ReactorPath::detach() {
  if (poller_) {
    reactor_.remove_poller(poller_);
    poller_ = 0;
  }
  if (fd_ >= 0) {
    reactor_.remove_fd(fd_);
    fd_ = -1;
  }
  // Destroying the qpair completes what it still had with a path error;
  // with qp_ already null, done() queues those again.
  std::unique_ptr<IoQpair> old = std::move(qp_);
  old.reset();
}

void ReactorPath::add_user() {
  if (asked_ || qp_ || dead_) return;
  asked_ = true;
  if (on_first_use_) on_first_use_();
}

void ReactorPath::fail_fast() {
  fail_fast_ = true;
  drain();
}

void ReactorPath::shutdown() {
  dead_ = true;
  detach();
  drain();
}

void ReactorPath::forget(NsChannel* ch) {
  // Queued I/O of the channel completes now; in-flight I/O is let go of.
  Io** link = &head_;
  Io* last = nullptr;
  while (*link) {
    Io* io = *link;
    if (io->ch == ch) {
      *link = io->next;
      --queued_count_;
      complete(io, IoStatus::kAborted);
      continue;
    }
    last = io;
    link = &io->next;
  }
  tail_ = last;
  for (auto& block : blocks_)
    for (size_t i = 0; i < kIoBlock; ++i)
      if (block[i].ch == ch) block[i].ch = nullptr;
}

NsChannel::NsChannel(Bdev& b, uint32_t nsid, std::shared_ptr<ReactorPath> path)
    : Channel(b), nsid_(nsid), path_(std::move(path)) {
  path_->add_user();
}

NsChannel::~NsChannel() {
  path_->forget(this);
}

void NsChannel::do_submit(BdevIo* io) {
  path_->submit(this, nsid_, io);
}

}  // namespace nvemu::bdev::nvme
