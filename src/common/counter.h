// Counters with a single writer (the thread that owns them) and readers on
// any thread: a relaxed load and store, no locked read-modify-write.
#pragma once

#include <atomic>
#include <cstdint>

namespace nvemu {

inline void add_single_writer(std::atomic<uint64_t>& counter, uint64_t v) {
  counter.store(counter.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

}  // namespace nvemu
