#include "app/preflight.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace nvemu::app {
namespace {

int peer_pid(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) return cred.pid;
  return 0;
}

}  // namespace

std::vector<HugepageHolder> hugepage_holders() {
  std::vector<HugepageHolder> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(fmt::format("/proc/{}/smaps_rollup", pid));
    std::string line;
    uint64_t kb = 0;
    while (std::getline(f, line)) {
      if (line.rfind("Private_Hugetlb:", 0) == 0 || line.rfind("Shared_Hugetlb:", 0) == 0)
        kb += std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
    }
    if (kb == 0) continue;
    std::ifstream c(fmt::format("/proc/{}/comm", pid));
    std::string comm;
    std::getline(c, comm);
    out.push_back({pid, comm, kb});
  }
  closedir(d);
  return out;
}

SocketProbe probe_socket(const std::string& path) {
  SocketProbe p;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return p;
  p.exists = true;
  p.is_socket = S_ISSOCK(st.st_mode);
  if (!p.is_socket) return p;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  p.live = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  p.owner_pid = p.live ? peer_pid(fd) : 0;
  if (fd >= 0) close(fd);
  return p;
}

HugepageInfo read_hugepages() {
  const char* path = std::getenv("NVEMU_MEMINFO");
  std::ifstream f(path ? path : "/proc/meminfo");
  HugepageInfo h;
  std::string key;
  uint64_t value;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ls(line);
    if (!(ls >> key >> value)) continue;
    if (key == "HugePages_Total:")
      h.total = value;
    else if (key == "HugePages_Free:")
      h.free = value;
    else if (key == "Hugepagesize:")
      h.page_kb = value;
  }
  return h;
}

std::string check_hugepages(uint64_t mem_mb, std::string* warning) {
  HugepageInfo h = read_hugepages();
  if (h.total == 0 || h.page_kb == 0) {
    *warning = fmt::format(
        "no hugepages configured; -s {} MB is served from ordinary memory (nvemu needs no "
        "hugepages)",
        mem_mb);
    return "";
  }
  uint64_t need = (mem_mb * 1024 + h.page_kb - 1) / h.page_kb;
  if (h.free >= need) return "";
  uint64_t missing = need - h.free;
  std::string who;
  for (const HugepageHolder& x : hugepage_holders())
    who += fmt::format("{}{} (pid {}, {} MB)", who.empty() ? "" : ", ", x.comm, x.pid, x.kb / 1024);
  return fmt::format(
      "not enough free hugepages: -s {} MB needs {} pages of {} kB, but only {} of {} are free "
      "(HugePages_Free, not HugePages_Total, is what counts: {} pages are in use{}).\n"
      "  fix: echo {} > /proc/sys/vm/nr_hugepages   (adds the {} missing pages)\n"
      "   or: start with a smaller -s (at most {} MB fits now)",
      mem_mb, need, h.page_kb, h.free, h.total, h.total - h.free, who.empty() ? "" : " by " + who,
      h.total + missing, missing, h.free * h.page_kb / 1024);
}

SocketGuard::~SocketGuard() {
  if (lock_fd_ >= 0) {
    unlink(lock_path_.c_str());
    close(lock_fd_);
  }
}

std::string SocketGuard::acquire(const std::string& path, std::string* notice) {
  lock_path_ = path + ".lock";
  lock_fd_ = open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0)
    return fmt::format(
        "cannot create lock file {}: {}; check the directory or use -r with "
        "another path",
        lock_path_, strerror(errno));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    ssize_t n = pread(lock_fd_, buf, sizeof buf - 1, 0);
    int pid = n > 0 ? std::atoi(buf) : 0;
    close(lock_fd_);
    lock_fd_ = -1;
    return fmt::format(
        "RPC socket {} is in use by a running target{}. Stop it (kill {}) or start this one "
        "with another socket: -r /var/tmp/spdk2.sock",
        path, pid ? fmt::format(" (pid {})", pid) : "", pid ? std::to_string(pid) : "<pid>");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    // Not fatal: only the pid in a later refusal message is lost.
  }

  // A socket file without our lock: either another kind of daemon (SPDK
  // itself) is serving it, or its owner died. Only a connect tells.
  SocketProbe probe = probe_socket(path);
  if (!probe.exists) return "";
  if (!probe.is_socket)
    return fmt::format("{} exists and is not a socket; remove it or choose another path with -r",
                       path);
  int owner = probe.owner_pid;
  if (probe.live)
    return fmt::format(
        "RPC socket {} is in use by another process{} that is answering on it. Stop it or "
        "start this one with another socket: -r /var/tmp/spdk2.sock",
        path, owner ? fmt::format(" (pid {})", owner) : "");
  if (unlink(path.c_str()) != 0)
    return fmt::format("stale RPC socket {} could not be removed: {}", path, strerror(errno));
  *notice = fmt::format("removed stale RPC socket {} (no process was listening on it)", path);
  return "";
}

}  // namespace nvemu::app
