// Transport ids and the Identify parsing both paths share.
#include "bdev/nvme/path.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "nvme/identify.h"
#include "nvme/nvm.h"

namespace nvemu::bdev::nvme {
namespace {

std::string trimmed(const char* p, size_t n) {
  std::string s(p, strnlen(p, n));
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

const char* Trid::trtype_str() const {
  return trtype == Trtype::kTcp ? "TCP" : "VFIOUSER";
}

bool Trid::same_path(const Trid& o) const {
  return trtype == o.trtype && traddr == o.traddr && trsvcid == o.trsvcid &&
         hostaddr == o.hostaddr && hostsvcid == o.hostsvcid;
}

std::string Trid::describe() const {
  if (trtype == Trtype::kVfioUser) return fmt::format("VFIOUSER {}", traddr);
  return fmt::format("TCP {}:{} {}", traddr, trsvcid, subnqn);
}

void Trid::dump(nlohmann::json& out) const {
  out["trtype"] = trtype_str();
  if (!adrfam.empty()) out["adrfam"] = adrfam;
  if (!traddr.empty()) out["traddr"] = traddr;
  if (!trsvcid.empty()) out["trsvcid"] = trsvcid;
  if (!subnqn.empty()) out["subnqn"] = subnqn;
}

void parse_identify_ctrlr(const void* buf4k, CtrlrInfo* info) {
  const auto* id = static_cast<const ::nvemu::nvme::IdentifyController*>(buf4k);
  info->cntlid = id->cntlid;
  info->vid = id->vid;
  info->oacs = id->oacs;
  info->oncs = id->oncs;
  info->cmic = id->cmic;
  info->ver = id->ver;
  info->kas_ms = id->kas * 100u;
  info->sn = trimmed(id->sn, sizeof id->sn);
  info->mn = trimmed(id->mn, sizeof id->mn);
  info->fr = trimmed(id->fr, sizeof id->fr);
  info->subnqn = trimmed(id->subnqn, sizeof id->subnqn);
  // MDTS is a power of two in minimum pages (4 KiB); 0 means no limit.
  if (id->mdts)
    info->max_xfer = std::min<uint32_t>(4096u << std::min<uint8_t>(id->mdts, 16), 1u << 20);
}

bool parse_identify_ns(const void* buf4k, uint32_t nsid, NsInfo* out) {
  const auto* ns = static_cast<const ::nvemu::nvme::IdentifyNamespace*>(buf4k);
  if (ns->nsze == 0) return false;  // inactive: Identify returns zeroes
  const auto& lbaf = ns->lbaf[ns->flbas & 0x0f];
  // The remote's Identify is input like any other. A data size outside
  // 512 B..64 KiB, a capacity whose bytes overflow 64 bits, or metadata with
  // each block (nvemu's bdevs carry none) is not a namespace this bdev can
  // serve: it is left out, with a warning.
  if (lbaf.lbads < 9 || lbaf.lbads > 16 || ns->nsze > (UINT64_MAX >> lbaf.lbads) || lbaf.ms != 0) {
    LOG_WARN("bdev_nvme",
             "namespace {} left out: LBA format {} (data 2^{} bytes, {} metadata bytes), "
             "{} blocks; use a format with 512 B..64 KiB blocks and no metadata",
             nsid, ns->flbas & 0x0f, lbaf.lbads, lbaf.ms, static_cast<uint64_t>(ns->nsze));
    return false;
  }
  out->nsid = nsid;
  out->num_blocks = ns->nsze;
  out->block_size = 1u << lbaf.lbads;
  out->can_share = ns->nmic & 1;
  return true;
}

std::string parse_ns_uuid(const void* buf4k) {
  const auto* p = static_cast<const uint8_t*>(buf4k);
  size_t off = 0;
  while (off + 4 <= 4096) {
    uint8_t type = p[off], len = p[off + 1];
    if (type == 0 || len == 0) break;
    if (type == 3 && len == 16 && off + 4 + 16 <= 4096) {
      const uint8_t* u = p + off + 4;
      return fmt::format(
          "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}"
          "{:02x}{:02x}",
          u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
          u[14], u[15]);
    }
    off += 4 + len;
  }
  return "";
}

void set_io_dwords(::nvemu::nvme::Sqe* s, uint8_t opc, uint64_t slba, uint32_t nlb) {
  namespace n = ::nvemu::nvme;
  if (opc == n::nvm_opc::kFlush) return;
  if (opc == n::nvm_opc::kDatasetManagement) {
    s->cdw10 = 0;  // NR: one range (0's based)
    s->cdw11 = n::dsm::kAd;
    return;
  }
  s->cdw10 = static_cast<uint32_t>(slba);
  s->cdw11 = static_cast<uint32_t>(slba >> 32);
  s->cdw12 = nlb - 1;
}

bool data_to_controller(uint8_t opc) {
  namespace n = ::nvemu::nvme;
  return opc == n::nvm_opc::kWrite || opc == n::nvm_opc::kDatasetManagement;
}

std::unique_ptr<AdminPath> connect_path(const Trid& trid, const PathOptions& opts,
                                        std::string* error, int* err_no) {
  if (trid.trtype == Trtype::kTcp) return connect_tcp(trid, opts, error, err_no);
  return connect_vfio_user(trid, opts, error, err_no);
}

}  // namespace nvemu::bdev::nvme
