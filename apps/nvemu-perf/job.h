// One measured namespace: an I/O queue of its own on its controller, a fixed
// set of tasks (one per queue slot, each with its data buffer), the I/O
// pattern generator and the statistics. The hot path (submit_task,
// complete) touches only memory set up before the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/perf/histogram.h"
#include "host/perf/transport_id.h"
#include "options.h"

namespace nvemu::perf {

inline uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

class NsJob;

struct Task {
  NsJob* job = nullptr;
  uint8_t* buf = nullptr;
  uint64_t start_ns = 0;
  uint16_t index = 0;
  bool read = true;
};

struct NsStats {
  uint64_t reads = 0, writes = 0, errors = 0;
  uint64_t bytes = 0;
};

class NsJob {
 public:
  NsJob(const Options& o, const host::perf::TransportId& tid, uint32_t nsid, uint32_t block_size,
        uint64_t nblocks);
  virtual ~NsJob() = default;

  // Starts queue_depth I/Os.
  bool start();
  // Reaps completions; -1 when the queue failed (error() says why).
  virtual int poll() = 0;
  // Called by the transport for each completion.
  void complete(Task* t, bool ok);
  void stop_submitting() { running_ = false; }

  uint32_t outstanding() const { return outstanding_; }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const host::perf::TransportId& tid() const { return tid_; }
  uint32_t nsid() const { return nsid_; }
  uint32_t block_size() const { return block_size_; }
  const NsStats& stats() const { return stats_; }
  const host::perf::Histogram& histogram() const { return *hist_; }
  // Completions since the last call (for the per-second line).
  uint64_t take_interval(uint64_t* bytes);

 protected:
  // Sends t (t->read, lba, nlb set). False when it could not be queued.
  virtual bool submit_io(Task* t, uint64_t slba, uint32_t nlb) = 0;
  // Binds each task to a DMA-able buffer of io_size bytes.
  std::vector<Task> tasks_;
  const Options& opts_;
  std::string error_;

 private:
  bool submit_task(Task* t);
  uint64_t next_lba();
  uint64_t rand64() {
    // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 2685821657736338717ull;
  }

  host::perf::TransportId tid_;
  std::string name_;
  uint32_t nsid_, block_size_;
  uint32_t io_blocks_;
  uint64_t io_slots_;  // io-size-aligned positions in the namespace
  uint64_t seq_next_ = 0;
  uint64_t rng_;
  bool running_ = true;
  uint32_t outstanding_ = 0;
  NsStats stats_;
  uint64_t interval_ios_ = 0, interval_bytes_ = 0;
  std::unique_ptr<host::perf::Histogram> hist_;
};

// A connected controller with one NsJob per measured namespace.
class Controller {
 public:
  virtual ~Controller() = default;
  std::vector<std::unique_ptr<NsJob>>& jobs() { return jobs_; }
  const std::string& banner() const { return banner_; }

 protected:
  std::vector<std::unique_ptr<NsJob>> jobs_;
  std::string banner_;
};

// Connects, identifies the active namespaces (CNS 02h, or just opts.nsid /
// tid.ns) and sets up one I/O queue per namespace. nullptr + *error on
// failure.
std::unique_ptr<Controller> connect_tcp(const Options& o, const host::perf::TransportId& tid,
                                        std::string* error);
std::unique_ptr<Controller> connect_vfio_user(const Options& o, const host::perf::TransportId& tid,
                                              std::string* error);

// Parses an Identify Namespace page: block size and size in blocks.
bool ns_geometry(const void* id_ns, uint32_t* block_size, uint64_t* nblocks);

}  // namespace nvemu::perf
