// SPDK's transport ID string, as spdk_nvme_transport_id_parse() reads it
// (the -r argument of SPDK perf): whitespace-separated key:value pairs, keys
// case-insensitive, e.g.
//   'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1'
//   'trtype:VFIOUSER traddr:/var/tmp/nvemu-vfio-user/cnode1 subnqn:nqn...'
// Values run to the next whitespace; the first ':' splits key from value, so
// NQNs keep their colons. `key=value` is accepted too (SPDK allows both).
#pragma once

#include <cstdint>
#include <string>

namespace nvemu::host::perf {

enum class TrType : uint8_t { kTcp, kVfioUser };

struct TransportId {
  TrType trtype = TrType::kTcp;
  std::string adrfam = "IPv4";
  std::string traddr;
  std::string trsvcid;  // TCP port; 4420 when absent
  std::string subnqn;   // SPDK's default: the discovery NQN; we require one for TCP
  uint32_t ns = 0;      // "ns:N" (SPDK perf extension): only this namespace
  std::string hostnqn;

  uint16_t port() const;
  // "TCP (addr:127.0.0.1 subnqn:...)" / "VFIOUSER (/path)" as SPDK perf shows it.
  std::string describe() const;
};

// Returns "" or what is wrong with `s`.
std::string parse_transport_id(const std::string& s, TransportId* out);

}  // namespace nvemu::host::perf
