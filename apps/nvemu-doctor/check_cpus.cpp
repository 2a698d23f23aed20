// The -m mask against the cpus that are online and not isolated: a reactor
// pinned to an offline core cannot start, one on an isolated core (isolcpus)
// runs but nothing else balances onto it, usually what was meant.
#include <fmt/format.h>

#include <algorithm>

#include "checks.h"
#include "common/cpumask.h"
#include "procfs.h"

namespace nvemu::doctor {
namespace {

// "0-3,6" (sysfs cpu list) as cores.
std::vector<unsigned> cpu_list(const std::string& text) {
  if (text.empty()) return {};
  CpuMaskResult r = parse_cpumask("[" + text + "]");
  return r.cores;
}

std::string join(const std::vector<unsigned>& v) {
  std::string s;
  for (unsigned c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s.empty() ? "none" : s;
}

}  // namespace

void check_cpumask(const Options& o, Findings* out) {
  CpuMaskResult mask = parse_cpumask(o.cpumask);
  if (!mask.error.empty()) {
    out->push_back({"cpumask", Status::kProblem,
                    fmt::format("-m {} is not a cpu mask: {}", o.cpumask, mask.error),
                    "use a hex mask (0x3) or a list ([0,1])"});
    return;
  }
  std::string online_text = read_line("/sys/devices/system/cpu/online");
  if (online_text.empty()) {
    out->push_back({"cpumask", Status::kUnknown, "cannot read /sys/devices/system/cpu/online", ""});
    return;
  }
  std::vector<unsigned> online = cpu_list(online_text);
  std::vector<unsigned> isolated = cpu_list(read_line("/sys/devices/system/cpu/isolated"));
  std::vector<unsigned> offline, iso;
  for (unsigned c : mask.cores) {
    if (std::find(online.begin(), online.end(), c) == online.end()) offline.push_back(c);
    if (std::find(isolated.begin(), isolated.end(), c) != isolated.end()) iso.push_back(c);
  }
  nlohmann::json detail = {{"mask", mask.cores}, {"online", online}, {"isolated", isolated}};
  if (!offline.empty()) {
    std::vector<unsigned> fit;
    for (unsigned c : mask.cores)
      if (std::find(offline.begin(), offline.end(), c) == offline.end()) fit.push_back(c);
    if (fit.empty()) fit.push_back(online.front());
    out->push_back({"cpumask", Status::kProblem,
                    fmt::format("-m {}: core(s) {} are not online (online: {})", o.cpumask,
                                join(offline), online_text),
                    fmt::format("start with -m {}", format_cpumask(fit)), detail});
    return;
  }
  out->push_back(
      {"cpumask", iso.empty() ? Status::kOk : Status::kWarn,
       fmt::format("-m {} = cores {}, all online{}", o.cpumask, join(mask.cores),
                   iso.empty() ? "" : fmt::format("; {} isolated (isolcpus)", join(iso))),
       "", detail});
}

}  // namespace nvemu::doctor
