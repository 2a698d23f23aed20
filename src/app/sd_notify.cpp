#include "app/sd_notify.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nvemu::app {

std::string sd_notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return "";
  size_t len = std::strlen(path);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path)
    return fmt::format("NOTIFY_SOCKET '{}' is neither an absolute path nor an @abstract name",
                       path);
  std::memcpy(addr.sun_path, path, len);
  // An abstract socket's name starts with a NUL byte and is not terminated.
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t alen =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt::format("sd_notify: socket: {}", strerror(errno));
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                     reinterpret_cast<sockaddr*>(&addr), alen);
  int err = errno;
  close(fd);
  if (n < 0) return fmt::format("sd_notify to {}: {}", path, strerror(err));
  return "";
}

}  // namespace nvemu::app
