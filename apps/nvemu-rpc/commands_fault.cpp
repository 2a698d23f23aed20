// nvemu's own fault injection commands (docs/faults.md):
//   nvmf_fault_inject NQN ACTION [scope] [action options]
//   nvmf_fault_list [-n NQN]
//   nvmf_fault_clear [-i ID]
#include "commands.h"

namespace nvemu::rpccli {

std::vector<Command> fault_commands() {
  return {
      {"nvmf_fault_inject",
       "Inject an NVMe-level fault into a subsystem's controllers (nvemu)",
       {pos("nqn", "Subsystem NQN"),
        pos("action", "What happens to matched commands or controllers")
            .choices(
                {"status", "no_completion", "delay", "cfs", "drop_connection", "surprise_remove"}),
        opt("-c", "--cntlid", "Only this controller", ArgType::kInt).when(Emit::kNotNull),
        opt("-n", "--nsid", "Only commands to this namespace", ArgType::kInt).when(Emit::kNotNull),
        opt("-o", "--opcode", "Only this opcode (with --queue)", ArgType::kInt)
            .when(Emit::kNotNull),
        opt("-q", "--queue", "admin or io").choices({"admin", "io"}),
        opt("", "--sct", "Status Code Type (status)", ArgType::kInt).when(Emit::kNotNull),
        opt("", "--sc", "Status Code (status)", ArgType::kInt).when(Emit::kNotNull),
        flag("", "--dnr", "Set Do Not Retry (status)"), flag("", "--more", "Set More (status)"),
        opt("", "--count", "Hit this many commands, then stop (default: no limit)", ArgType::kInt)
            .when(Emit::kNotNull),
        opt("", "--probability", "Hit each matching command with this probability (0..1)",
            ArgType::kFloat)
            .when(Emit::kNotNull),
        opt("", "--seed", "Seed of the probability draws", ArgType::kInt).when(Emit::kNotNull),
        opt("", "--delay-us", "Completion delay in microseconds (delay)", ArgType::kInt)
            .when(Emit::kNotNull),
        opt("", "--vuid", "DOCA function to remove (surprise_remove; default: all)")},
       Output::kJson},
      {"nvmf_fault_list",
       "List injected faults with their hit counts (nvemu)",
       {opt("-n", "--nqn", "Only this subsystem's faults")},
       Output::kJson},
      {"nvmf_fault_clear",
       "Clear one injected fault, or all (nvemu)",
       {opt("-i", "--id", "Fault id (default: all)", ArgType::kInt).when(Emit::kNotNull)},
       Output::kJson},
  };
}

}  // namespace nvemu::rpccli
