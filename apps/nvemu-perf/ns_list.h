// Which namespaces to measure: Identify CNS 02h (active namespace list),
// narrowed by -n / the transport ID's ns key.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace nvemu::perf {

inline std::vector<uint32_t> active_nsids(const void* cns02_page, uint32_t only) {
  std::vector<uint32_t> out;
  const auto* p = static_cast<const uint8_t*>(cns02_page);
  for (int i = 0; i < 1024; ++i) {
    uint32_t id;
    std::memcpy(&id, p + i * 4, 4);
    if (id == 0) break;
    if (only == 0 || id == only) out.push_back(id);
  }
  return out;
}

}  // namespace nvemu::perf
