// The vfio-user path: nvemu's userspace PCIe NVMe driver (host::vfio_user::
// Device) over the function's socket. The controller reads and writes only
// the DMA memory shared with it, so each I/O slot has a bounce buffer there:
// the one copy this transport needs. Queues live in that memory and have no
// fd: the owner reactor polls them while commands are out; the socket's
// hang-up says the function went away.
#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "bdev/nvme/path.h"
#include "common/iov_copy.h"
#include "host/vfio_user/device.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;
using host::vfio_user::Device;

constexpr uint64_t kIova = 0x40000000;
constexpr uint16_t kAdminDepth = 32;
constexpr uint16_t kIoDepth = 32;
constexpr uint32_t kSlotBytes = 256 * 1024;  // above the 128 KiB MDTS nvemu targets report
constexpr size_t kAdminBytes = 1 << 20;      // admin queues, PRP pages, identify buffers

// The socket still connected? (A dead peer reads as EOF or an error.)
bool socket_alive(int fd) {
  char c;
  ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

class VfioQpair final : public IoQpair {
 public:
  VfioQpair(std::shared_ptr<Device> dev, uint16_t qid, uint8_t* slots)
      : dev_(std::move(dev)), qid_(qid), slots_mem_(slots) {
    for (uint16_t i = 0; i < kIoDepth; ++i) free_.push_back(i);
  }
  ~VfioQpair() override { fail_all(); }

  bool submit(uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb, const struct iovec* iovs,
              int iovcnt, uint32_t len, IoCallback cb, void* ctx) override {
    if (failed_ || free_.empty() || len > kSlotBytes) return false;
    uint16_t cid = free_.back();
    Slot& s = slots_[cid];
    uint8_t* buf = slots_mem_ + size_t{cid} * kSlotBytes;
    n::Sqe c{};
    c.opc = opc;
    c.nsid = nsid;
    c.cid = cid;
    set_io_dwords(&c, opc, slba, nlb);
    if (len && !dev_->build_prps(qid_, cid, &c, buf, len)) return false;
    if (len && data_to_controller(opc)) iov_copy(iovs, iovcnt, buf, len, true);
    if (dev_->submit(qid_, c) < 0) return false;
    free_.pop_back();
    s = {true, opc == 0x02, iovs, iovcnt, len, cb, ctx};
    ++outstanding_;
    return true;
  }

  int poll() override {
    if (failed_) return -1;
    if (!outstanding_) return 0;
    int n = dev_->poll(qid_, [this](const n::Cqe& cqe) {
      if (cqe.cid >= kIoDepth || !slots_[cqe.cid].busy) return;
      finish(cqe.cid, cqe);
    });
    // A gone function answers nothing: look at its socket now and then
    // while commands wait (a syscall per empty poll would cost the I/O path).
    if (n == 0 && ++empty_polls_ % 256 == 0 && !socket_alive(dev_->socket_fd())) {
      error_ = "the vfio-user socket closed";
      failed_ = true;
      fail_all();
      return -1;
    }
    return n;
  }
  int fd() const override { return -1; }
  uint32_t outstanding() const override { return outstanding_; }
  bool failed() const override { return failed_; }
  std::string error() const override { return error_; }

 private:
  struct Slot {
    bool busy = false, read = false;
    const struct iovec* iovs = nullptr;
    int iovcnt = 0;
    uint32_t len = 0;
    IoCallback cb = nullptr;
    void* ctx = nullptr;
  };
  void finish(uint16_t cid, const n::Cqe& cqe) {
    Slot s = slots_[cid];
    slots_[cid].busy = false;
    free_.push_back(cid);
    --outstanding_;
    if (s.read && (cqe.status >> 1) == 0)
      iov_copy(s.iovs, s.iovcnt, slots_mem_ + size_t{cid} * kSlotBytes, s.len, false);
    s.cb(s.ctx, cqe);
  }
  // What the controller will never answer now completes as aborted.
  void fail_all() {
    failed_ = true;
    for (uint16_t i = 0; i < kIoDepth; ++i) {
      if (!slots_[i].busy) continue;
      n::Cqe c{};
      c.cid = i;
      c.status = static_cast<uint16_t>(n::sc::kAbortedSqDeletion << 1);
      finish(i, c);
    }
  }

  std::shared_ptr<Device> dev_;
  uint16_t qid_;
  uint8_t* slots_mem_;
  Slot slots_[kIoDepth];
  std::vector<uint16_t> free_;
  uint32_t outstanding_ = 0;
  uint32_t empty_polls_ = 0;
  bool failed_ = false;
  std::string error_;
};

class VfioAdminPath final : public AdminPath {
 public:
  VfioAdminPath(Trid t, std::shared_ptr<Device> dev, size_t qpairs)
      : trid_(std::move(t)), dev_(std::move(dev)), qpairs_(qpairs) {}

  std::string connect() {
    std::string err;
    size_t bytes =
        kAdminBytes + qpairs_ * (size_t{kIoDepth} * (kSlotBytes + 4096 + 64 + 16) + 8192);
    if (!dev_->setup_memory(bytes, kIova, &err)) return err;
    if (!dev_->doorbells_mapped())
      return "the function does not map its doorbells; nvemu's bdev_nvme needs them mapped to "
             "drive queues from several reactors";
    if (!dev_->enable(kAdminDepth, &err)) return err;
    admin_buf_ = static_cast<uint8_t*>(dev_->alloc(4096 * 8));
    return "";
  }

  std::string sync_identify(uint8_t cns, uint32_t nsid, void* out) {
    n::Sqe c{};
    c.opc = 0x06;
    c.nsid = nsid;
    c.cdw10 = cns;
    c.cid = next_cid_++;
    dev_->build_prps(0, c.cid, &c, admin_buf_, 4096);
    n::Cqe e{};
    std::string err;
    if (!dev_->admin(c, &e, &err)) return err;
    if ((e.status >> 1) != 0)
      return fmt::format("Identify CNS {} failed: SCT {} SC {:#x}", cns, e.sct(), e.sc());
    std::memcpy(out, admin_buf_, 4096);
    return "";
  }

  std::string bring_up(CtrlrInfo* info) override {
    uint8_t buf[4096];
    std::string err = sync_identify(1, 0, buf);
    if (!err.empty()) return err;
    parse_identify_ctrlr(buf, info);
    info->io_depth = kIoDepth;
    info->max_xfer = std::min(info->max_xfer, kSlotBytes);
    if (!(err = sync_identify(2, 0, buf)).empty()) return err;
    std::vector<uint32_t> ids;
    for (int i = 0; i < 1024; ++i) {
      uint32_t id;
      std::memcpy(&id, buf + i * 4, 4);
      if (!id) break;
      ids.push_back(id);
    }
    for (uint32_t nsid : ids) {
      NsInfo ns;
      bool active = false;
      if (!(err = identify_ns(nsid, &ns, &active)).empty()) return err;
      if (active) info->namespaces.push_back(ns);
    }
    return "";
  }

  std::string identify_ns(uint32_t nsid, NsInfo* out, bool* active) override {
    uint8_t buf[4096];
    std::string err = sync_identify(0, nsid, buf);
    if (!err.empty()) return err;
    *active = parse_identify_ns(buf, nsid, out);
    if (*active && sync_identify(3, nsid, buf).empty()) out->uuid = parse_ns_uuid(buf);
    return "";
  }

  std::unique_ptr<IoQpair> create_io_qpair(uint16_t qid, uint16_t depth,
                                           std::string* error) override {
    (void)depth;  // fixed: the bounce slots are sized for kIoDepth
    auto* slots = static_cast<uint8_t*>(dev_->alloc(size_t{kIoDepth} * kSlotBytes));
    if (!slots) {
      *error = "out of DMA memory for I/O bounce buffers";
      return nullptr;
    }
    if (!dev_->create_io_queue(qid, kIoDepth, false, error)) return nullptr;
    return std::make_unique<VfioQpair>(dev_, qid, slots);
  }

  bool submit_admin(const n::Sqe& sqe, void* buf, uint32_t len, bool to_ctrlr,
                    AdminCallback cb) override {
    if (failed_ || pending_.size() >= 4 || len > 4096) return false;
    // One DMA page per outstanding command, by slot.
    size_t slot = 0;
    while (slot < 4 && pending_.count(static_cast<uint16_t>(0x100 + slot))) ++slot;
    uint16_t cid = static_cast<uint16_t>(0x100 + slot);
    uint8_t* dma = admin_buf_ + 4096 * (slot + 1);
    n::Sqe c = sqe;
    c.cid = cid;
    if (len) {
      dev_->build_prps(0, cid, &c, dma, len);
      if (to_ctrlr) std::memcpy(dma, buf, len);
    }
    if (dev_->submit(0, c) < 0) return false;
    pending_[cid] = {std::move(cb), buf, dma, len, to_ctrlr};
    return true;
  }

  int poll() override {
    if (failed_) return -1;
    int n = dev_->poll(0, [this](const n::Cqe& cqe) {
      auto it = pending_.find(cqe.cid);
      if (it == pending_.end()) return;
      Pending p = std::move(it->second);
      pending_.erase(it);
      if (p.len && !p.to_ctrlr) std::memcpy(p.buf, p.dma, p.len);
      p.cb(cqe);
    });
    if (!socket_alive(dev_->socket_fd())) {
      failed_ = true;
      fail_pending();
      return -1;
    }
    return n;
  }
  bool failed() const override { return failed_; }
  // The socket: readable (EOF) when the function goes away.
  int fd() const override { return dev_->socket_fd(); }
  std::string error() const override {
    return failed_ ? fmt::format("vfio-user socket of {} closed", trid_.traddr) : "";
  }
  ~VfioAdminPath() override { fail_pending(); }

 private:
  struct Pending {
    AdminCallback cb;
    void* buf;
    uint8_t* dma;
    uint32_t len;
    bool to_ctrlr;
  };
  void fail_pending() {
    auto all = std::move(pending_);
    pending_.clear();
    for (auto& [cid, p] : all) {
      n::Cqe c{};
      c.cid = cid;
      c.status = static_cast<uint16_t>(n::sc::kAbortedSqDeletion << 1);
      p.cb(c);
    }
  }

  Trid trid_;
  std::shared_ptr<Device> dev_;
  size_t qpairs_;
  uint8_t* admin_buf_ = nullptr;
  uint16_t next_cid_ = 0x200;
  std::map<uint16_t, Pending> pending_;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<AdminPath> connect_vfio_user(const Trid& trid, const PathOptions& opts,
                                             std::string* error, int* err_no) {
  (void)opts;
  std::string err;
  std::unique_ptr<Device> dev = Device::connect(trid.traddr, &err);
  if (!dev) {
    *err_no = err.find("No such file") != std::string::npos ? ENOENT
              : err.find("refused") != std::string::npos    ? ECONNREFUSED
                                                            : EIO;
    *error = fmt::format(
        "cannot connect to the vfio-user function at {} ({}); give traddr as the function's "
        "directory (holding 'cntrl') or its socket, as nvmf_subsystem_add_listener -t VFIOUSER "
        "or nvmf_doca_list_functions shows it",
        trid.traddr, err);
    return nullptr;
  }
  auto p = std::make_unique<VfioAdminPath>(trid, std::shared_ptr<Device>(std::move(dev)),
                                           opts.io_qpairs);
  err = p->connect();
  if (!err.empty()) {
    *err_no = EIO;
    *error = fmt::format("vfio-user function at {}: {}", trid.traddr, err);
    return nullptr;
  }
  return p;
}

}  // namespace nvemu::bdev::nvme
