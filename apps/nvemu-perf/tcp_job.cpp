// NsJob over nvemu's NVMe/TCP initiator: one I/O Queue (one TCP connection)
// per namespace, all on the admin connection's controller.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "host/tcp/host.h"
#include "job.h"
#include "ns_list.h"

namespace nvemu::perf {

namespace {

namespace ht = host::tcp;

class TcpJob final : public NsJob {
 public:
  TcpJob(const Options& o, const host::perf::TransportId& tid, uint32_t nsid, uint32_t bs,
         uint64_t nblocks)
      : NsJob(o, tid, nsid, bs, nblocks) {}
  ~TcpJob() override {
    queue_.close();
    for (auto& t : tasks_) std::free(t.buf);
  }

  std::string setup(ht::Host& host, uint16_t qid) {
    // An NVMe-oF SQ holds at least 2 entries (SQSIZE is 0's based and >= 1).
    auto slots = static_cast<uint16_t>(std::max<uint32_t>(opts_.queue_depth, 2));
    std::string err = host.connect_io_queue(&queue_, qid, slots);
    if (!err.empty()) return fmt::format("I/O queue {}: {}", qid, err);
    tasks_.resize(opts_.queue_depth);
    for (uint32_t i = 0; i < opts_.queue_depth; ++i) {
      tasks_[i].job = this;
      tasks_[i].index = static_cast<uint16_t>(i);
      tasks_[i].buf =
          static_cast<uint8_t*>(std::aligned_alloc(4096, (opts_.io_size + 4095) & ~4095u));
      if (!tasks_[i].buf) return "out of memory for I/O buffers";
      std::memset(tasks_[i].buf, 0x5a, opts_.io_size);
    }
    return "";
  }

  int poll() override {
    int n = queue_.poll();
    if (n < 0 && error_.empty()) error_ = queue_.error();
    return n;
  }

 protected:
  bool submit_io(Task* t, uint64_t slba, uint32_t nlb) override {
    if (t->read) return ht::submit_read(queue_, nsid(), slba, nlb, t->buf, opts_.io_size, &done, t);
    return ht::submit_write(queue_, nsid(), slba, nlb, t->buf, opts_.io_size, &done, t);
  }

 private:
  static void done(void* ctx, const nvme::Cqe& cqe) {
    auto* t = static_cast<Task*>(ctx);
    t->job->complete(t, ht::cqe_ok(cqe));
  }
  ht::Queue queue_;
};

class TcpController final : public Controller {
 public:
  ~TcpController() override {
    jobs_.clear();
    host_.disconnect();
  }
  ht::Host host_;
};

}  // namespace

std::unique_ptr<Controller> connect_tcp(const Options& o, const host::perf::TransportId& tid,
                                        std::string* error) {
  auto c = std::make_unique<TcpController>();
  ht::ConnectParams p;
  p.traddr = tid.traddr;
  p.port = tid.port();
  p.subnqn = tid.subnqn;
  if (!tid.hostnqn.empty()) p.hostnqn = tid.hostnqn;
  std::string err = c->host_.connect(p);
  if (!err.empty()) {
    *error = fmt::format("{}: connect: {}", tid.describe(), err);
    return nullptr;
  }
  std::array<uint8_t, 4096> page{};
  err = c->host_.identify(2, 0, page.data());
  if (!err.empty()) {
    *error = fmt::format("{}: Identify active namespace list: {}", tid.describe(), err);
    return nullptr;
  }
  uint32_t only = tid.ns ? tid.ns : o.nsid;
  std::vector<uint32_t> ids = active_nsids(page.data(), only);
  uint16_t qid = 1;
  for (uint32_t id : ids) {
    err = c->host_.identify(0, id, page.data());
    uint32_t bs = 0;
    uint64_t nb = 0;
    if (!err.empty() || !ns_geometry(page.data(), &bs, &nb)) {
      *error = fmt::format("{}: Identify Namespace {}: {}", tid.describe(), id,
                           err.empty() ? "no usable LBA format / size 0" : err);
      return nullptr;
    }
    if (o.io_size % bs || uint64_t{o.io_size / bs} > nb) {
      *error = fmt::format("{} NSID {}: I/O size {} does not fit block size {} / {} blocks",
                           tid.describe(), id, o.io_size, bs, nb);
      return nullptr;
    }
    auto job = std::make_unique<TcpJob>(o, tid, id, bs, nb);
    err = job->setup(c->host_, qid++);
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
