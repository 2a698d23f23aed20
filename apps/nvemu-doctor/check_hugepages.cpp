// Hugepages as the record met them: the EAL asked for 1024 MB and found 928,
// because HugePages_Free (not _Total) is what a new process gets. The
// numbers and the fix come from nvemu-tgt's own preflight, so the doctor and
// the daemon never disagree.
#include <dirent.h>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

#include "app/preflight.h"
#include "checks.h"
#include "procfs.h"

namespace nvemu::doctor {
namespace {

bool hugetlbfs_mounted(std::string* where) {
  std::ifstream f("/proc/mounts");
  std::string dev, mnt, type, rest;
  while (f >> dev >> mnt >> type && std::getline(f, rest))
    if (type == "hugetlbfs") {
      *where = mnt;
      return true;
    }
  return false;
}

// Per NUMA node: free/total pages of the default size.
nlohmann::json per_node(uint64_t page_kb) {
  nlohmann::json nodes = nlohmann::json::array();
  const char* base = "/sys/devices/system/node";
  DIR* d = opendir(base);
  if (!d) return nodes;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("node", 0) != 0 || name.size() < 5 || !isdigit(name[4])) continue;
    std::string dir = fmt::format("{}/{}/hugepages/hugepages-{}kB", base, name, page_kb);
    std::string total = read_line(dir + "/nr_hugepages"), free = read_line(dir + "/free_hugepages");
    if (total.empty()) continue;
    nodes.push_back({{"node", std::atoi(name.c_str() + 4)},
                     {"total", std::strtoull(total.c_str(), nullptr, 10)},
                     {"free", std::strtoull(free.c_str(), nullptr, 10)}});
  }
  closedir(d);
  return nodes;
}

}  // namespace

void check_hugepages(const Options& o, Findings* out) {
  app::HugepageInfo h = app::read_hugepages();
  bool replay = std::getenv("NVEMU_MEMINFO") != nullptr;
  nlohmann::json detail = {{"total", h.total}, {"free", h.free}, {"page_kb", h.page_kb}};
  // Per-node counts describe this machine; with a replayed meminfo they
  // would contradict the numbers being checked.
  if (!replay && h.page_kb) detail["nodes"] = per_node(h.page_kb);
  nlohmann::json holders = nlohmann::json::array();
  for (const auto& x : app::hugepage_holders())
    holders.push_back(
        {{"pid", x.pid}, {"comm", x.comm}, {"mb", x.kb / 1024}, {"cmdline", cmdline(x.pid)}});
  detail["holders"] = holders;
  std::string mnt;
  detail["hugetlbfs"] = hugetlbfs_mounted(&mnt) ? nlohmann::json(mnt) : nlohmann::json(nullptr);

  if (h.total == 0) {
    out->push_back({"hugepages", Status::kOk,
                    "no hugepages configured: nvemu-tgt serves -s from ordinary memory (SPDK "
                    "would fail here; nvemu needs none)",
                    "", detail});
    return;
  }
  std::string nodes;
  if (detail.contains("nodes"))
    for (const auto& n : detail["nodes"])
      nodes +=
          fmt::format("{}node {}: {}/{} free", nodes.empty() ? " (" : ", ", n["node"].get<int>(),
                      n["free"].get<uint64_t>(), n["total"].get<uint64_t>());
  if (!nodes.empty()) nodes += ")";
  if (o.mem_mb == 0) {
    out->push_back({"hugepages", Status::kOk,
                    fmt::format("{} of {} hugepages of {} kB free{}{}; pass -s MB to check a "
                                "start-up size",
                                h.free, h.total, h.page_kb, nodes,
                                mnt.empty() ? ", hugetlbfs not mounted" : ", hugetlbfs at " + mnt),
                    "", detail});
    return;
  }
  std::string warning;
  std::string err = app::check_hugepages(o.mem_mb, &warning);
  if (err.empty()) {
    out->push_back({"hugepages", Status::kOk,
                    fmt::format("-s {} MB fits: {} of {} hugepages of {} kB free{}", o.mem_mb,
                                h.free, h.total, h.page_kb, nodes),
                    "", detail});
    return;
  }
  // preflight's text: the cause, then "  fix: ..." lines.
  size_t fix_at = err.find("\n  fix: ");
  std::string message = err.substr(0, fix_at) + nodes;
  std::string fix = fix_at == std::string::npos ? "" : err.substr(fix_at + 8);
  for (size_t p; (p = fix.find("\n   or: ")) != std::string::npos;) fix.replace(p, 8, "\nor: ");
  if (mnt.empty())
    fix +=
        "\n(hugetlbfs is not mounted: SPDK needs mount -t hugetlbfs nodev /dev/hugepages; nvemu "
        "does not)";
  out->push_back({"hugepages", Status::kProblem, message, fix, detail});
}

}  // namespace nvemu::doctor
