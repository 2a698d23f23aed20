// CPU masks as SPDK's app framework takes them: "0x3", "3" (hex) or a core
// list "[0,1]" / "[0-3,6]".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nvemu {

struct CpuMaskResult {
  std::vector<unsigned> cores;  // sorted, unique
  std::string error;            // empty on success
};

CpuMaskResult parse_cpumask(std::string_view text);
std::string format_cpumask(const std::vector<unsigned>& cores);  // "0x3"

}  // namespace nvemu
