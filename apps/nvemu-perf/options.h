// nvemu-perf's command line: SPDK perf's flags (the subset nvemu-perf
// implements) plus --json and --memcpy-bench.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/perf/transport_id.h"

namespace nvemu::perf {

enum class Pattern : uint8_t { kRead, kWrite, kRandRead, kRandWrite, kRw, kRandRw };

struct Options {
  uint32_t queue_depth = 0;  // -q, required
  uint32_t io_size = 0;      // -o bytes, required
  Pattern pattern = Pattern::kRead;
  std::string workload;  // -w as given
  int rwmixread = -1;    // -M; 50 for rw/randrw when absent, 100/0 otherwise
  double seconds = 0;    // -t, required
  int core = -1;         // first core of -c, -1: not pinned
  std::string core_mask;
  std::vector<host::perf::TransportId> targets;  // -r, at least one
  uint32_t nsid = 0;                             // -n, 0: every active namespace
  bool latency = false;                          // -L (given once or more)
  std::string json_path;                         // --json
  bool memcpy_bench = false;                     // --memcpy-bench
  bool quiet = false;                            // --no-live: no per-second lines
  uint64_t seed = 0x6e76656d75ull;

  bool random() const {
    return pattern == Pattern::kRandRead || pattern == Pattern::kRandWrite ||
           pattern == Pattern::kRandRw;
  }
};

// Parses argv. Returns "" or the error to print (with usage); sets *exit_now
// for --help.
std::string parse_options(int argc, char** argv, Options* o, bool* exit_now);
void print_usage(const char* prog);

}  // namespace nvemu::perf
