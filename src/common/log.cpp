#include "common/log.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>

#include "common/clock.h"

namespace nvemu::log {
namespace {

std::atomic<Level> g_level{Level::kNotice};
std::atomic<Level> g_print_level{Level::kNotice};

struct FlagTable {
  std::mutex mu;
  std::map<std::string, bool, std::less<>> flags;
  std::atomic<bool> any_enabled{false};
};

FlagTable& table() {
  static FlagTable t;
  return t;
}

constexpr const char* kComponents[] = {"app",       "reactor",    "rpc",  "bdev", "bdev_malloc",
                                       "bdev_null", "bdev_uring", "nvmf", "nvme", "tcp",
                                       "vfio_user", "doca",       "host"};

void ensure_defaults() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* c : kComponents) table().flags.emplace(c, false);
  });
}

// systemd sets JOURNAL_STREAM=DEV:INODE when stderr is connected to the
// journal; a line then starts with "<N>" (sd-daemon(3) levels) so journalctl
// keeps each line's priority. The variable is inherited by children whose
// stderr may be elsewhere, hence the check that it names our stderr.
bool stderr_is_journal() {
  static const bool is = [] {
    const char* v = std::getenv("JOURNAL_STREAM");
    struct stat st;
    if (!v || fstat(2, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(v, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == static_cast<unsigned long long>(st.st_dev) &&
           ino == static_cast<unsigned long long>(st.st_ino);
  }();
  return is;
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::kError:
      return 3;
    case Level::kWarn:
      return 4;
    case Level::kNotice:
      return 5;
    case Level::kInfo:
      return 6;
    case Level::kDebug:
      return 7;
  }
  return 5;
}

const char* basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

const char* level_name(Level level) {
  switch (level) {
    case Level::kError:
      return "ERROR";
    case Level::kWarn:
      return "WARNING";
    case Level::kNotice:
      return "NOTICE";
    case Level::kInfo:
      return "INFO";
    case Level::kDebug:
      return "DEBUG";
  }
  return "?";
}

bool parse_level(std::string_view name, Level* out) {
  for (Level l : {Level::kError, Level::kWarn, Level::kNotice, Level::kInfo, Level::kDebug}) {
    if (name == level_name(l)) {
      *out = l;
      return true;
    }
  }
  if (name == "WARN") {
    *out = Level::kWarn;
    return true;
  }
  return false;
}

void set_level(Level level) {
  g_level = level;
}
Level level() {
  return g_level;
}
void set_print_level(Level level) {
  g_print_level = level;
}
Level print_level() {
  return g_print_level;
}

void register_flag(std::string_view flag) {
  ensure_defaults();
  std::lock_guard lock(table().mu);
  table().flags.emplace(std::string(flag), false);
}

bool set_flag(std::string_view flag, bool enabled) {
  ensure_defaults();
  std::lock_guard lock(table().mu);
  auto& flags = table().flags;
  if (flag == "all") {
    for (auto& [name, on] : flags) on = enabled;
  } else {
    auto it = flags.find(flag);
    if (it == flags.end()) return false;
    it->second = enabled;
  }
  bool any = false;
  for (auto& [name, on] : flags) any |= on;
  table().any_enabled = any;
  return true;
}

bool flag_enabled(std::string_view flag) {
  if (!table().any_enabled) return false;
  std::lock_guard lock(table().mu);
  auto it = table().flags.find(flag);
  return it != table().flags.end() && it->second;
}

std::vector<std::pair<std::string, bool>> flags() {
  ensure_defaults();
  std::lock_guard lock(table().mu);
  return {table().flags.begin(), table().flags.end()};
}

std::string known_flags() {
  std::string out = "all";
  for (const auto& [name, on] : flags()) out += ", " + name;
  return out;
}

bool enabled(Level level, std::string_view component) {
  if (level <= g_level.load(std::memory_order_relaxed) &&
      level <= g_print_level.load(std::memory_order_relaxed))
    return true;
  // A component flag raises that component to DEBUG, as SPDK's -L does.
  return level == Level::kDebug || level == Level::kInfo ? flag_enabled(component) : false;
}

bool RateLimit::allow(uint64_t* suppressed) {
  uint64_t now = monotonic_us();
  uint64_t start = window_start_us_.load(std::memory_order_relaxed);
  if ((start == 0 || now - start >= window_us_) &&
      window_start_us_.compare_exchange_strong(start, now, std::memory_order_relaxed))
    in_window_.store(0, std::memory_order_relaxed);
  if (in_window_.fetch_add(1, std::memory_order_relaxed) >= burst_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *suppressed = dropped_.exchange(0, std::memory_order_relaxed);
  return true;
}

void write(Level level, std::string_view component, const char* file, int line,
           const std::string& message) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::string out = stderr_is_journal() ? fmt::format("<{}>", syslog_priority(level)) : "";
  out += fmt::format("[{}.{:06d}] {}:{:4d}:{}: *{}*: {}\n", stamp, tv.tv_usec, basename(file), line,
                     component, level_name(level), message);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace nvemu::log
