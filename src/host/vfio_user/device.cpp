#include "host/vfio_user/device.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "nvme/registers.h"

namespace nvemu::host::vfio_user {

namespace vu = nvemu::vfio_user;

namespace {
constexpr uint64_t kDoorbellBase = 0x1000;
constexpr uint8_t kOpcDeleteSq = 0x00, kOpcCreateSq = 0x01, kOpcDeleteCq = 0x04,
                  kOpcCreateCq = 0x05, kOpcIdentify = 0x06;
}  // namespace

std::unique_ptr<Device> Device::connect(const std::string& path, std::string* error) {
  std::string sock = path;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) sock = path + "/cntrl";
  struct sockaddr_un sa {};
  sa.sun_family = AF_UNIX;
  if (sock.size() >= sizeof sa.sun_path) {
    *error = fmt::format("socket path {} is too long", sock);
    return nullptr;
  }
  std::memcpy(sa.sun_path, sock.c_str(), sock.size() + 1);
  std::unique_ptr<Device> d(new Device());
  d->sock_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (d->sock_ < 0 || ::connect(d->sock_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    *error = fmt::format("connect {}: {}", sock, strerror(errno));
    return nullptr;
  }
  if (!d->negotiate(error)) return nullptr;
  return d;
}

Device::~Device() {
  if (db_area_) munmap(db_area_, db_area_len_);
  if (mem_) munmap(mem_, mem_size_);
  if (mem_fd_ >= 0) close(mem_fd_);
  if (bar0_fd_ >= 0) close(bar0_fd_);
  if (sock_ >= 0) close(sock_);
}

bool Device::request(uint16_t cmd, const void* payload, size_t len, Message* reply,
                     std::string* error, const int* fds, size_t nfds) {
  vu::Header h{};
  h.msg_id = next_id_++;
  h.command = cmd;
  h.flags = vu::kFlagRequest;
  if (!vu::send_message(sock_, h, payload, len, fds, nfds)) {
    *error = fmt::format("sending {}: {}", vu::command_name(cmd), strerror(errno));
    return false;
  }
  if (!vu::recv_message(sock_, reply, error)) return false;
  if (!reply->is_reply() || reply->hdr.msg_id != h.msg_id || reply->hdr.command != cmd) {
    *error = fmt::format("unexpected reply (id {}, command {}) to {} id {}", reply->hdr.msg_id,
                         reply->hdr.command, vu::command_name(cmd), h.msg_id);
    return false;
  }
  return true;
}

bool Device::negotiate(std::string* error) {
  std::string caps = R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}})";
  std::vector<uint8_t> p(4 + caps.size() + 1, 0);
  vu::VersionPayload v{vu::kMajor, vu::kMinor};
  std::memcpy(p.data(), &v, 4);
  std::memcpy(p.data() + 4, caps.c_str(), caps.size() + 1);
  Message r;
  if (!request(vu::kVersion, p.data(), p.size(), &r, error)) return false;
  if (r.hdr.flags & vu::kFlagError) {
    *error = fmt::format("VERSION refused: {}", strerror(static_cast<int>(r.hdr.error)));
    return false;
  }
  if (r.payload.size() > 5 && r.payload.back() == '\0')
    caps_ =
        nlohmann::json::parse(reinterpret_cast<const char*>(r.payload.data() + 4), nullptr, false);
  // Device info, then BAR0's doorbell area.
  vu::DeviceInfo di{sizeof di, 0, 0, 0};
  if (!request(vu::kDeviceGetInfo, &di, sizeof di, &r, error)) return false;
  if (!r.get(&di) || !(di.flags & vu::kDeviceFlagPci)) {
    *error = "DEVICE_GET_INFO: not a PCI device";
    return false;
  }
  struct {
    vu::RegionInfo info;
    uint8_t caps[96];
  } ri{};
  ri.info.argsz = sizeof ri;
  ri.info.index = vu::kBar0;
  if (!request(vu::kDeviceGetRegionInfo, &ri, sizeof ri, &r, error)) return false;
  vu::RegionInfo info;
  if (!r.get(&info) || (r.hdr.flags & vu::kFlagError)) {
    *error = "DEVICE_GET_REGION_INFO(BAR0) failed";
    return false;
  }
  // The doorbells of queue y sit at 0x1000 + (2y [+1]) * (4 << CAP.DSTRD)
  // (NVMe Base 2.0, SQyTDBL and CQyHDBL): a device may space them apart.
  db_stride_ = 4u << nvme::Cap{read64(nvme::reg::kCap)}.dstrd();
  if ((info.flags & vu::kRegionFlagCaps) && !r.fds.empty()) {
    // Walk the capability chain for the sparse mmap areas.
    uint32_t off = info.cap_offset;
    for (int guard = 0; off && guard < 16; ++guard) {
      vu::CapHeader ch;
      if (!r.get(&ch, off)) break;
      if (ch.id == vu::kCapSparseMmap) {
        vu::SparseMmapCap sc;
        vu::SparseMmapArea a;
        if (r.get(&sc, off) && sc.nr_areas >= 1 && r.get(&a, off + sizeof sc) &&
            a.offset <= kDoorbellBase && a.offset + a.size > kDoorbellBase) {
          bar0_fd_ = r.fds[0].release();
          void* m = mmap(nullptr, a.size, PROT_READ | PROT_WRITE, MAP_SHARED, bar0_fd_,
                         static_cast<off_t>(info.offset + a.offset));
          if (m != MAP_FAILED) {
            db_area_ = static_cast<uint8_t*>(m);
            db_area_len_ = a.size;
            db_map_ = db_area_ + (kDoorbellBase - a.offset);
            db_map_len_ = a.offset + a.size - kDoorbellBase;
          }
        }
        break;
      }
      off = ch.next;
    }
  }
  return true;
}

