#include "common/cpumask.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace nvemu {
namespace {

constexpr unsigned kMaxCores = 1024;

bool parse_uint(std::string_view s, unsigned* out) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

CpuMaskResult parse_list(std::string_view body) {
  CpuMaskResult r;
  while (!body.empty()) {
    size_t comma = body.find(',');
    std::string_view item = body.substr(0, comma);
    body = comma == std::string_view::npos ? std::string_view() : body.substr(comma + 1);
    size_t dash = item.find('-');
    unsigned lo, hi;
    if (dash == std::string_view::npos) {
      if (!parse_uint(item, &lo)) {
        r.error = fmt::format("'{}' is not a core number", item);
        return r;
      }
      hi = lo;
    } else if (!parse_uint(item.substr(0, dash), &lo) || !parse_uint(item.substr(dash + 1), &hi) ||
               hi < lo) {
      r.error = fmt::format("'{}' is not a core range like 2-5", item);
      return r;
    }
    if (hi >= kMaxCores) {
      r.error = fmt::format("core {} is beyond the supported {} cores", hi, kMaxCores);
      return r;
    }
    for (unsigned c = lo; c <= hi; ++c) r.cores.push_back(c);
  }
  return r;
}

CpuMaskResult parse_hex(std::string_view hex) {
  CpuMaskResult r;
  if (hex.empty()) {
    r.error = "empty mask";
    return r;
  }
  unsigned bit = 0;
  for (auto it = hex.rbegin(); it != hex.rend(); ++it, bit += 4) {
    int v;
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(*it)));
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else {
      r.error = fmt::format("'{}' is not a hex digit", *it);
      return r;
    }
    for (unsigned b = 0; b < 4; ++b)
      if (v & (1 << b)) {
        if (bit + b >= kMaxCores) {
          r.error = fmt::format("core {} is beyond the supported {} cores", bit + b, kMaxCores);
          return r;
        }
        r.cores.push_back(bit + b);
      }
  }
  return r;
}

}  // namespace

CpuMaskResult parse_cpumask(std::string_view text) {
  CpuMaskResult r;
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    r = parse_list(text.substr(1, text.size() - 2));
  } else {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
      text.remove_prefix(2);
    r = parse_hex(text);
  }
  if (!r.error.empty()) return r;
  std::sort(r.cores.begin(), r.cores.end());
  r.cores.erase(std::unique(r.cores.begin(), r.cores.end()), r.cores.end());
  if (r.cores.empty()) r.error = "the mask selects no core";
  return r;
}

std::string format_cpumask(const std::vector<unsigned>& cores) {
  std::string hex;
  unsigned max = cores.empty() ? 0 : *std::max_element(cores.begin(), cores.end());
  for (unsigned nib = 0; nib <= max / 4; ++nib) {
    unsigned v = 0;
    for (unsigned c : cores)
      if (c / 4 == nib) v |= 1u << (c % 4);
    hex.insert(hex.begin(), "0123456789abcdef"[v]);
  }
  return "0x" + hex;
}

}  // namespace nvemu
