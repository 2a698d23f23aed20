// SPDK's delay bdev (module/bdev/delay): every read and write goes to the
// base at once and its completion is held back for a latency before the
// caller sees it. Per I/O, one in 100 (chosen at random per channel, as
// SPDK's rand_r() % 100 == 0) gets the p99 latency instead of the average.
// Other I/O types pass through undelayed.
//
// Held completions sit in four FIFOs per channel (avg/p99 x read/write):
// within one FIFO deadlines only grow while the latency is unchanged, so
// one timer on the channel's reactor, armed for the earliest head, serves
// them all. A latency lowered by bdev_delay_update_latency applies to I/Os
// queued after the change, which wait behind older ones in their FIFO
// (SPDK's "dam", kept on purpose: it models a device draining a backlog).
// Off-reactor (unit tests) completions are not delayed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "bdev/vbdev.h"

namespace nvemu::bdev::delay {

enum LatencyType : int { kAvgRead = 0, kP99Read, kAvgWrite, kP99Write };

struct Latencies {
  uint64_t us[4] = {0, 0, 0, 0};  // indexed by LatencyType
};

class DelayBdev final : public Vbdev {
 public:
  DelayBdev(std::string name, std::shared_ptr<Bdev> base, const Latencies& lat,
            const std::string& uuid);

  std::unique_ptr<Channel> open_channel() override;
  std::string module_name() const override { return "delay"; }
  nlohmann::json driver_specific() const override;
  nlohmann::json config_entry() const override;

  // Any thread; channels read it per I/O (relaxed).
  uint64_t latency_us(LatencyType t) const { return lat_[t].load(std::memory_order_relaxed); }
  void set_latency_us(LatencyType t, uint64_t us) { lat_[t].store(us, std::memory_order_relaxed); }

 private:
  nlohmann::json params() const;
  std::atomic<uint64_t> lat_[4];
};

// Validates (p99 >= avg, as SPDK) and claims the base; nullptr with *error.
std::shared_ptr<DelayBdev> create(const std::string& name, std::shared_ptr<Bdev> base,
                                  const Latencies& lat, const std::string& uuid,
                                  std::string* error);

// bdev_delay_create, bdev_delay_delete, bdev_delay_update_latency.
void register_rpcs();

}  // namespace nvemu::bdev::delay
