// --explain FILE: the record's error lines (and pasted lspci -k / mlxconfig
// -q output) mapped to cause and fix, each saying what holds on a real
// BlueField and what nvemu does instead. Lines are matched, never guessed:
// an unknown error line is left alone.
#include <fmt/format.h>

#include <fstream>
#include <optional>
#include <regex>
#include <set>

#include "checks.h"

namespace nvemu::doctor {
namespace {

struct Explained {
  std::string cause, fix, bluefield, nvemu;
};

Finding make(size_t line_no, const std::string& line, const std::string& what, const Explained& e) {
  nlohmann::json detail = {
      {"line", line_no},          {"text", line},    {"error", what}, {"cause", e.cause},
      {"bluefield", e.bluefield}, {"nvemu", e.nvemu}};
  return {"explain", Status::kProblem,
          fmt::format("line {}: {}\n          cause: {}\n          on BlueField: {}\n          "
                      "in nvemu: {}",
                      line_no, what, e.cause, e.bluefield, e.nvemu),
          e.fix, detail};
}

std::optional<std::string> search(const std::vector<std::string>& lines, size_t from, size_t to,
                                  const std::regex& re) {
  std::smatch m;
  for (size_t i = from; i < to && i < lines.size(); ++i)
    if (std::regex_search(lines[i], m, re)) return m[1].str();
  return std::nullopt;
}

}  // namespace

void explain_log(const std::string& path, Findings* out) {
  std::ifstream f(path);
  if (!f) {
    out->push_back({"explain", Status::kUnknown, fmt::format("cannot read {}", path),
                    "give a readable log file"});
    return;
  }
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);

  static const std::regex kEal(
      R"(Not enough memory available! Requested: (\d+)MB, available: (\d+)MB)");
  static const std::regex kSock(R"(RPC Unix domain socket path (\S+) in use)");
  static const std::regex kDoca(R"(Transport type '(\w+)' create failed)");
  static const std::regex kBadRes(R"(BAD_RES_STATE_ERR \(0x9\))");
  static const std::regex kPrm(R"(PRM command=(0x[0-9a-fA-F]+))");
  static const std::regex kSyndrome(R"(syndrome=(0x[0-9a-fA-F]+))");
  static const std::regex kDriver(R"(Kernel driver in use: (nvme)\b)");
  static const std::regex kLspci(
      R"(^\s*([0-9a-fA-F]{2,4}:[0-9a-fA-F]{2}[:.][0-9a-fA-F.]+)\s.*(NVMe|Non-Volatile))");
  static const std::regex kNumPf(R"(^\s*NVME_EMULATION_NUM_PF\s+(\d+))");
  static const std::regex kAllPf(R"(^\s*NUM_OF_PF\s+(\d+))");