bool Device::region_read(uint32_t region, uint64_t off, void* buf, uint32_t len,
                         std::string* error) {
  vu::RegionAccess a{off, region, len};
  Message r;
  if (!request(vu::kRegionRead, &a, sizeof a, &r, error)) return false;
  if ((r.hdr.flags & vu::kFlagError) || r.payload.size() != sizeof a + len) {
    *error = fmt::format("REGION_READ region {} {:#x}+{}: {}", region, off, len,
                         strerror(static_cast<int>(r.hdr.error)));
    return false;
  }
  std::memcpy(buf, r.payload.data() + sizeof a, len);
  return true;
}

bool Device::region_write(uint32_t region, uint64_t off, const void* buf, uint32_t len,
                          std::string* error) {
  std::vector<uint8_t> p(sizeof(vu::RegionAccess) + len);
  vu::RegionAccess a{off, region, len};
  std::memcpy(p.data(), &a, sizeof a);
  std::memcpy(p.data() + sizeof a, buf, len);
  Message r;
  if (!request(vu::kRegionWrite, p.data(), p.size(), &r, error)) return false;
  if (r.hdr.flags & vu::kFlagError) {
    *error = fmt::format("REGION_WRITE region {} {:#x}+{}: {}", region, off, len,
                         strerror(static_cast<int>(r.hdr.error)));
    return false;
  }
  return true;
}

uint32_t Device::config_read32(uint32_t off) {
  uint32_t v = 0;
  std::string e;
  region_read(vu::kConfig, off, &v, 4, &e);
  return v;
}
uint32_t Device::read32(uint32_t off) {
  uint32_t v = 0;
  std::string e;
  region_read(vu::kBar0, off, &v, 4, &e);
  return v;
}
uint64_t Device::read64(uint32_t off) {
  uint64_t v = 0;
  std::string e;
  region_read(vu::kBar0, off, &v, 8, &e);
  return v;
}
bool Device::write32(uint32_t off, uint32_t v) {
  std::string e;
  return region_write(vu::kBar0, off, &v, 4, &e);
}
bool Device::write64(uint32_t off, uint64_t v) {
  std::string e;
  return region_write(vu::kBar0, off, &v, 8, &e);
}

