// The discovery log page (NVMe over Fabrics 1.1, 5.3; log 70h): one entry
// per (subsystem, fabric listener) the connected host may reach. Listeners
// of non-fabric transports (vfio-user) are not reachable by NQN and are
// left out. nvmf_set_config's discovery_filter is not applied yet: every
// listener is reported ("match_any", SPDK's default).
#include <cstring>
#include <map>

#include "nvme/log.h"
#include "nvmf/controller.h"
#include "nvmf/target.h"

namespace nvemu::nvmf {

namespace {
uint8_t trtype_code(const std::string& t) {
  if (t == "TCP") return nvme::disc::kTrtypeTcp;
  if (t == "RDMA") return nvme::disc::kTrtypeRdma;
  if (t == "FC") return nvme::disc::kTrtypeFc;
  return 0;
}
uint8_t adrfam_code(const std::string& a) {
  if (a == "IPv4") return nvme::disc::kAdrfamIpv4;
  if (a == "IPv6") return nvme::disc::kAdrfamIpv6;
  if (a == "IB") return nvme::disc::kAdrfamIb;
  if (a == "FC") return nvme::disc::kAdrfamFc;
  return nvme::disc::kAdrfamIntraHost;
}
void space_pad(char* dst, size_t n, const std::string& s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}
}  // namespace

void Controller::build_discovery_log(std::vector<uint8_t>& out) const {
  Target& tgt = Target::instance();
  std::vector<nvme::DiscoveryLogEntry> entries;
  std::map<std::string, uint16_t> port_ids;  // one port ID per listen address
  for (const auto& s : tgt.subsystems()) {
    if (s->type() != Subsystem::Type::kNvme || !s->host_allowed(hostnqn_)) continue;
    for (const ListenAddress& a : s->listeners()) {
      uint8_t trtype = trtype_code(a.trtype);
      if (!trtype) continue;
      nvme::DiscoveryLogEntry e{};
      e.trtype = trtype;
      e.adrfam = adrfam_code(a.adrfam);
      e.subtype = nvme::disc::kSubtypeNvme;
      e.treq = nvme::disc::kTreqSecureNotRequired;
      std::string key = a.trtype + "/" + a.traddr + ":" + a.trsvcid;
      e.portid = port_ids.emplace(key, static_cast<uint16_t>(port_ids.size())).first->second;
      e.cntlid = 0xffff;  // dynamic controller model
      Transport* tr = tgt.find_transport(a.trtype);
      e.asqsz = static_cast<uint16_t>(tr ? tr->opts().max_aq_depth : opts_.max_aq_depth);
      space_pad(e.trsvcid, sizeof e.trsvcid, a.trsvcid);
      std::memcpy(e.subnqn, s->nqn().data(), std::min(s->nqn().size(), sizeof e.subnqn - 1));
      space_pad(e.traddr, sizeof e.traddr, a.traddr);
      // TSAS for TCP: SECTYPE 0 (no security); zero for the rest.
      entries.push_back(e);
    }
  }
  nvme::DiscoveryLogHeader h{};
  h.genctr = tgt.discovery_genctr();
  h.numrec = entries.size();
  h.recfmt = 0;
  out.resize(sizeof h + entries.size() * sizeof(nvme::DiscoveryLogEntry));
  std::memcpy(out.data(), &h, sizeof h);
  if (!entries.empty())
    std::memcpy(out.data() + sizeof h, entries.data(), entries.size() * sizeof entries[0]);
}

}  // namespace nvemu::nvmf
