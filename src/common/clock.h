// CLOCK_MONOTONIC in microseconds: the clock of reactor passes, timers and
// log rate limits alike.
#pragma once

#include <time.h>

#include <cstdint>

namespace nvemu {

inline uint64_t monotonic_us() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace nvemu
