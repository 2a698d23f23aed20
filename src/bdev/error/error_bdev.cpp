#include "bdev/error/error_bdev.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::error {
namespace {

int slot_of(IoType t) {
  switch (t) {
    case IoType::kRead:
      return 0;
    case IoType::kWrite:
      return 1;
    case IoType::kUnmap:
      return 2;
    case IoType::kFlush:
      return 3;
    case IoType::kWriteZeroes:
      break;
  }
  return -1;  // SPDK injects nothing into other types
}

// Takes one unit of an armed slot; false when it is disarmed (or another
// reactor took the last unit first).
bool take(Slot& s) {
  uint32_t n = s.num.load(std::memory_order_acquire);
  while (n != 0)
    if (s.num.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return true;
  return false;
}

// SPDK's vbdev_error_corrupt_io_data: XOR one byte at `offset` of the data.
void corrupt(BdevIo* io, uint64_t offset, uint8_t value) {
  for (int i = 0; i < io->iovcnt; ++i) {
    if (io->iovs[i].iov_len > offset) {
      static_cast<uint8_t*>(io->iovs[i].iov_base)[offset] ^= value;
      return;
    }
    offset -= io->iovs[i].iov_len;
  }
}

}  // namespace

class ErrorChannel final : public VbdevChannel {
 public:
  ErrorChannel(ErrorBdev& b, std::unique_ptr<Channel> base_ch, std::shared_ptr<Shared> shared)
      : VbdevChannel(b, std::move(base_ch)), shared_(std::move(shared)) {
    reactor_ = Reactor::current();
    std::lock_guard lock(shared_->mu);
    shared_->channels.push_back(this);
  }
  ~ErrorChannel() override {
    {
      std::lock_guard lock(shared_->mu);
      std::erase(shared_->channels, this);
    }
    release(IoStatus::kAborted);
  }

  Reactor* reactor() const { return reactor_; }
  uint64_t held() const { return held_count_.load(std::memory_order_relaxed); }

  // On the channel's reactor: completes every held I/O with `status`.
  void release(IoStatus status) {
    std::vector<BdevIo*> held = std::move(held_);
    held_.clear();
    held_count_.store(0, std::memory_order_relaxed);
    for (BdevIo* io : held) complete(io, status);
  }

 protected:
  void do_submit(BdevIo* io) override {
    int si = slot_of(io->type);
    if (si < 0) return forward(io);
    Slot& s = shared_->slots[si];
    if (s.num.load(std::memory_order_relaxed) == 0) return forward(io);  // the common path
    if (in_base() < s.queue_depth.load(std::memory_order_relaxed)) return forward(io);
    ErrorType type = s.type.load(std::memory_order_relaxed);
    // A read is corrupted on its way back (the unit is taken then); other
    // types carry no data to corrupt and pass untouched, as in SPDK.
    if (type == ErrorType::kCorruptData && io->type != IoType::kWrite) return forward(io);
    if (!take(s)) return forward(io);
    switch (type) {
      case ErrorType::kFailure:
        return complete(io, IoStatus::kError);
      case ErrorType::kNoMem:
        return complete(io, IoStatus::kNoMem);
      case ErrorType::kPending:
        held_.push_back(io);
        held_count_.store(held_.size(), std::memory_order_relaxed);
        return;
      case ErrorType::kCorruptData:
        if (io->type == IoType::kWrite)
          corrupt(io, s.corrupt_offset.load(std::memory_order_relaxed),
                  s.corrupt_value.load(std::memory_order_relaxed));
        return forward(io);
      case ErrorType::kNone:
        return forward(io);
    }
  }

  void on_base_done(BdevIo* io, IoStatus status) override {
    if (status == IoStatus::kSuccess && io->type == IoType::kRead) {
      Slot& s = shared_->slots[0];
      if (s.num.load(std::memory_order_relaxed) != 0 &&
          s.type.load(std::memory_order_relaxed) == ErrorType::kCorruptData && take(s))
        corrupt(io, s.corrupt_offset.load(std::memory_order_relaxed),
                s.corrupt_value.load(std::memory_order_relaxed));
    }
    complete(io, status);
  }

 private:
  std::shared_ptr<Shared> shared_;
  Reactor* reactor_ = nullptr;
  std::vector<BdevIo*> held_;
  std::atomic<uint64_t> held_count_{0};
};

ErrorBdev::ErrorBdev(std::shared_ptr<Bdev> base, const std::string& uuid)
    : Vbdev("EE_" + base->name(), "Error Injection Disk", base),
      explicit_uuid_(!uuid.empty()),
      shared_(std::make_shared<Shared>()) {
  // As SPDK's bdev parts: without a uuid, one derived from the base's, so
  // a stable base gives a stable error bdev.
  set_uuid(explicit_uuid_ ? uuid : name_based_uuid(kNvemuUuidNamespace, "error:" + base->uuid()));
}

std::unique_ptr<Channel> ErrorBdev::open_channel() {
  auto base_ch = base().open_channel();
  if (!base_ch) return nullptr;
  return std::make_unique<ErrorChannel>(*this, std::move(base_ch), shared_);
}

nlohmann::json ErrorBdev::driver_specific() const {
  return {{"error_disk", {{"base_bdev", base().name()}}}};
}

nlohmann::json ErrorBdev::config_entry() const {
  return {{"method", "bdev_error_create"},
          {"params", {{"base_name", base().name()}, {"uuid", uuid()}}}};
}

void ErrorBdev::release_held(IoStatus status) {
  std::lock_guard lock(shared_->mu);
  for (ErrorChannel* ch : shared_->channels) {
    Reactor* r = ch->reactor();
    if (!r) {  // a channel opened off-reactor (unit tests): same thread
      ch->release(status);
      continue;
    }
    // The channel is closed only on its reactor, so if it is still
    // listed when the message runs there, it is alive.
    r->send([shared = shared_, ch, status] {
      {
        std::lock_guard inner(shared->mu);
        if (std::find(shared->channels.begin(), shared->channels.end(), ch) ==
            shared->channels.end())
          return;
      }
      ch->release(status);
    });
  }
}

void ErrorBdev::inject(const InjectOpts& o) {
  if (o.clear) {
    disarm();
    release_held(IoStatus::kError);
    return;
  }
  for (int i = 0; i < 4; ++i) {
    if (!o.all && i != slot_of(o.io_type)) continue;
    Slot& s = shared_->slots[i];
    s.num.store(0, std::memory_order_release);  // disarm while the fields change
    s.type.store(o.type, std::memory_order_relaxed);
    s.queue_depth.store(o.queue_depth, std::memory_order_relaxed);
    s.corrupt_offset.store(o.corrupt_offset, std::memory_order_relaxed);
    s.corrupt_value.store(o.corrupt_value, std::memory_order_relaxed);
    s.num.store(o.num, std::memory_order_release);
  }
}

uint64_t ErrorBdev::held() const {
  std::lock_guard lock(shared_->mu);
  uint64_t n = 0;
  for (ErrorChannel* ch : shared_->channels) n += ch->held();
  return n;
}

std::shared_ptr<ErrorBdev> create(std::shared_ptr<Bdev> base, const std::string& uuid,
                                  std::string* error) {
  std::string name = "EE_" + base->name();
  if (!claim_base(*base, name, error)) return nullptr;
  auto b = std::make_shared<ErrorBdev>(base, uuid);
  LOG_INFO("vbdev_error", "created {} on {}", name, base->name());
  return b;
}

}  // namespace nvemu::bdev::error
