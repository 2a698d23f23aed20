#include "app/autosave.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "app/config.h"
#include "common/log.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::app {
namespace {

struct State {
  std::string path;
  std::string written;  // what the file holds, as last written
  Reactor::TimerId periodic = 0;
  bool active = false;
};

State& state() {
  static State s;
  return s;
}

std::string dir_of(const std::string& path) {
  std::filesystem::path p(path);
  std::string d = p.parent_path().string();
  return d.empty() ? "." : d;
}

bool write_all(int fd, const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void save_now() {
  State& s = state();
  if (!s.active) return;
  std::string text = full_config().dump(2) + "\n";
  if (text == s.written) return;
  std::string err = write_file_atomically(s.path, text);
  if (!err.empty()) {
    LOG_ERROR("app", "config autosave: {}", err);
    return;  // retried on the next change or tick
  }
  s.written = std::move(text);
  LOG_DEBUG("app", "config autosave: wrote {}", s.path);
}

}  // namespace

std::string write_file_atomically(const std::string& path, const std::string& text) {
  std::string dir = dir_of(path);
  std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fmt::format("cannot create {}: {}", tmp, strerror(errno));
  bool ok = write_all(fd, text) && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) {
    unlink(tmp.c_str());
    return fmt::format("cannot write {}: {}", tmp, strerror(err));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    unlink(tmp.c_str());
    return fmt::format("cannot rename {} to {}: {}", tmp, path, strerror(err));
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);  // the rename itself is durable only once the directory is
    close(dfd);
  }
  return "";
}

std::string check_autosave_path(const std::string& path) {
  if (path.empty()) return "--config-autosave needs a file name";
  std::string dir = dir_of(path);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return fmt::format("--config-autosave {}: directory {} does not exist; create it (mkdir -p {})",
                       path, dir, dir);
  if (std::filesystem::is_directory(path, ec))
    return fmt::format("--config-autosave {}: is a directory; give a file name in it", path);
  if (access(dir.c_str(), W_OK) != 0)
    return fmt::format(
        "--config-autosave {}: directory {} is not writable ({}); the file is replaced by rename, "
        "so nvemu needs write access to the directory",
        path, dir, strerror(errno));
  return "";
}

void start_autosave(const std::string& path) {
  State& s = state();
  s.path = path;
  s.active = true;
  Reactor& main = ReactorSet::instance().main();
  // Before the reply: a client that saw success may kill -9 at once.
  rpc::Registry::instance().set_success_hook([](const std::string&) { save_now(); });
  s.periodic = main.add_timer(std::chrono::seconds(1), save_now, std::chrono::seconds(1));
  save_now();
  LOG_NOTICE("app", "config autosave to {}", path);
}

void stop_autosave() {
  State& s = state();
  if (!s.active) return;
  s.active = false;
  rpc::Registry::instance().set_success_hook(nullptr);
  Reactor& main = ReactorSet::instance().main();
  if (s.periodic) main.cancel_timer(s.periodic);
  s.periodic = 0;
}

}  // namespace nvemu::app