bool Device::setup_memory(size_t bytes, uint64_t iova, std::string* error) {
  bytes = (bytes + 4095) & ~size_t{4095};
  mem_fd_ = memfd_create("nvemu-host-dma", MFD_CLOEXEC);
  if (mem_fd_ < 0 || ftruncate(mem_fd_, static_cast<off_t>(bytes)) != 0) {
    *error = fmt::format("memfd: {}", strerror(errno));
    return false;
  }
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd_, 0);
  if (m == MAP_FAILED) {
    *error = fmt::format("mmap: {}", strerror(errno));
    return false;
  }
  mem_ = static_cast<uint8_t*>(m);
  mem_size_ = bytes;
  iova_ = iova;
  vu::DmaMap dm{sizeof dm, vu::kDmaMapRead | vu::kDmaMapWrite, 0, iova, bytes};
  Message r;
  if (!request(vu::kDmaMap, &dm, sizeof dm, &r, error, &mem_fd_, 1)) return false;
  if (r.hdr.flags & vu::kFlagError) {
    *error = fmt::format("DMA_MAP: {}", strerror(static_cast<int>(r.hdr.error)));
    return false;
  }
  return true;
}

void* Device::alloc(size_t bytes, size_t align) {
  size_t start = (mem_used_ + align - 1) & ~(align - 1);
  if (start + bytes > mem_size_) return nullptr;
  mem_used_ = start + bytes;
  std::memset(mem_ + start, 0, bytes);
  return mem_ + start;
}

void Device::doorbell(uint32_t index, uint32_t value) {
  uint64_t off = uint64_t{index} * db_stride_;
  if (off + 4 <= db_map_len_) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(db_map_ + off), value, __ATOMIC_RELEASE);
    return;
  }
  std::string e;  // not in the mmapped area: a message
  region_write(vu::kBar0, kDoorbellBase + off, &value, 4, &e);
}

void Device::ring_sq(uint16_t qid, uint32_t tail) {
  doorbell(2u * qid, tail);
}

bool Device::wait_csts_rdy(bool want, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    uint32_t csts = read32(nvme::reg::kCsts);
    if (csts & nvme::csts::kCfs) return false;
    if (bool(csts & nvme::csts::kRdy) == want) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return false;
}

bool Device::enable(uint16_t aq_depth, std::string* error) {
  if (!mem_) {
    *error = "setup_memory first";
    return false;
  }
  Queue q;
  q.qid = 0;
  q.depth = aq_depth;
  q.sq = static_cast<nvme::Sqe*>(alloc(size_t{aq_depth} * 64));
  q.cq = static_cast<nvme::Cqe*>(alloc(size_t{aq_depth} * 16));
  q.prp_lists = static_cast<uint8_t*>(alloc(size_t{aq_depth} * 4096));
  if (!q.sq || !q.cq || !q.prp_lists) {
    *error = "out of DMA memory for the admin queues";
    return false;
  }
  write32(nvme::reg::kAqa, uint32_t(aq_depth - 1) | (uint32_t(aq_depth - 1) << 16));
  write64(nvme::reg::kAsq, iova(q.sq));
  write64(nvme::reg::kAcq, iova(q.cq));
  queues_[0] = q;
  write32(nvme::reg::kCc, nvme::cc::kEn | (6u << 16) | (4u << 20));
  if (!wait_csts_rdy(true, 2000)) {
    *error = fmt::format("CSTS.RDY did not become 1 (CSTS {:#x})", read32(nvme::reg::kCsts));
    return false;
  }
  return true;
}

bool Device::disable(std::string* error) {
  write32(nvme::reg::kCc, 0);
  queues_.clear();
  if (!wait_csts_rdy(false, 2000)) {
    *error = "CSTS.RDY did not clear";
    return false;
  }
  return true;
}

