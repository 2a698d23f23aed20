#include "memcpy_bench.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/stream_copy.h"
#include "job.h"

namespace nvemu::perf {

namespace {

struct Rate {
  double copies_per_s, gib_per_s;
};

// The copy an I/O costs a target whose bdev is memory: a read copies from
// a random block of a disk-sized source (the bench's 512 MiB namespace, so
// it comes from DRAM, not cache) into one of a queue's worth of host
// buffers; a write the other way round, with the streaming stores the
// malloc bdev writes with (copy_streaming).
Rate measure(size_t size, size_t depth, double seconds, bool write) {
  constexpr size_t kDisk = 512u << 20;
  auto* src = static_cast<uint8_t*>(std::aligned_alloc(2u << 20, kDisk));
  auto* dst = static_cast<uint8_t*>(std::aligned_alloc(4096, depth * size));
  madvise(src, kDisk, MADV_HUGEPAGE);  // as the malloc bdev's memory
  std::memset(src, 1, kDisk);
  std::memset(dst, 2, depth * size);
  const uint64_t slots = kDisk / size;
  uint64_t rng = 0x9e3779b97f4a7c15ull, copies = 0;
  uint64_t start = now_ns(), end = start + static_cast<uint64_t>(seconds * 1e9), now = start;
  while (now < end) {
    for (size_t k = 0; k < 64; ++k) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      uint8_t* block = src + ((rng >> 33) % slots) * size;
      uint8_t* buf = dst + (k % depth) * size;
      if (write)
        copy_streaming(block, buf, size);
      else
        std::memcpy(buf, block, size);
    }
    copies += 64;
    now = now_ns();
  }
  asm volatile("" : : "r"(dst), "r"(src) : "memory");
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
  // The bench's 4K cases run at QD 32, its 128K case at QD 8.
  struct Case {
    const char* key;
    size_t size, depth;
    bool write;
  };
  for (const Case& c : {Case{"4k", 4096, 32, false}, Case{"128k", 128 * 1024, 8, false},
                        Case{"4k_write", 4096, 32, true}}) {
    Rate r = measure(c.size, c.depth, secs, c.write);
    std::printf("memcpy %6zu B %s on core %d: %12.0f copies/s  %7.2f GiB/s\n", c.size,
                c.write ? "into the disk" : "from the disk", o.core < 0 ? 0 : o.core,
                r.copies_per_s, r.gib_per_s);
    doc[c.key] = {{"copies_per_s", r.copies_per_s}, {"gib_per_s", r.gib_per_s}};
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
