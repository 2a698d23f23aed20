// nvemu-perf: SPDK perf's workload generator on nvemu's own initiators
// (NVMe/TCP and vfio-user PCIe). One polling thread, optionally pinned with
// -c; every namespace gets its own I/O queue and keeps -q I/Os in flight
// until -t expires, then all outstanding I/O is reaped before the summary,
// so the counts equal what the target executed.
#include <fmt/format.h>
#include <sched.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "job.h"
#include "memcpy_bench.h"
#include "options.h"
#include "report.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

using namespace nvemu::perf;

bool pin(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

int run(const Options& o) {
  std::printf("Initializing NVMe Controllers\n");
  std::vector<std::unique_ptr<Controller>> ctrls;
  std::vector<NsJob*> jobs;
  for (const auto& tid : o.targets) {
    std::string err;
    auto c = tid.trtype == nvemu::host::perf::TrType::kTcp ? connect_tcp(o, tid, &err)
                                                           : connect_vfio_user(o, tid, &err);
    if (!c) {
      std::fprintf(stderr, "nvemu-perf: %s\n", err.c_str());
      return 1;
    }
    std::printf("Attached to %s\n", tid.describe().c_str());
    for (auto& j : c->jobs()) {
      std::printf("Associating %s with lcore %d\n", j->name().c_str(), o.core < 0 ? 0 : o.core);
      jobs.push_back(j.get());
    }
    ctrls.push_back(std::move(c));
  }
  std::printf("Initialization complete. Launching workers.\n");
  std::fflush(stdout);

  const uint64_t start = now_ns();
  const uint64_t end = start + static_cast<uint64_t>(o.seconds * 1e9);
  uint64_t next_tick = start + 1000000000ull;
  unsigned tick = 0;
  bool failed = false;
  for (NsJob* j : jobs) {
    if (!j->start()) {
      std::fprintf(stderr, "nvemu-perf: %s: %s\n", j->name().c_str(), j->error().c_str());
      failed = true;
      break;
    }
  }
  // Measure phase: poll every queue, resubmitting from completions.
  uint64_t now = start;
  while (!failed && !g_stop && now < end) {
    for (NsJob* j : jobs) {
      if (j->poll() < 0) {
        std::fprintf(stderr, "nvemu-perf: %s: %s\n", j->name().c_str(), j->error().c_str());
        failed = true;
      }
    }
    now = now_ns();
    if (now >= next_tick) {
      uint64_t ios = 0, bytes = 0;
      for (NsJob* j : jobs) {
        uint64_t b = 0;
        ios += j->take_interval(&b);
        bytes += b;
      }
      double secs = static_cast<double>(now - (next_tick - 1000000000ull)) / 1e9;
      ++tick;
      if (!o.quiet) {
        std::printf("[%4us] IOPS: %12.2f  MiB/s: %10.2f\n", tick, static_cast<double>(ios) / secs,
                    static_cast<double>(bytes) / secs / (1024.0 * 1024.0));
        std::fflush(stdout);
      }
      next_tick = now + 1000000000ull;
    }
  }
  // Drain phase: no new I/O, reap every outstanding one (10 s at most).
  for (NsJob* j : jobs) j->stop_submitting();
  const uint64_t drain_end = now_ns() + 10000000000ull;
  uint64_t last = now_ns();
  for (;;) {
    uint32_t left = 0;
    for (NsJob* j : jobs) {
      if (j->outstanding() && j->poll() < 0) {
        std::fprintf(stderr, "nvemu-perf: %s while draining: %s\n", j->name().c_str(),
                     j->error().c_str());
        failed = true;
      }
      left += j->outstanding();
    }
    last = now_ns();
    if (left == 0 || failed) break;
    if (last > drain_end) {
      std::fprintf(stderr, "nvemu-perf: %u I/Os still outstanding 10 s after the run\n", left);
      failed = true;
      break;
    }
  }
  RunResult r;
  r.elapsed_s = static_cast<double>(last - start) / 1e9;
  r.core = o.core;
  r.jobs = jobs;
  print_summary(o, r);
  if (!o.json_path.empty()) {
    std::string err = write_json(o, r, o.json_path);
    if (!err.empty()) {
      std::fprintf(stderr, "nvemu-perf: %s\n", err.c_str());
      failed = true;
    }
  }
  uint64_t errors = 0;
  for (NsJob* j : jobs) errors += j->stats().errors;
  ctrls.clear();
  return failed || errors ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // help2man reads the man page's name line from --version.
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf("nvemu-perf %s\nI/O load generator for NVMe/TCP and vfio-user controllers\n",
                NVEMU_VERSION);
    return 0;
  }
  Options o;
  bool exit_now = false;
  std::string err = parse_options(argc, argv, &o, &exit_now);
  if (exit_now) {
    print_usage(argv[0]);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "nvemu-perf: %s\n", err.c_str());
    print_usage(argv[0]);
    return 2;
  }
  if (o.core >= 0 && !pin(o.core)) {
    std::fprintf(stderr, "nvemu-perf: cannot pin to core %d (-c %s): %s\n", o.core,
                 o.core_mask.c_str(), std::strerror(errno));
    return 1;
  }
  if (o.memcpy_bench) return run_memcpy_bench(o);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  return run(o);
}
