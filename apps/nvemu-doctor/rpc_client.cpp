#include "rpc_client.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nvemu::doctor {

nlohmann::json rpc_call(const std::string& path, const std::string& method,
                        const nlohmann::json& params, std::string* error) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  struct timeval tv = {5, 0};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = fmt::format("connect {}: {}", path, strerror(errno));
    if (fd >= 0) close(fd);
    return nullptr;
  }
  nlohmann::json req = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}};
  if (!params.is_null()) req["params"] = params;
  std::string data = req.dump();
  if (send(fd, data.data(), data.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(data.size())) {
    *error = fmt::format("send to {}: {}", path, strerror(errno));
    close(fd);
    return nullptr;
  }
  std::string in;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *error = n == 0 ? fmt::format("{} closed the connection without a reply", path)
                      : fmt::format("no reply from {}: {}", path, strerror(errno));
      close(fd);
      return nullptr;
    }
    in.append(buf, static_cast<size_t>(n));
    // The target ends each reply with a newline.
    if (in.back() == '\n') {
      nlohmann::json reply = nlohmann::json::parse(in, nullptr, false);
      if (!reply.is_discarded()) {
        close(fd);
        return reply;
      }
    }
  }
}

}  // namespace nvemu::doctor
