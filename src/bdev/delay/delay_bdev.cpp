#include "bdev/delay/delay_bdev.h"

#include <fmt/format.h>

#include <chrono>
#include <deque>
#include <random>

#include "common/log.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::delay {
namespace {

const char* const kNames[4] = {"avg_read_latency", "p99_read_latency", "avg_write_latency",
                               "p99_write_latency"};

class DelayChannel final : public VbdevChannel {
 public:
  DelayChannel(DelayBdev& b, std::unique_ptr<Channel> base_ch)
      : VbdevChannel(b, std::move(base_ch)),
        b_(b),
        reactor_(Reactor::current()),
        rng_(std::random_device{}()) {}
  ~DelayChannel() override {
    if (timer_) reactor_->cancel_timer(timer_);
    timer_ = 0;
    // The base already finished these: hand them over now, with their status.
    for (auto& q : queues_) {
      auto held = std::move(q);
      q.clear();
      for (const Held& h : held) complete(h.io, h.status);
    }
  }

 protected:
  void do_submit(BdevIo* io) override { forward(io); }

  void on_base_done(BdevIo* io, IoStatus status) override {
    if (!reactor_ || (io->type != IoType::kRead && io->type != IoType::kWrite))
      return complete(io, status);
    bool p99 = rng_() % 100 == 0;
    int t = io->type == IoType::kRead ? (p99 ? kP99Read : kAvgRead) : (p99 ? kP99Write : kAvgWrite);
    uint64_t lat = b_.latency_us(static_cast<LatencyType>(t));
    if (lat == 0 && queues_[t].empty()) return complete(io, status);
    queues_[t].push_back({io, status, Reactor::now_us() + lat});
    arm();
  }

 private:
  struct Held {
    BdevIo* io;
    IoStatus status;
    uint64_t deadline_us;
  };

  // One timer for the earliest head of the four FIFOs.
  void arm() {
    uint64_t next = UINT64_MAX;
    for (const auto& q : queues_)
      if (!q.empty()) next = std::min(next, q.front().deadline_us);
    if (next == UINT64_MAX) return;
    if (timer_) {
      if (next >= timer_at_) return;  // the armed timer comes first anyway
      reactor_->cancel_timer(timer_);
    }
    uint64_t now = Reactor::now_us();
    timer_at_ = next;
    timer_ = reactor_->add_timer(std::chrono::microseconds(next > now ? next - now : 0), [this] {
      timer_ = 0;
      run_expired();
    });
  }

  void run_expired() {
    uint64_t now = Reactor::now_us();
    for (auto& q : queues_) {
      while (!q.empty() && q.front().deadline_us <= now) {
        Held h = q.front();
        q.pop_front();
        complete(h.io, h.status);  // may submit again, appending to a FIFO
      }
    }
    arm();
  }

  DelayBdev& b_;
  Reactor* reactor_;
  std::minstd_rand rng_;
  std::deque<Held> queues_[4];
  Reactor::TimerId timer_ = 0;
  uint64_t timer_at_ = 0;
};

}  // namespace

DelayBdev::DelayBdev(std::string name, std::shared_ptr<Bdev> base, const Latencies& lat,
                     const std::string& uuid)
    : Vbdev(std::move(name), "delay", base) {
  for (int i = 0; i < 4; ++i) lat_[i].store(lat.us[i], std::memory_order_relaxed);
  // Without a uuid, one derived from the base's and this name: stable when
  // the base is.
  set_uuid(!uuid.empty() ? uuid
                         : name_based_uuid(kNvemuUuidNamespace,
                                           "delay:" + base->uuid() + ":" + this->name()));
}

std::unique_ptr<Channel> DelayBdev::open_channel() {
  auto base_ch = base().open_channel();
  if (!base_ch) return nullptr;
  return std::make_unique<DelayChannel>(*this, std::move(base_ch));
}

nlohmann::json DelayBdev::params() const {
  nlohmann::json j = {{"name", name()}, {"base_bdev_name", base().name()}, {"uuid", uuid()}};
  for (int i = 0; i < 4; ++i) j[kNames[i]] = latency_us(static_cast<LatencyType>(i));
  return j;
}

nlohmann::json DelayBdev::driver_specific() const {
  return {{"delay", params()}};
}

nlohmann::json DelayBdev::config_entry() const {
  return {{"method", "bdev_delay_create"}, {"params", params()}};
}

std::shared_ptr<DelayBdev> create(const std::string& name, std::shared_ptr<Bdev> base,
                                  const Latencies& lat, const std::string& uuid,
                                  std::string* error) {
  if (lat.us[kP99Read] < lat.us[kAvgRead] || lat.us[kP99Write] < lat.us[kAvgWrite]) {
    *error = fmt::format(
        "p99 latency below the average (read {} < {} or write {} < {} us); the p99 latency "
        "is the slow 1 %, give it at least the average",
        lat.us[kP99Read], lat.us[kAvgRead], lat.us[kP99Write], lat.us[kAvgWrite]);
    return nullptr;
  }
  if (!claim_base(*base, name, error)) return nullptr;
  auto b = std::make_shared<DelayBdev>(name, base, lat, uuid);
  LOG_INFO("vbdev_delay", "created {} on {}: read {}/{} us, write {}/{} us (avg/p99)", name,
           base->name(), lat.us[kAvgRead], lat.us[kP99Read], lat.us[kAvgWrite], lat.us[kP99Write]);
  return b;
}

}  // namespace nvemu::bdev::delay
