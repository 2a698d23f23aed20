// NsJob over nvemu's vfio-user PCIe host driver: one shared DMA memfd per
// controller, one I/O SQ/CQ pair per namespace, polled (no interrupts). The
// CID of each command is its task index, so a completion finds its task
// without a lookup table.
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <functional>

#include "host/vfio_user/device.h"
#include "job.h"
#include "ns_list.h"
#include "nvme/registers.h"

namespace nvemu::perf {

namespace {

namespace hv = host::vfio_user;
constexpr uint64_t kIova = 1ull << 32;
constexpr size_t kMaxJobs = 64;  // DMA memory is sized for this many namespaces

class VfioJob final : public NsJob {
 public:
  VfioJob(const Options& o, const host::perf::TransportId& tid, uint32_t nsid, uint32_t bs,
          uint64_t nblocks, hv::Device* dev)
      : NsJob(o, tid, nsid, bs, nblocks), dev_(dev) {
    on_cqe_ = [this](const nvme::Cqe& c) {
      Task* t = &tasks_[c.cid];
      complete(t, (c.status >> 1) == 0);
    };
  }

  std::string setup(uint16_t qid) {
    qid_ = qid;
    std::string err;
    // One SQ entry stays empty (full = tail + 1 == head), so depth + 1.
    if (!dev_->create_io_queue(qid, static_cast<uint16_t>(opts_.queue_depth + 1), false, &err))
      return err;
    tasks_.resize(opts_.queue_depth);
    for (uint32_t i = 0; i < opts_.queue_depth; ++i) {
      tasks_[i].job = this;
      tasks_[i].index = static_cast<uint16_t>(i);
      tasks_[i].buf = static_cast<uint8_t*>(dev_->alloc(opts_.io_size));
      if (!tasks_[i].buf) return "out of DMA memory for I/O buffers";
      std::memset(tasks_[i].buf, 0x5a, opts_.io_size);
    }
    return "";
  }

  int poll() override { return dev_->poll(qid_, on_cqe_); }

 protected:
  bool submit_io(Task* t, uint64_t slba, uint32_t nlb) override {
    nvme::Sqe c{};
    c.opc = t->read ? 0x02 : 0x01;
    c.nsid = nsid();
    c.cid = t->index;
    c.cdw10 = static_cast<uint32_t>(slba);
    c.cdw11 = static_cast<uint32_t>(slba >> 32);
    c.cdw12 = nlb - 1;
    if (!dev_->build_prps(qid_, c.cid, &c, t->buf, opts_.io_size)) return false;
    return dev_->submit(qid_, c) >= 0;
  }

 private:
  hv::Device* dev_;
  uint16_t qid_ = 0;
  std::function<void(const nvme::Cqe&)> on_cqe_;
};

class VfioController final : public Controller {
 public:
  ~VfioController() override {
    jobs_.clear();
    if (dev_) {
      std::string e;
      dev_->disable(&e);
    }
  }
  std::unique_ptr<hv::Device> dev_;
};

}  // namespace

std::unique_ptr<Controller> connect_vfio_user(const Options& o, const host::perf::TransportId& tid,
                                              std::string* error) {
  auto c = std::make_unique<VfioController>();
  std::string err;
  c->dev_ = hv::Device::connect(tid.traddr, &err);
  if (!c->dev_) {
    *error = fmt::format("{}: connect: {}", tid.describe(), err);
    return nullptr;
  }
  uint64_t cap = c->dev_->read64(nvme::reg::kCap);
  uint32_t mqes = static_cast<uint32_t>(cap & 0xffff) + 1;
  if (o.queue_depth + 1 > mqes) {
    *error = fmt::format(
        "{}: -q {} needs {} queue entries but the controller allows {} (CAP.MQES); create the "
        "transport with a larger max_queue_depth (nvmf_create_transport -t VFIOUSER -q {})",
        tid.describe(), o.queue_depth, o.queue_depth + 1, mqes, o.queue_depth + 1);
    return nullptr;
  }
  size_t per_job = size_t{o.queue_depth + 1} * (64 + 16 + 4096) +
                   size_t{o.queue_depth} * ((o.io_size + 4095) & ~size_t{4095});
  size_t bytes = (8u << 20) + kMaxJobs * per_job;
  if (!c->dev_->setup_memory(bytes, kIova, &err) || !c->dev_->enable(32, &err)) {
    *error = fmt::format("{}: {}", tid.describe(), err);
    return nullptr;
  }
  std::array<uint8_t, 4096> page{};
  if (!c->dev_->identify(2, 0, page.data(), &err)) {
    *error = fmt::format("{}: Identify active namespace list: {}", tid.describe(), err);
    return nullptr;
  }
  uint32_t only = tid.ns ? tid.ns : o.nsid;
  std::vector<uint32_t> ids = active_nsids(page.data(), only);
  if (ids.size() > kMaxJobs) {
    std::fprintf(stderr, "%s: measuring the first %zu of %zu namespaces\n", tid.describe().c_str(),
                 kMaxJobs, ids.size());
    ids.resize(kMaxJobs);
  }
  uint16_t qid = 1;
  for (uint32_t id : ids) {
    uint32_t bs = 0;
    uint64_t nb = 0;
    if (!c->dev_->identify(0, id, page.data(), &err) || !ns_geometry(page.data(), &bs, &nb)) {
      *error = fmt::format("{}: Identify Namespace {}: {}", tid.describe(), id,
                           err.empty() ? "no usable LBA format / size 0" : err);
      return nullptr;
    }
    if (o.io_size % bs || uint64_t{o.io_size / bs} > nb) {
      *error = fmt::format("{} NSID {}: I/O size {} does not fit block size {} / {} blocks",
                           tid.describe(), id, o.io_size, bs, nb);
      return nullptr;
    }
    auto job = std::make_unique<VfioJob>(o, tid, id, bs, nb, c->dev_.get());
    err = job->setup(qid++);
    if (!err.empty()) {
      *error = fmt::format("{} NSID {}: {}", tid.describe(), id, err);
      return nullptr;
    }
    c->jobs().push_back(std::move(job));
  }
  if (c->jobs().empty()) {
    *error = only ? fmt::format("{}: namespace {} is not active", tid.describe(), only)
                  : fmt::format("{}: no active namespaces", tid.describe());
    return nullptr;
  }
  return c;
}

}  // namespace nvemu::perf