bool Device::build_prps(uint16_t qid, uint16_t cid, nvme::Sqe* cmd, void* buf, uint32_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  if (p < mem_ || p + len > mem_ + mem_size_) return false;
  uint64_t addr = iova(buf);
  cmd->flags &= 0x3f;  // PSDT 0: PRPs
  cmd->dptr.prp.prp1 = addr;
  cmd->dptr.prp.prp2 = 0;
  uint64_t first = 4096 - (addr & 4095);
  if (len <= first) return true;
  uint64_t rest = len - first;
  uint64_t next = (addr & ~uint64_t{4095}) + 4096;
  if (rest <= 4096) {
    cmd->dptr.prp.prp2 = next;
    return true;
  }
  if ((rest + 4095) / 4096 > 512) return false;  // one list page
  Queue& q = queues_.at(qid);
  auto* list = reinterpret_cast<uint64_t*>(q.prp_lists + static_cast<size_t>(cid % q.depth) * 4096);
  for (uint64_t i = 0; rest > 0; ++i, next += 4096) {
    list[i] = next;
    rest -= std::min<uint64_t>(rest, 4096);
  }
  cmd->dptr.prp.prp2 = iova(list);
  return true;
}

int Device::submit(uint16_t qid, nvme::Sqe cmd) {
  auto it = queues_.find(qid);
  if (it == queues_.end()) return -1;
  Queue& q = it->second;
  if ((q.sq_tail + 1) % q.depth == 0 && q.outstanding + 1 >= q.depth) return -1;
  if (q.outstanding + 1 >= q.depth) return -1;
  std::memcpy(&q.sq[q.sq_tail], &cmd, sizeof cmd);
  q.sq_tail = (q.sq_tail + 1) % q.depth;
  q.outstanding++;
  doorbell(2u * qid, q.sq_tail);
  return cmd.cid;
}

int Device::poll(uint16_t qid, const std::function<void(const nvme::Cqe&)>& fn) {
  auto it = queues_.find(qid);
  if (it == queues_.end()) return 0;
  Queue& q = it->second;
  // Reap a batch and release its CQ slots (head doorbell) before any
  // callback runs: a callback may submit again, and the controller must
  // never see more commands outstanding than free CQ entries (a controller
  // may drop a completion it has no room for, as SPDK's does).
  constexpr int kBatch = 64;
  nvme::Cqe batch[kBatch];
  int total = 0;
  for (;;) {
    int n = 0;
    while (n < kBatch) {
      nvme::Cqe* slot = &q.cq[q.cq_head];
      uint32_t dw3 = __atomic_load_n(
          reinterpret_cast<uint32_t*>(reinterpret_cast<uint8_t*>(slot) + 12), __ATOMIC_ACQUIRE);
      if (bool(dw3 >> 16 & 1) != q.phase) break;
      std::memcpy(&batch[n++], slot, sizeof *slot);
      if (++q.cq_head == q.depth) {
        q.cq_head = 0;
        q.phase = !q.phase;
      }
    }
    if (n == 0) break;
    doorbell(2u * qid + 1, q.cq_head);
    q.outstanding -= n;
    for (int i = 0; i < n; ++i) fn(batch[i]);
    total += n;
    if (n < kBatch) break;
  }
  return total;
}

