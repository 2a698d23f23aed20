// One bdev per active namespace of a remote controller: "<name>n<nsid>",
// module "nvme". Its channels share the controller's per-reactor paths.
#pragma once

#include <memory>
#include <vector>

#include "bdev/bdev.h"
#include "bdev/nvme/channel.h"
#include "bdev/nvme/path.h"

namespace nvemu::bdev::nvme {

class Ctrlr;

class NsBdev final : public Bdev {
 public:
  NsBdev(const std::string& ctrlr_name, const NsInfo& ns, std::weak_ptr<Ctrlr> ctrlr,
         std::vector<std::shared_ptr<ReactorPath>> paths);

  uint32_t nsid() const { return nsid_; }
  bool supports(IoType type) const override;
  std::unique_ptr<Channel> open_channel() override;
  std::string module_name() const override { return "nvme"; }
  nlohmann::json driver_specific() const override;
  // The controller's bdev_nvme_attach_controller entry brings it back.
  nlohmann::json config_entry() const override { return nullptr; }

 private:
  uint32_t nsid_;
  bool can_share_;
  uint16_t oncs_;  // the remote controller's optional NVM commands
  std::weak_ptr<Ctrlr> ctrlr_;
  std::vector<std::shared_ptr<ReactorPath>> paths_;  // by reactor index
};

}  // namespace nvemu::bdev::nvme
