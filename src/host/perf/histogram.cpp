#include "host/perf/histogram.h"

#include <algorithm>
#include <cmath>

namespace nvemu::host::perf {

void Histogram::merge(const Histogram& o) {
  for (unsigned i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

void Histogram::clear() {
  *this = Histogram();
}

uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) return std::clamp(bucket_high(b), min(), max_);
  }
  return max_;
}

}  // namespace nvemu::host::perf
