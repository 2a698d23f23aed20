// A vfio-user PCIe function through host/vfio_user's Device: shared memfd
// as DMA memory, admin queue, one polled I/O queue, a bounce buffer.
#include <fmt/format.h>

#include <cstring>

#include "host/vfio_user/device.h"
#include "host_ctrl.h"

namespace nvemu::hosttool {

namespace {

using host::vfio_user::Device;

constexpr uint64_t kIova = 0x40000000;
constexpr size_t kDmaBytes = 4 << 20;
constexpr uint32_t kBounce = 128 * 1024;  // one PRP list page covers it
constexpr uint16_t kDepth = 32;
constexpr int kTimeoutMs = 30000;

std::string status(const nvme::Cqe& c, const char* what) {
  if (c.sc() == 0 && c.sct() == 0) return "";
  return fmt::format("{} failed: SCT {:#x} SC {:#04x}", what, c.sct(), c.sc());
}

class PcieCtrl final : public HostCtrl {
 public:
  std::string attach(const std::string& dir) {
    std::string err;
    dev_ = Device::connect(dir, &err);
    if (!dev_) return err;
    if (!dev_->setup_memory(kDmaBytes, kIova, &err)) return err;
    if (!dev_->enable(kDepth, &err)) return err;
    if (!dev_->create_io_queue(1, kDepth, false, &err)) return err;
    bounce_ = static_cast<uint8_t*>(dev_->alloc(kBounce));
    if (!bounce_) return "out of DMA memory";
    return "";
  }

  std::string identify(uint8_t cns, uint32_t nsid, void* buf4k) override {
    nvme::Sqe c{};
    c.opc = 0x06;
    c.nsid = nsid;
    c.cdw10 = cns;
    dev_->build_prps(0, 0, &c, bounce_, 4096);
    nvme::Cqe e{};
    std::string err;
    if (!dev_->admin(c, &e, &err, kTimeoutMs)) return err;
    if (err = status(e, "Identify"); !err.empty()) return err;
    std::memcpy(buf4k, bounce_, 4096);
    return "";
  }

  std::string rw(bool write, uint32_t nsid, uint64_t lba, uint32_t nblocks, void* buf,
                 uint32_t len) override {
    if (len > kBounce) return "transfer larger than the bounce buffer";
    // Reads start from zeros: a device that moves no data must not pass
    // for one that returned what the last write left in the bounce buffer.
    if (write)
      std::memcpy(bounce_, buf, len);
    else
      std::memset(bounce_, 0, len);
    nvme::Cqe e{};
    std::string err;
    if (!dev_->io(1, write ? 0x01 : 0x02, nsid, lba, nblocks, bounce_, len, &e, &err, kTimeoutMs))
      return err;
    if (err = status(e, write ? "Write" : "Read"); !err.empty()) return err;
    if (!write) std::memcpy(buf, bounce_, len);
    return "";
  }

  uint32_t max_transfer() const override { return kBounce; }

  // A register read is a message on the socket: it fails when the function
  // went away; CSTS.CFS says the controller failed.
  std::string tick() override {
    uint32_t csts = 0;
    std::string err;
    if (!dev_->region_read(0 /* BAR0 */, 0x1c, &csts, 4, &err)) return "CSTS read: " + err;
    if (csts & 0x2) return "CSTS.CFS=1 (controller fatal status)";
    return "";
  }

  void close() override {
    if (!dev_) return;
    std::string err;
    dev_->delete_io_queue(1, &err);
    dev_->disable(&err);
    dev_.reset();
  }

 private:
  std::unique_ptr<Device> dev_;
  uint8_t* bounce_ = nullptr;
};

}  // namespace

std::unique_ptr<HostCtrl> open_vfio_user(const Trid& t, std::string* error) {
  auto c = std::make_unique<PcieCtrl>();
  std::string err = c->attach(t.traddr);
  if (!err.empty()) {
    // A function serves one host at a time; nvemu closes the socket of others.
    if (err.find("reset by peer") != std::string::npos || err.find("closed") != std::string::npos ||
        err.find("Broken pipe") != std::string::npos)
      err += " (is another host attached? nvmf_doca_list_functions shows the holder's pid)";
    *error = fmt::format("vfio-user {}: {}", t.traddr, err);
    return nullptr;
  }
  return c;
}

}  // namespace nvemu::hosttool