  size_t before = out->size();
  // A log quotes the same failure more than once (the record does): each
  // error is explained once, at its first line.
  std::set<std::string> seen;
  auto add = [&](Finding f) {
    if (seen.insert(f.detail["error"].get<std::string>()).second) out->push_back(std::move(f));
  };
  std::optional<std::pair<size_t, unsigned>> num_pf, all_pf;
  std::smatch m;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    size_t n = i + 1;
    if (std::regex_search(l, m, kEal)) {
      uint64_t req = std::stoull(m[1]), avail = std::stoull(m[2]);
      uint64_t pages = (req - std::min(req, avail) + 1) / 2;  // 2 MB pages
      add(make(
          n, l, fmt::format("EAL: {} MB requested, {} MB of hugepages free", req, avail),
          {"DPDK's EAL takes -s from free hugepages: HugePages_Free, not HugePages_Total, is "
           "what a new process gets (the rest are held by other processes)",
           fmt::format("grep HugePages_ /proc/meminfo; then echo $(( $(cat "
                       "/proc/sys/vm/nr_hugepages) + {} )) > /proc/sys/vm/nr_hugepages (adds "
                       "{} pages of 2 MB), stop what holds the others (nvemu-doctor -s {} names "
                       "it), or start with -s {}",
                       pages, pages, req, avail),
           "applies as is: the SNAP/SPDK app on the Arm cores runs DPDK's EAL on hugepages",
           "nvemu-tgt checks HugePages_Free at start and prints this fix; without hugepages "
           "configured it serves -s from ordinary memory"}));
    } else if (std::regex_search(l, m, kSock)) {
      std::string sock = m[1];
      add(make(
          n, l, fmt::format("RPC socket {} in use", sock),
          {"another target listens on that path (live), or a dead one left the file (stale); "
           "SPDK cannot tell them apart",
           fmt::format("nvemu-doctor -r {} says which and names the live owner's pid; kill it or "
                       "start with -r /var/tmp/spdk2.sock; a stale file: rm {}",
                       sock, sock),
           "applies as is (SPDK's rpc.c)",
           "nvemu-tgt removes a stale socket itself and refuses a live one naming its pid"}));
    } else if (std::regex_search(l, m, kDoca)) {
      add(make(
          n, l, fmt::format("Transport type '{}' create failed", m[1].str()),
          {"the generic RPC error (-32603) hides the layer that failed; the DOCA log lines "
           "below it (send_prm_cmd, devemu) carry the firmware's answer",
           "read the DOCA [ERR] lines of the daemon's log around this time (nvemu-doctor "
           "--explain maps BAD_RES_STATE_ERR), fix that cause, then retry nvmf_create_transport",
           "applies: the DOCA transport creates the emulated PCI type and its BARs in firmware",
           "nvemu's DOCA transport fails with the layer, the cause and the next step in the "
           "RPC's own message"}));
    } else if (std::regex_search(l, m, kBadRes)) {
      std::string prm = search(lines, i >= 2 ? i - 2 : 0, i + 1, kPrm).value_or("unknown");
      std::string syn = search(lines, i, i + 2, kSyndrome).value_or("unknown");
      add(make(
          n, l,
          fmt::format("firmware BAD_RES_STATE_ERR (0x9) for PRM command {} (syndrome {})", prm,
                      syn),
          {fmt::format("the firmware refused to change a resource in its current state: PRM "
                       "command {}{} reconfigures the emulated function's BAR layout, which "
                       "is not allowed while a driver holds the function",
                       prm, prm == "0xb2d" ? " (modify the PCI type's stateful BAR region)" : ""),
           "free the function first: unbind the nvme driver that holds it (lspci -k shows "
           "'Kernel driver in use: nvme'), check NVME_EMULATION_NUM_PF against the functions "
           "the app uses (mlxconfig -q), then restart the app and retry",
           "applies only to real BlueField hardware (DOCA DevEmu firmware); the syndrome "
           "value is not publicly documented",
           "nvemu has no firmware: a change to a held function is refused with its state, "
           "its holder's pid and the way out (nvemu-doctor lists held functions)"}));
    } else if (std::regex_search(l, m, kDriver)) {
      std::string bdf;
      for (size_t j = i; j-- > 0 && j + 4 > i;) {
        std::smatch b;
        if (std::regex_search(lines[j], b, kLspci)) {
          bdf = b[1];
          break;
        }
      }
      add(make(
          n, l,
          fmt::format("emulated NVMe function {} is bound to the nvme driver",
                      bdf.empty() ? "(unknown BDF)" : bdf),
          {"a kernel nvme driver holds the emulated function, so its emulation cannot be "
           "(re)configured: the firmware answers BAD_RES_STATE_ERR",
           fmt::format("echo {0} > /sys/bus/pci/drivers/nvme/unbind (on the side that bound "
                       "it); to keep it free: driverctl set-override {0} vfio-pci or blacklist "
                       "nvme for that device",
                       bdf.empty() ? "<BDF>" : bdf),
           "applies only to real BlueField hardware",
           "nvemu's function is a vfio-user socket: its holder is a process (QEMU, "
           "nvemu-host) whose pid nvemu names; nvemu-doctor lists it"}));
    } else if (std::regex_search(l, m, kNumPf)) {
      num_pf = {n, static_cast<unsigned>(std::stoul(m[1]))};
    } else if (std::regex_search(l, m, kAllPf)) {
      all_pf = {n, static_cast<unsigned>(std::stoul(m[1]))};
    }
  }
  if (num_pf && all_pf && num_pf->second != all_pf->second) {
    std::string text =
        fmt::format("NVME_EMULATION_NUM_PF {} / NUM_OF_PF {}", num_pf->second, all_pf->second);
    add(make(num_pf->first, text,
             fmt::format("mlxconfig: NVME_EMULATION_NUM_PF={} but NUM_OF_PF={}", num_pf->second,
                         all_pf->second),
             {"the firmware exposes fewer NVMe emulation PFs than the device has PFs; lspci then "
              "shows SNAP controllers the emulation app may not own, and one of them bound to a "
              "driver blocks the transport",
              fmt::format("mlxconfig -d <dev> s NVME_EMULATION_NUM_PF={} (or use only the emulated "
                          "PF the app manages), then power-cycle the host",
                          all_pf->second),
              "applies only to real BlueField hardware (firmware configuration)",
              "nvemu has no firmware configuration: functions are made with "
              "nvmf_doca_create_function, as many as needed"}));
  }
  if (out->size() == before)
    out->push_back({"explain", Status::kOk,
                    fmt::format("{}: no known error lines ({} lines read)", path, lines.size()),
                    ""});
}

}  // namespace nvemu::doctor
