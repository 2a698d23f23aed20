#include "bdev/nvme/ns_bdev.h"

#include <fmt/format.h>

#include "bdev/nvme/ctrlr.h"

namespace nvemu::bdev::nvme {

NsBdev::NsBdev(const std::string& ctrlr_name, const NsInfo& ns, std::weak_ptr<Ctrlr> ctrlr,
               std::vector<std::shared_ptr<ReactorPath>> paths)
    : Bdev(fmt::format("{}n{}", ctrlr_name, ns.nsid), "NVMe disk", ns.block_size, ns.num_blocks),
      nsid_(ns.nsid),
      can_share_(ns.can_share),
      oncs_(0),
      ctrlr_(std::move(ctrlr)),
      paths_(std::move(paths)) {
  if (!ns.uuid.empty()) set_uuid(ns.uuid);
  if (auto c = ctrlr_.lock()) oncs_ = c->info().oncs;
}

bool NsBdev::supports(IoType type) const {
  switch (type) {
    case IoType::kRead:
    case IoType::kWrite:
    case IoType::kFlush:
      return true;
    case IoType::kUnmap:
      return oncs_ & (1u << 2);  // Dataset Management
    case IoType::kWriteZeroes:
      return oncs_ & (1u << 3);
  }
  return false;
}

std::unique_ptr<Channel> NsBdev::open_channel() {
  Reactor* r = Reactor::current();
  size_t idx = r ? r->index() : 0;
  return std::make_unique<NsChannel>(*this, nsid_, paths_.at(idx));
}

nlohmann::json NsBdev::driver_specific() const {
  // SPDK's nvme_namespace_info_json, one entry per path, and the policy.
  nlohmann::json nvme = nlohmann::json::array();
  if (auto c = ctrlr_.lock()) nvme.push_back(c->namespace_json(nsid_, can_share_));
  return {{"nvme", nvme}, {"mp_policy", "active_passive"}};
}

}  // namespace nvemu::bdev::nvme