bool Device::admin(nvme::Sqe cmd, nvme::Cqe* cqe, std::string* error, int timeout_ms) {
  Queue& q = queues_.at(0);
  cmd.cid = q.next_cid++;
  if (submit(0, cmd) < 0) {
    *error = "admin SQ full";
    return false;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < end) {
    poll(0, [&](const nvme::Cqe& e) {
      if (e.cid == cmd.cid) {
        *cqe = e;
        done = true;
      }
    });
    if (!done) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  if (!done) *error = fmt::format("admin command {:#x} timed out", cmd.opc);
  return done;
}

bool Device::identify(uint8_t cns, uint32_t nsid, void* buf4k, std::string* error) {
  nvme::Sqe c{};
  c.opc = kOpcIdentify;
  c.nsid = nsid;
  c.cdw10 = cns;
  void* dma = alloc(4096);
  if (!dma) {
    *error = "out of DMA memory";
    return false;
  }
  build_prps(0, 0, &c, dma, 4096);
  nvme::Cqe e{};
  if (!admin(c, &e, error)) return false;
  if (e.sc() || e.sct()) {
    *error = fmt::format("Identify CNS {} failed: SCT {} SC {:#x}", cns, e.sct(), e.sc());
    return false;
  }
  std::memcpy(buf4k, dma, 4096);
  return true;
}

bool Device::create_io_queue(uint16_t qid, uint16_t depth, bool irq, std::string* error) {
  Queue q;
  q.qid = qid;
  q.depth = depth;
  q.sq = static_cast<nvme::Sqe*>(alloc(size_t{depth} * 64));
  q.cq = static_cast<nvme::Cqe*>(alloc(size_t{depth} * 16));
  q.prp_lists = static_cast<uint8_t*>(alloc(size_t{depth} * 4096));
  if (!q.sq || !q.cq || !q.prp_lists) {
    *error = "out of DMA memory for the I/O queues";
    return false;
  }
  nvme::Sqe c{};
  c.opc = kOpcCreateCq;
  c.dptr.prp.prp1 = iova(q.cq);
  c.cdw10 = qid | (uint32_t(depth - 1) << 16);
  c.cdw11 = 1u | (irq ? 2u : 0u) | (uint32_t(qid) << 16);
  nvme::Cqe e{};
  if (!admin(c, &e, error)) return false;
  if (e.sc() || e.sct()) {
    *error = fmt::format("Create I/O CQ {}: SCT {} SC {:#x}", qid, e.sct(), e.sc());
    return false;
  }
  c = {};
  c.opc = kOpcCreateSq;
  c.dptr.prp.prp1 = iova(q.sq);
  c.cdw10 = qid | (uint32_t(depth - 1) << 16);
  c.cdw11 = 1u | (uint32_t(qid) << 16);
  if (!admin(c, &e, error)) return false;
  if (e.sc() || e.sct()) {
    *error = fmt::format("Create I/O SQ {}: SCT {} SC {:#x}", qid, e.sct(), e.sc());
    return false;
  }
  queues_[qid] = q;
  return true;
}

bool Device::delete_io_queue(uint16_t qid, std::string* error) {
  nvme::Sqe c{};
  nvme::Cqe e{};
  c.opc = kOpcDeleteSq;
  c.cdw10 = qid;
  if (!admin(c, &e, error)) return false;
  c.opc = kOpcDeleteCq;
  if (!admin(c, &e, error)) return false;
  queues_.erase(qid);
  return true;
}

bool Device::set_msix_eventfd(uint16_t vector, int eventfd, std::string* error) {
  vu::IrqSet s{sizeof s, vu::kIrqSetDataEventfd | vu::kIrqSetActionTrigger, vu::kIrqMsix, vector,
               1};
  Message r;
  if (!request(vu::kDeviceSetIrqs, &s, sizeof s, &r, error, &eventfd, 1)) return false;
  if (r.hdr.flags & vu::kFlagError) {
    *error = fmt::format("SET_IRQS: {}", strerror(static_cast<int>(r.hdr.error)));
    return false;
  }
  return true;
}

bool Device::io(uint16_t qid, uint8_t opc, uint32_t nsid, uint64_t lba, uint32_t nblocks, void* buf,
                uint32_t len, nvme::Cqe* cqe, std::string* error, int timeout_ms) {
  auto it = queues_.find(qid);
  if (it == queues_.end() || nblocks == 0) {
    *error = fmt::format("no I/O queue {} (or 0 blocks)", qid);
    return false;
  }
  nvme::Sqe c{};
  c.opc = opc;
  c.nsid = nsid;
  c.cid = it->second.next_cid++;
  c.cdw10 = static_cast<uint32_t>(lba);
  c.cdw11 = static_cast<uint32_t>(lba >> 32);
  c.cdw12 = nblocks - 1;
  if (!build_prps(qid, c.cid, &c, buf, len)) {
    *error = "buffer outside DMA memory or too long";
    return false;
  }
  if (submit(qid, c) < 0) {
    *error = "SQ full";
    return false;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < end) {
    poll(qid, [&](const nvme::Cqe& e) {
      if (e.cid == c.cid) {
        *cqe = e;
        done = true;
      }
    });
    if (!done) std::this_thread::sleep_for(std::chrono::microseconds(10));
  }
  if (!done) *error = fmt::format("I/O opc {:#x} timed out", opc);
  return done;
}

}  // namespace nvemu::host::vfio_user
