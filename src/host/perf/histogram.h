// A log-linear latency histogram (the HdrHistogram / SPDK histogram_data
// shape): values are grouped by their highest set bit, and each power of two
// is split into 2^kSubBits equal buckets, so a recorded value is off by at
// most 1/2^kSubBits (0.8 %) of itself. The bucket array is fixed at
// construction; record() is a few shifts and one increment and never
// allocates, so it can sit on an I/O completion path.
#pragma once

#include <array>
#include <cstdint>

namespace nvemu::host::perf {

class Histogram {
 public:
  static constexpr unsigned kSubBits = 7;  // 128 buckets per power of two
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kRanges = 64 - kSubBits + 1;  // range 0 holds [0, kSub)
  static constexpr unsigned kBuckets = kRanges * kSub;

  // Index of the bucket holding v.
  static constexpr unsigned bucket_of(uint64_t v) {
    if (v < kSub) return static_cast<unsigned>(v);
    unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));
    unsigned range = msb - kSubBits + 1;
    unsigned sub = static_cast<unsigned>(v >> (msb - kSubBits)) & (kSub - 1);
    return range * kSub + sub;
  }
  // Smallest and largest value a bucket holds.
  static constexpr uint64_t bucket_low(unsigned b) {
    unsigned range = b / kSub, sub = b % kSub;
    if (range == 0) return sub;
    return (uint64_t{kSub} | sub) << (range - 1);
  }
  static constexpr uint64_t bucket_high(unsigned b) {
    unsigned range = b / kSub;
    if (range == 0) return bucket_low(b);
    return bucket_low(b) + (uint64_t{1} << (range - 1)) - 1;
  }

  void record(uint64_t v) {
    ++buckets_[bucket_of(v)];
    ++count_;
    sum_ += v;
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }
  void merge(const Histogram& o);
  void clear();

  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  // 0 when empty.
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const {
    return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0;
  }
  // The value below which `p` percent (0 < p <= 100) of the recorded values
  // lie: the upper edge of the bucket that reaches that rank, clamped to
  // [min, max]. 0 when empty.
  uint64_t percentile(double p) const;
  uint64_t bucket_count(unsigned b) const { return buckets_[b]; }

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, sum_ = 0;
  uint64_t min_ = UINT64_MAX, max_ = 0;
};

}  // namespace nvemu::host::perf
