// The block device contract. A bdev is a named array of blocks; I/O reaches
// it through a Channel that belongs to one reactor, so backends need no locks
// on the I/O path. The caller owns each BdevIo (usually embedded in an NVMe
// request), so submitting allocates nothing.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvemu::bdev {

enum class IoType : uint8_t { kRead, kWrite, kFlush, kWriteZeroes, kUnmap };

// What a backend reports. NVMe status mapping lives in one place (nvmf).
enum class IoStatus : uint8_t {
  kSuccess,
  kError,       // generic backend failure (EIO)
  kNoMem,       // transient: resubmit later
  kAborted,     // the I/O was cancelled (channel closing, reset)
  kOutOfRange,  // LBA range beyond the device
  kMediaRead,   // unrecovered read error (error injection, failed media)
  kMediaWrite,  // write fault
};

const char* io_status_name(IoStatus s);

struct BdevIo;
using IoCallback = void (*)(BdevIo* io, IoStatus status);

struct BdevIo {
  IoType type = IoType::kRead;
  uint64_t offset_blocks = 0;
  uint64_t num_blocks = 0;
  const struct iovec* iovs = nullptr;  // data for read/write; not used otherwise
  int iovcnt = 0;
  IoCallback cb = nullptr;  // may run before submit() returns
  void* ctx = nullptr;      // the caller's
  // Writes: Force Unit Access. The data is on stable storage when the I/O
  // completes (a backend with a volatile cache writes through for it).
  bool fua = false;
  uint64_t submit_us = 0;  // set by Channel::submit, for latency stats
  // Reads: the caller can use the data where it lies (it keeps the Bdev
  // alive until done with it). A memory-backed bdev then sets `direct` to
  // its own copy of the blocks instead of filling iovs.
  bool direct_ok = false;
  struct iovec direct {};
};

// Latency histogram buckets of successful reads and writes: bucket i counts
// I/O that took at most 2^i microseconds (1 us .. ~1 s); the last bucket
// counts the rest. Exposed as Prometheus histograms by --metrics.
constexpr size_t kLatencyBuckets = 22;
size_t latency_bucket(uint64_t us);

// Per-channel counters: written only by the channel's reactor, read by RPC.
struct IoStats {
  std::atomic<uint64_t> bytes_read{0}, num_read_ops{0};
  std::atomic<uint64_t> bytes_written{0}, num_write_ops{0};
  std::atomic<uint64_t> bytes_unmapped{0}, num_unmap_ops{0};
  std::atomic<uint64_t> num_write_zeroes_ops{0}, num_flush_ops{0};
  std::atomic<uint64_t> read_latency_us{0}, write_latency_us{0}, unmap_latency_us{0};
  std::atomic<uint64_t> num_errors{0};
  std::atomic<uint64_t> read_hist[kLatencyBuckets]{}, write_hist[kLatencyBuckets]{};
  void add_to(nlohmann::json& out) const;
};

class Bdev;

class Channel {
 public:
  explicit Channel(Bdev& bdev);
  virtual ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  Bdev& bdev() const { return bdev_; }
  // Validates the range, counts the I/O and hands it to the backend.
  void submit(BdevIo* io);
  // Backends call this exactly once per I/O.
  void complete(BdevIo* io, IoStatus status);
  const IoStats& stats() const { return stats_; }

 protected:
  virtual void do_submit(BdevIo* io) = 0;

 private:
  Bdev& bdev_;
  IoStats stats_;
};

class Bdev {
 public:
  Bdev(std::string name, std::string product_name, uint32_t block_size, uint64_t num_blocks);
  virtual ~Bdev();

  const std::string& name() const { return name_; }
  const std::string& product_name() const { return product_name_; }
  uint32_t block_size() const { return block_size_; }
  // Any thread: a bdev may grow while I/O runs (bdev_rbd_resize).
  uint64_t num_blocks() const { return num_blocks_.load(std::memory_order_relaxed); }
  const std::string& uuid() const { return uuid_; }  // canonical text form
  void set_uuid(std::string uuid) { uuid_ = std::move(uuid); }
  // Optimal I/O boundary and write-cache presence, reported to hosts.
  virtual bool has_write_cache() const { return false; }
  virtual bool supports(IoType type) const = 0;

