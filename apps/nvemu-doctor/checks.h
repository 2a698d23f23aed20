// nvemu-doctor's checks, one concern per file. Each appends Findings and
// changes nothing on the system.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "report.h"

namespace nvemu::doctor {

struct Options {
  uint64_t mem_mb = 0;                // -s: what nvemu-tgt would be started with
  std::string cpumask = "0x1";        // -m
  std::vector<std::string> sockets;   // -r (repeatable); defaults when none given
  std::vector<uint16_t> ports{4420};  // -p (repeatable): NVMe/TCP listeners to check
  std::string explain;                // --explain FILE
  bool json = false;
  // -b: a target is about to start on these sockets and ports, so one that
  // is taken (even by a healthy daemon) is a problem, not a warning.
  bool before_start = false;
};

void check_hugepages(const Options& o, Findings* out);  // check_hugepages.cpp
void check_cpumask(const Options& o, Findings* out);    // check_cpus.cpp
// Returns the sockets that answered (a daemon to ask about DOCA functions).
std::vector<std::string> check_sockets(const Options& o, Findings* out);       // check_sockets.cpp
void check_ports(const Options& o, Findings* out);                             // check_ports.cpp
void check_doca(const std::vector<std::string>& live_sockets, Findings* out);  // check_doca.cpp
// --explain: every known error line of a log mapped to cause and fix.
void explain_log(const std::string& path, Findings* out);  // explain.cpp

}  // namespace nvemu::doctor
