#include "bdev/null.h"

#include <fmt/format.h>

namespace nvemu::bdev {
namespace {

class NullChannel final : public Channel {
 public:
  using Channel::Channel;

 protected:
  void do_submit(BdevIo* io) override { complete(io, IoStatus::kSuccess); }
};

class NullBdev final : public Bdev {
 public:
  explicit NullBdev(const NullParams& p) : Bdev(p.name, "Null disk", p.block_size, p.num_blocks) {}
  bool supports(IoType t) const override { return t != IoType::kUnmap; }
  std::unique_ptr<Channel> open_channel() override { return std::make_unique<NullChannel>(*this); }
  std::string module_name() const override { return "null"; }
  nlohmann::json config_entry() const override {
    return {{"method", "bdev_null_create"},
            {"params",
             {{"name", name()},
              {"num_blocks", num_blocks()},
              {"block_size", block_size()},
              {"uuid", uuid()}}}};
  }
};

}  // namespace

std::shared_ptr<Bdev> create_null_bdev(const NullParams& p, std::string* error) {
  if (p.block_size < 512 || p.block_size % 512 != 0) {
    *error =
        fmt::format("block_size {} is not a multiple of 512; use 512, 4096, ...", p.block_size);
    return nullptr;
  }
  if (p.num_blocks == 0) {
    *error = "num_blocks must be greater than 0";
    return nullptr;
  }
  auto b = std::make_shared<NullBdev>(p);
  if (!p.uuid.empty()) b->set_uuid(p.uuid);
  return b;
}

}  // namespace nvemu::bdev
