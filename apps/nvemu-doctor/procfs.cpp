#include "procfs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nvemu::doctor {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::string cmdline(int pid) {
  std::ifstream f(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  while (!s.empty() && s.back() == '\0') s.pop_back();
  for (char& c : s)
    if (c == '\0') c = ' ';
  return s;
}

std::vector<int> socket_owners(uint64_t inode) {
  std::vector<int> out;
  std::string want = fmt::format("socket:[{}]", inode);
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* e = readdir(proc)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::string dir = fmt::format("/proc/{}/fd", pid);
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;
    while (dirent* fe = readdir(fds)) {
      char buf[64];
      ssize_t n = readlink((dir + "/" + fe->d_name).c_str(), buf, sizeof buf - 1);
      if (n > 0 && want.compare(0, std::string::npos, buf, static_cast<size_t>(n)) == 0) {
        out.push_back(pid);
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  return out;
}

namespace {

// /proc/net/tcp's address: hex of the in-memory (network order) bytes,
// printed as native-endian 32-bit words.
std::string decode_addr(const std::string& hex) {
  unsigned char bytes[16];
  size_t n = hex.size() / 8;
  for (size_t w = 0; w < n && w < 4; ++w) {
    uint32_t v = static_cast<uint32_t>(std::stoul(hex.substr(w * 8, 8), nullptr, 16));
    std::memcpy(bytes + w * 4, &v, 4);
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(n == 1 ? AF_INET : AF_INET6, bytes, text, sizeof text);
  return text;
}

void read_table(const char* path, std::vector<TcpListener>* out) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::istringstream ls(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
    if (!(ls >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode))
      continue;
    if (st != "0A") continue;  // TCP_LISTEN
    size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    out->push_back({decode_addr(local.substr(0, colon)),
                    static_cast<uint16_t>(std::stoul(local.substr(colon + 1), nullptr, 16)),
                    std::stoull(inode)});
  }
}

}  // namespace

std::vector<TcpListener> tcp_listeners() {
  std::vector<TcpListener> out;
  read_table("/proc/net/tcp", &out);
  read_table("/proc/net/tcp6", &out);
  return out;
}

}  // namespace nvemu::doctor
