// SPDK's error-injection bdev (module/bdev/error): EE_<base> passes I/O to
// its base until an injection is armed; then the next `num` I/Os of the
// armed type fail, return "no memory", are held (pending) or have their
// data corrupted (one byte XORed: a write's buffer before it goes down, a
// read's after it comes back).
//
// Armed state is one slot per I/O type (read, write, unmap, flush) of
// atomics shared by every channel: the RPC thread fills a slot and
// publishes its count last; a channel's submit pays one relaxed load of
// the count when nothing is armed and takes one unit with a CAS when
// something is. So `num` counts I/Os across all reactors, as in SPDK.
//
// Held I/Os stay on their channel until cleared (bdev_error_inject_error
// with io_type "clear" — nvemu also completes them then, with an error,
// where SPDK waits for a bdev reset) or until the channel closes (the
// bdev deleted, the namespace removed): they then complete as aborted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bdev/vbdev.h"

namespace nvemu::bdev::error {

enum class ErrorType : uint8_t { kNone, kFailure, kPending, kCorruptData, kNoMem };

struct InjectOpts {
  bool clear = false;  // io_type "clear": disarm every type, release held I/Os
  bool all = false;    // io_type "all"
  IoType io_type = IoType::kRead;
  ErrorType type = ErrorType::kFailure;
  uint32_t num = 1;
  uint64_t queue_depth = 0;  // arm only while the channel has this many I/Os in flight
  uint64_t corrupt_offset = 0;
  uint8_t corrupt_value = 0;
};

class ErrorChannel;

// Per I/O type; see the top of this file for the publication order.
struct Slot {
  std::atomic<uint32_t> num{0};
  std::atomic<ErrorType> type{ErrorType::kNone};
  std::atomic<uint64_t> queue_depth{0}, corrupt_offset{0};
  std::atomic<uint8_t> corrupt_value{0};
};

// What channels and the RPC thread share; outlives both (shared_ptr).
struct Shared {
  Slot slots[4];  // read, write, unmap, flush
  std::mutex mu;  // guards `channels` only (open/close/clear, never I/O)
  std::vector<ErrorChannel*> channels;
};

class ErrorBdev final : public Vbdev {
 public:
  ErrorBdev(std::shared_ptr<Bdev> base, const std::string& uuid);

  std::unique_ptr<Channel> open_channel() override;
  std::string module_name() const override { return "error"; }
  nlohmann::json driver_specific() const override;
  nlohmann::json config_entry() const override;

  // Main thread. Arms (or clears) injection; clear also releases held I/Os
  // on each channel's reactor.
  void inject(const InjectOpts& opts);
  void disarm() {
    for (Slot& s : shared_->slots) s.num.store(0, std::memory_order_release);
  }
  // Main thread. Completes every held I/O with `status`, each on its
  // channel's reactor (clear: kError; delete: kAborted, before the
  // namespace above waits for its I/O to drain).
  void release_held(IoStatus status);
  // Total held I/Os across channels (tests, bdev_get_bdevs).
  uint64_t held() const;

 private:
  bool explicit_uuid_;
  std::shared_ptr<Shared> shared_;
};

// "EE_" + base; nullptr with *error when the base cannot be claimed.
std::shared_ptr<ErrorBdev> create(std::shared_ptr<Bdev> base, const std::string& uuid,
                                  std::string* error);

// bdev_error_create, bdev_error_delete, bdev_error_inject_error.
void register_rpcs();

}  // namespace nvemu::bdev::error
