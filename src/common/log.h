// Logging: timestamped lines with file:line, a level and a component, like
// SPDK's "[2025-10-15 16:31:47.283026] reactor.c: 926:reactor_run: *NOTICE*: ...".
// Components ("rpc", "nvmf", "tcp", ...) can be raised to DEBUG one by one
// with -L / log_set_flag, which is what an operator reaches for first.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nvemu::log {

enum class Level { kError = 0, kWarn = 1, kNotice = 2, kInfo = 3, kDebug = 4 };

// Level names as SPDK spells them in log_set_level ("ERROR", "WARNING", ...).
const char* level_name(Level level);
bool parse_level(std::string_view name, Level* out);

void set_level(Level level);  // what is recorded
Level level();
void set_print_level(Level level);  // what is printed to stderr
Level print_level();

// Per-component debug flags (SPDK's log flags). "all" enables every flag.
bool set_flag(std::string_view flag, bool enabled);
bool flag_enabled(std::string_view flag);
std::vector<std::pair<std::string, bool>> flags();
// "all, app, bdev, ...": what log_set_flag and -L accept, for error messages.
std::string known_flags();
void register_flag(std::string_view flag);

bool enabled(Level level, std::string_view component);
void write(Level level, std::string_view component, const char* file, int line,
           const std::string& message);

// One call site's budget for messages a peer can trigger at will (a host
// repeating a bad Connect, a client sending bad messages): at most `burst`
// lines per window, the rest counted and reported with the next line let
// through, so a misbehaving peer cannot flood the log. Any thread.
class RateLimit {
 public:
  explicit RateLimit(uint32_t burst = 20, uint64_t window_us = 10'000'000)
      : burst_(burst), window_us_(window_us) {}
  // True when this line may be written; *suppressed is then the number of
  // lines dropped since the last one written.
  bool allow(uint64_t* suppressed);

 private:
  const uint32_t burst_;
  const uint64_t window_us_;
  std::atomic<uint64_t> window_start_us_{0};
  std::atomic<uint32_t> in_window_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace nvemu::log

#define NVEMU_LOG(lvl, component, ...)                                                   \
  do {                                                                                   \
    if (::nvemu::log::enabled(lvl, component))                                           \
      ::nvemu::log::write(lvl, component, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

// As NVEMU_LOG, under a RateLimit of its own call site.
#define NVEMU_LOG_LIMITED(lvl, component, ...)                                                  \
  do {                                                                                          \
    static ::nvemu::log::RateLimit nvemu_rate_limit_;                                           \
    uint64_t nvemu_suppressed_ = 0;                                                             \
    if (::nvemu::log::enabled(lvl, component) && nvemu_rate_limit_.allow(&nvemu_suppressed_)) { \
      std::string nvemu_msg_ = fmt::format(__VA_ARGS__);                                        \
      if (nvemu_suppressed_)                                                                    \
        nvemu_msg_ += fmt::format(" ({} like it suppressed)", nvemu_suppressed_);               \
      ::nvemu::log::write(lvl, component, __FILE__, __LINE__, nvemu_msg_);                      \
    }                                                                                           \
  } while (0)

#define LOG_ERROR(component, ...) NVEMU_LOG(::nvemu::log::Level::kError, component, __VA_ARGS__)
#define LOG_WARN(component, ...) NVEMU_LOG(::nvemu::log::Level::kWarn, component, __VA_ARGS__)
#define LOG_NOTICE(component, ...) NVEMU_LOG(::nvemu::log::Level::kNotice, component, __VA_ARGS__)
#define LOG_INFO(component, ...) NVEMU_LOG(::nvemu::log::Level::kInfo, component, __VA_ARGS__)
#define LOG_DEBUG(component, ...) NVEMU_LOG(::nvemu::log::Level::kDebug, component, __VA_ARGS__)
#define LOG_ERROR_LIMITED(component, ...) \
  NVEMU_LOG_LIMITED(::nvemu::log::Level::kError, component, __VA_ARGS__)
#define LOG_WARN_LIMITED(component, ...) \
  NVEMU_LOG_LIMITED(::nvemu::log::Level::kWarn, component, __VA_ARGS__)
