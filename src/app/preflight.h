// Start-up checks that turn the record's failures into answers: a hugepage
// shortage measured on HugePages_Free (not _Total), and an RPC socket path
// that is held by a live daemon or left behind by a dead one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nvemu::app {

struct HugepageInfo {
  uint64_t total = 0, free = 0, page_kb = 0;
};

// A process that holds hugetlb memory (from /proc/PID/smaps_rollup).
struct HugepageHolder {
  int pid;
  std::string comm;
  uint64_t kb;
};
std::vector<HugepageHolder> hugepage_holders();

// Reads /proc/meminfo, or $NVEMU_MEMINFO when set (lets tests replay the
// record's numbers on a machine without hugepages).
HugepageInfo read_hugepages();

// "" when -s mem_mb fits (or hugepages are not configured at all: then the
// warning is returned in *warning and nvemu runs on ordinary pages).
std::string check_hugepages(uint64_t mem_mb, std::string* warning);

// What is at an RPC socket path, without changing anything (nvemu-doctor
// and SocketGuard share it): a live socket answers a connect and names its
// listener's pid; a stale one is a socket file nobody listens on.
struct SocketProbe {
  bool exists = false, is_socket = false, live = false;
  int owner_pid = 0;  // the listener's pid when live (SO_PEERCRED)
};
SocketProbe probe_socket(const std::string& path);

// Holds the RPC socket's lock file for the life of the process.
class SocketGuard {
 public:
  ~SocketGuard();
  // "" when the path is ours to bind (a stale socket was removed, *notice
  // says so), else why not: the live owner's pid and the -r alternative.
  std::string acquire(const std::string& socket_path, std::string* notice);

 private:
  int lock_fd_ = -1;
  std::string lock_path_;
};

}  // namespace nvemu::app
