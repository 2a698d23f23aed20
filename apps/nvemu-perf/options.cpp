#include "options.h"

#include <fmt/format.h>
#include <getopt.h>

#include <charconv>
#include <cstdio>

namespace nvemu::perf {

namespace {

bool to_u64(const char* s, uint64_t* v, int base = 10) {
  std::string_view sv(s);
  if (base == 16 && (sv.starts_with("0x") || sv.starts_with("0X"))) sv.remove_prefix(2);
  auto r = std::from_chars(sv.data(), sv.data() + sv.size(), *v, base);
  return !sv.empty() && r.ec == std::errc() && r.ptr == sv.data() + sv.size();
}

// "4096", "4k", "128K", "1M"
bool to_size(const char* s, uint64_t* v) {
  std::string t(s);
  uint64_t mult = 1;
  if (!t.empty()) {
    char c = t.back();
    if (c == 'k' || c == 'K') mult = 1024;
    if (c == 'm' || c == 'M') mult = 1024 * 1024;
    if (mult != 1) t.pop_back();
  }
  if (!to_u64(t.c_str(), v)) return false;
  *v *= mult;
  return true;
}

}  // namespace

void print_usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s -q DEPTH -o IO_SIZE -w PATTERN -t SECONDS -r 'TRID' [options]\n"
               "  -q DEPTH      I/Os in flight per namespace\n"
               "  -o IO_SIZE    bytes per I/O (4096, 4k, 128k)\n"
               "  -w PATTERN    read|write|randread|randwrite|rw|randrw\n"
               "  -M PERCENT    reads in a rw/randrw mix (default 50)\n"
               "  -t SECONDS    run time\n"
               "  -c MASK       core mask; the initiator thread is pinned to its first core\n"
               "  -r TRID       transport ID, SPDK's format; may be given several times:\n"
               "                'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 "
               "subnqn:NQN'\n"
               "                'trtype:VFIOUSER traddr:/path/to/endpoint/dir'\n"
               "  -n NSID       only this namespace (default: every active namespace)\n"
               "  -L            print latency percentiles (p50 p90 p99 p99.9 p99.99)\n"
               "  --json FILE   write the results as JSON to FILE\n"
               "  --no-live     no per-second progress line\n"
               "  --seed N      random LBA seed\n"
               "  --memcpy-bench  measure one core's 4K and 128K memcpy rate and exit\n",
               prog);
}

std::string parse_options(int argc, char** argv, Options* o, bool* exit_now) {
  enum { kJson = 1000, kMemcpy, kNoLive, kSeed };
  static const option longs[] = {
      {"json", required_argument, nullptr, kJson}, {"memcpy-bench", no_argument, nullptr, kMemcpy},
      {"no-live", no_argument, nullptr, kNoLive},  {"seed", required_argument, nullptr, kSeed},
      {"help", no_argument, nullptr, 'h'},         {nullptr, 0, nullptr, 0}};
  *exit_now = false;
  optind = 1;
  int c;
  uint64_t v = 0;
  while ((c = getopt_long(argc, argv, "q:o:w:M:t:c:r:n:Lh", longs, nullptr)) != -1) {
    switch (c) {
      case 'q':
        if (!to_u64(optarg, &v) || v == 0 || v > 4096)
          return fmt::format("-q {}: queue depth must be 1..4096", optarg);
        o->queue_depth = static_cast<uint32_t>(v);
        break;
      case 'o':
        if (!to_size(optarg, &v) || v == 0 || v > (2u << 20) || v % 512)
          return fmt::format("-o {}: I/O size must be a multiple of 512 up to 2 MiB", optarg);
        o->io_size = static_cast<uint32_t>(v);
        break;
      case 'w': {
        std::string w = optarg;
        o->workload = w;
        if (w == "read")
          o->pattern = Pattern::kRead;
        else if (w == "write")
          o->pattern = Pattern::kWrite;
        else if (w == "randread")
          o->pattern = Pattern::kRandRead;
        else if (w == "randwrite")
          o->pattern = Pattern::kRandWrite;
        else if (w == "rw")
          o->pattern = Pattern::kRw;
        else if (w == "randrw")
          o->pattern = Pattern::kRandRw;
        else
          return fmt::format(
              "-w {}: pattern must be read, write, randread, randwrite, rw or "
              "randrw",
              w);
        break;
      }
      case 'M':
        if (!to_u64(optarg, &v) || v > 100) return fmt::format("-M {}: must be 0..100", optarg);
        o->rwmixread = static_cast<int>(v);
        break;
      case 't': {
        double t = 0;
        auto r = std::from_chars(optarg, optarg + std::strlen(optarg), t);
        if (r.ec != std::errc() || *r.ptr || t <= 0)
          return fmt::format("-t {}: seconds must be a positive number", optarg);
        o->seconds = t;
        break;
      }
      case 'c': {
        uint64_t mask = 0;
        if (!to_u64(optarg, &mask, 16) || mask == 0)
          return fmt::format("-c {}: core mask must be hex, e.g. 0x2", optarg);
        o->core_mask = optarg;
        o->core = __builtin_ctzll(mask);
        break;
      }
      case 'r': {
        host::perf::TransportId t;
        std::string err = host::perf::parse_transport_id(optarg, &t);
        if (!err.empty()) return fmt::format("-r '{}': {}", optarg, err);
        o->targets.push_back(std::move(t));
        break;
      }
      case 'n':
        if (!to_u64(optarg, &v) || v == 0 || v > 0xfffffffe)
          return fmt::format("-n {}: not a namespace ID", optarg);
        o->nsid = static_cast<uint32_t>(v);
        break;
      case 'L':
        o->latency = true;
        break;
      case kJson:
        o->json_path = optarg;
        break;
      case kMemcpy:
        o->memcpy_bench = true;
        break;
      case kNoLive:
        o->quiet = true;
        break;
      case kSeed:
        if (!to_u64(optarg, &v)) return fmt::format("--seed {}: not a number", optarg);
        o->seed = v;
        break;
      case 'h':
        *exit_now = true;
        return "";
      default:
        return "unknown option";
    }
  }
  if (optind < argc) return fmt::format("unexpected argument '{}'", argv[optind]);
  if (o->memcpy_bench) return "";
  if (!o->queue_depth) return "-q (queue depth) is required";
  if (!o->io_size) return "-o (I/O size) is required";
  if (o->workload.empty()) return "-w (pattern) is required";
  if (o->seconds <= 0) return "-t (seconds) is required";
  if (o->targets.empty()) return "-r (transport ID) is required";
  bool mixed = o->pattern == Pattern::kRw || o->pattern == Pattern::kRandRw;
  if (!mixed && o->rwmixread >= 0) return "-M applies only to -w rw or randrw";
  if (mixed && o->rwmixread < 0) o->rwmixread = 50;
  if (!mixed)
    o->rwmixread = (o->pattern == Pattern::kRead || o->pattern == Pattern::kRandRead) ? 100 : 0;
  return "";
}

}  // namespace nvemu::perf
