// One opcode table per command set (STYLE idiom 3): what is supported, its
// effects and where it may run. Dispatch consults it, and it generates the
// Commands Supported and Effects log (05h), so the two never disagree.
#pragma once

#include <cstdint>

#include "nvme/log.h"

namespace nvemu::nvmf {

struct OpcodeInfo {
  bool supported = false;
  uint32_t effects = 0;    // Figure 211 bits, kCsupp included when supported
  bool pcie_only = false;  // queue management: a fabrics controller says Invalid Opcode
  bool discovery = false;  // also allowed on a discovery controller
};

// Indexed by opcode.
const OpcodeInfo& admin_opcode(uint8_t opc);
const OpcodeInfo& io_opcode(uint8_t opc);
// Fills the Commands Supported and Effects log for this controller kind.
void fill_effects_log(nvme::CommandsEffectsLog& log, bool pcie, bool discovery);

}  // namespace nvemu::nvmf
