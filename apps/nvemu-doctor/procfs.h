// Reading who is who from /proc: a pid's command line, the pid that holds a
// socket inode (/proc/PID/fd links "socket:[INODE]"), listening TCP ports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nvemu::doctor {

std::string cmdline(int pid);  // spaces between arguments; "" if gone
// Every pid with an fd on socket inode `inode` (first only is usually enough).
std::vector<int> socket_owners(uint64_t inode);

struct TcpListener {
  std::string addr;  // "127.0.0.1" or "::"
  uint16_t port;
  uint64_t inode;
};
// Sockets in LISTEN state from /proc/net/tcp and /proc/net/tcp6.
std::vector<TcpListener> tcp_listeners();

// The first line of a sysfs/procfs file, "" when absent.
std::string read_line(const std::string& path);

}  // namespace nvemu::doctor
