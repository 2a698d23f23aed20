#include "memcpy_bench.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "job.h"

namespace nvemu::perf {

namespace {

struct Rate {
  double copies_per_s, gib_per_s;
};

Rate measure(size_t size, double seconds) {
  constexpr size_t kArena = 64u << 20;
  auto* src = static_cast<uint8_t*>(std::aligned_alloc(4096, kArena));
  auto* dst = static_cast<uint8_t*>(std::aligned_alloc(4096, kArena));
  std::memset(src, 1, kArena);
  std::memset(dst, 2, kArena);
  size_t slots = kArena / size, i = 0;
  uint64_t copies = 0;
  uint64_t start = now_ns(), end = start + static_cast<uint64_t>(seconds * 1e9), now = start;
  while (now < end) {
    for (int k = 0; k < 64; ++k) {
      std::memcpy(dst + i * size, src + ((i * 7919) % slots) * size, size);
      if (++i == slots) i = 0;
    }
    copies += 64;
    now = now_ns();
  }
  asm volatile("" : : "r"(dst) : "memory");
  std::free(src);
  std::free(dst);
  double secs = static_cast<double>(now - start) / 1e9;
  double cps = static_cast<double>(copies) / secs;
  return {cps, cps * static_cast<double>(size) / (1024.0 * 1024.0 * 1024.0)};
}

}  // namespace

int run_memcpy_bench(const Options& o) {
  double secs = o.seconds > 0 ? o.seconds : 2.0;
  nlohmann::json doc = {{"tool", "nvemu-perf --memcpy-bench"}, {"core", o.core}};
  for (size_t size : {size_t{4096}, size_t{128 * 1024}}) {
    Rate r = measure(size, secs);
    std::printf("memcpy %6zu B on core %d: %12.0f copies/s  %7.2f GiB/s\n", size,
                o.core < 0 ? 0 : o.core, r.copies_per_s, r.gib_per_s);
    doc[size == 4096 ? "4k" : "128k"] = {{"copies_per_s", r.copies_per_s},
                                         {"gib_per_s", r.gib_per_s}};
  }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << doc.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "nvemu-perf: cannot write %s\n", o.json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace nvemu::perf