  // Opens a channel for the calling reactor.
  virtual std::unique_ptr<Channel> open_channel() = 0;
  // The module's name as SPDK's bdev_get_bdevs reports it, e.g. "malloc".
  virtual std::string module_name() const = 0;
  virtual nlohmann::json driver_specific() const { return nlohmann::json::object(); }
  // {"method": ..., "params": {...}} that recreates this bdev (save_config),
  // or null when its module's config entry recreates it (an NVMe namespace
  // comes back with its bdev_nvme_attach_controller).
  virtual nlohmann::json config_entry() const = 0;

  // An owner (e.g. an NVMe-oF namespace) claims the bdev so it is not
  // claimed twice; bdev_get_bdevs shows it as "claimed".
  bool claim(const std::string& owner);
  void release_claim();
  const std::string& claimed_by() const { return claimed_by_; }

  // Called on the main thread before the bdev goes away, so users can drop it.
  using RemoveHook = std::function<void(Bdev&)>;
  uint64_t add_remove_hook(RemoveHook hook);
  void remove_remove_hook(uint64_t id);
  void notify_removal();

  // Main thread. A backend that grew (SPDK's spdk_bdev_notify_blockcnt_change)
  // sets the new size and tells its users, e.g. the NVMe-oF namespace that
  // sends hosts a Namespace Attribute Changed event. Shrinking is refused
  // (false): I/O in flight may address the blocks that would go.
  using ResizeHook = std::function<void(Bdev&)>;
  uint64_t add_resize_hook(ResizeHook hook);
  void remove_resize_hook(uint64_t id);
  bool grow(uint64_t new_num_blocks);

  nlohmann::json info_json() const;  // one bdev_get_bdevs entry
  nlohmann::json iostat_json() const;
  // Sums of every channel's histogram (retired ones included); any thread.
  void latency_histograms(uint64_t (&read)[kLatencyBuckets],
                          uint64_t (&write)[kLatencyBuckets]) const;

  // Channels register so iostat can sum them; any thread.
  void attach_channel(Channel* ch);
  void detach_channel(Channel* ch);

 private:
  std::string name_, product_name_, uuid_;
  uint32_t block_size_;
  std::atomic<uint64_t> num_blocks_;
  std::string claimed_by_;
  std::vector<std::pair<uint64_t, RemoveHook>> remove_hooks_;
  std::vector<std::pair<uint64_t, ResizeHook>> resize_hooks_;
  uint64_t next_hook_ = 1;
  mutable std::mutex channels_mu_;
  std::vector<Channel*> channels_;
  IoStats retired_;  // counters of closed channels
};

// Named bdevs of the process. Main (RPC) thread only.
class Registry {
 public:
  static Registry& instance();
  // Fails (returns false) when the name is taken.
  bool add(std::shared_ptr<Bdev> bdev);
  std::shared_ptr<Bdev> find(const std::string& name) const;
  // Notifies users, then drops the registry's reference.
  bool remove(const std::string& name);
  std::vector<std::shared_ptr<Bdev>> list() const;
  void clear();

 private:
  std::vector<std::shared_ptr<Bdev>> bdevs_;
};

// A bdev module's own save_config entries (SPDK's module config_json: the
// clusters an rbd bdev names, the controllers nvme bdevs come from), written
// after bdev_set_options and before the bdevs' own entries. Registered once
// at start-up, with the module's RPCs.
using ModuleConfigFn = void (*)(nlohmann::json& config);
void add_module_config(ModuleConfigFn fn);

std::string generate_uuid();
bool is_valid_uuid(const std::string& text);
// RFC 4122 version 5 (SHA-1, name-based) UUID of `name` in the namespace
// `ns_uuid` (canonical text): the same inputs give the same UUID on every
// run and machine, so a bdev rebuilt from the same facts after a restart
// keeps its identity (and the namespace its NGUID/EUI64/UUID).
std::string name_based_uuid(const std::string& ns_uuid, const std::string& name);
// nvemu's namespace UUID for name-based bdev UUIDs.
inline constexpr const char* kNvemuUuidNamespace = "6d3a0f1c-5b7e-4c52-9a61-1e0c8d7b2f44";

}  // namespace nvemu::bdev
