#include "report.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

namespace nvemu::perf {

namespace {

constexpr double kPercentiles[] = {50, 90, 99, 99.9, 99.99};

struct Line {
  double iops, mibps, avg_us, min_us, max_us;
};

Line line_of(const Options& o, const NsJob& j, double secs) {
  const auto& h = j.histogram();
  double ios = static_cast<double>(h.count());
  return {ios / secs, ios * o.io_size / secs / (1024.0 * 1024.0), h.mean() / 1000.0,
          static_cast<double>(h.min()) / 1000.0, static_cast<double>(h.max()) / 1000.0};
}

std::string pct_key(double p) {
  std::string s = fmt::format("p{}", p);
  return s;
}

}  // namespace

void print_summary(const Options& o, const RunResult& r) {
  size_t width = 24;
  std::vector<std::string> names;
  for (const NsJob* j : r.jobs) {
    names.push_back(fmt::format("{} from core {:2}", j->name(), r.core < 0 ? 0 : r.core));
    width = std::max(width, names.back().size());
  }
  std::string rule(width + 57, '=');
  std::printf("%s\n", rule.c_str());
  std::printf("%*s%s\n", static_cast<int>(width + 46), "", "Latency(us)");
  std::printf("%-*s: %10s %10s %10s %10s %10s\n", static_cast<int>(width), "Device Information",
              "IOPS", "MiB/s", "Average", "min", "max");
  auto total_h = std::make_unique<host::perf::Histogram>();
  auto& total = *total_h;
  double tiops = 0, tmib = 0;
  for (size_t i = 0; i < r.jobs.size(); ++i) {
    Line l = line_of(o, *r.jobs[i], r.elapsed_s);
    std::printf("%-*s: %10.2f %10.2f %10.2f %10.2f %10.2f\n", static_cast<int>(width),
                names[i].c_str(), l.iops, l.mibps, l.avg_us, l.min_us, l.max_us);
    total.merge(r.jobs[i]->histogram());
    tiops += l.iops;
    tmib += l.mibps;
  }
  std::printf("%s\n", rule.c_str());
  std::printf("%-*s: %10.2f %10.2f %10.2f %10.2f %10.2f\n", static_cast<int>(width), "Total", tiops,
              tmib, total.mean() / 1000.0, static_cast<double>(total.min()) / 1000.0,
              static_cast<double>(total.max()) / 1000.0);
  for (const NsJob* j : r.jobs) {
    if (j->stats().errors)
      std::printf("%s: %llu I/O errors\n", j->name().c_str(),
                  static_cast<unsigned long long>(j->stats().errors));
  }
  if (!o.latency) return;
  for (size_t i = 0; i < r.jobs.size(); ++i) {
    const auto& h = r.jobs[i]->histogram();
    std::printf("\nSummary latency data for %s:\n%s\n", names[i].c_str(),
                std::string(81, '=').c_str());
    for (double p : kPercentiles)
      std::printf("%10.5f%% : %12.3fus\n", p, static_cast<double>(h.percentile(p)) / 1000.0);
  }
  std::printf("\n");
}

std::string write_json(const Options& o, const RunResult& r, const std::string& path) {
  using nlohmann::json;
  auto latency = [](const host::perf::Histogram& h) {
    json l = {{"avg", h.mean() / 1000.0},
              {"min", static_cast<double>(h.min()) / 1000.0},
              {"max", static_cast<double>(h.max()) / 1000.0}};
    for (double p : kPercentiles) l[pct_key(p)] = static_cast<double>(h.percentile(p)) / 1000.0;
    return l;
  };
  json doc;
  doc["tool"] = "nvemu-perf";
  doc["version"] = NVEMU_VERSION;
  doc["config"] = {{"queue_depth", o.queue_depth}, {"io_size", o.io_size}, {"workload", o.workload},
                   {"rwmixread", o.rwmixread},     {"time_s", o.seconds},  {"core", r.core}};
  doc["elapsed_s"] = r.elapsed_s;
  json nss = json::array();
  auto total_h = std::make_unique<host::perf::Histogram>();
  auto& total = *total_h;
  uint64_t tr = 0, tw = 0, te = 0;
  for (const NsJob* j : r.jobs) {
    const auto& s = j->stats();
    Line l = line_of(o, *j, r.elapsed_s);
    const auto& t = j->tid();
    nss.push_back(
        {{"name", j->name()},
         {"trtype", t.trtype == host::perf::TrType::kTcp ? "TCP" : "VFIOUSER"},
         {"traddr", t.traddr},
         {"trsvcid", t.trtype == host::perf::TrType::kTcp ? std::to_string(t.port()) : ""},
         {"subnqn", t.subnqn},
         {"nsid", j->nsid()},
         {"block_size", j->block_size()},
         {"reads", s.reads},
         {"writes", s.writes},
         {"errors", s.errors},
         {"io_completed", s.reads + s.writes + s.errors},
         {"iops", l.iops},
         {"mibps", l.mibps},
         {"latency_us", latency(j->histogram())}});
    total.merge(j->histogram());
    tr += s.reads;
    tw += s.writes;
    te += s.errors;
  }
  doc["namespaces"] = nss;
  double ios = static_cast<double>(total.count());
  doc["total"] = {{"reads", tr},
                  {"writes", tw},
                  {"errors", te},
                  {"io_completed", tr + tw + te},
                  {"iops", ios / r.elapsed_s},
                  {"mibps", ios * o.io_size / r.elapsed_s / (1024.0 * 1024.0)},
                  {"latency_us", latency(total)}};
  std::ofstream f(path);
  if (!f) return fmt::format("cannot write {}", path);
  f << doc.dump(2) << "\n";
  return f ? "" : fmt::format("cannot write {}", path);
}

}  // namespace nvemu::perf
