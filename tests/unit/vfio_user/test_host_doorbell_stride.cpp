// nvemu's vfio-user host driver against a device whose CAP.DSTRD is not 0.
// nvemu's and SPDK's functions both report 0, so a minimal device stands in
// here: it answers the driver's set-up messages, offers BAR0's doorbells as
// a memfd area (or not), and records the doorbell writes that arrive as
// messages.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "host/vfio_user/device.h"
#include "nvme/registers.h"
#include "wire/vfio_user/msg_socket.h"

namespace vu = nvemu::vfio_user;
using nvemu::host::vfio_user::Device;

namespace {

constexpr uint64_t kDoorbells = 0x1000;
constexpr uint8_t kDstrd = 2;  // doorbells 16 bytes apart

class StridedDevice {
 public:
  explicit StridedDevice(bool offer_mmap) : offer_mmap_(offer_mmap) {
    char tmpl[] = "/tmp/nvemu-dstrd-XXXXXX";
    dir_ = mkdtemp(tmpl);
    bar0_ = vu::UniqueFd(memfd_create("dstrd-bar0", MFD_CLOEXEC));
    EXPECT_EQ(ftruncate(bar0_.get(), 2 * kDoorbells), 0);
    listen_ = vu::UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string path = dir_ + "/cntrl";
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    EXPECT_EQ(bind(listen_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(listen(listen_.get(), 1), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~StridedDevice() {
    finish();
    std::filesystem::remove_all(dir_);
  }
  // Waits for the driver to hang up, so what it wrote can be read here.
  void finish() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& dir() const { return dir_; }
  uint32_t mapped_dword(uint64_t bar0_off) {
    uint32_t v = 0;
    EXPECT_EQ(pread(bar0_.get(), &v, 4, static_cast<off_t>(bar0_off)), 4);
    return v;
  }
  // (BAR0 offset, value) of each doorbell write that came as a message.
  std::vector<std::pair<uint64_t, uint32_t>> written;

 private:
  void reply(int fd, const vu::Message& m, const void* p, size_t len, const int* fds = nullptr,
             size_t nfds = 0) {
    vu::Header h = m.hdr;
    h.flags = vu::kFlagReply;
    vu::send_message(fd, h, p, len, fds, nfds);
  }

  void serve() {
    vu::UniqueFd c(accept(listen_.get(), nullptr, nullptr));
    vu::Message m;
    std::string why;
    while (c && vu::recv_message(c.get(), &m, &why, 5000)) {
      switch (m.hdr.command) {
        case vu::kVersion: {
          std::string caps = R"({"capabilities":{"max_msg_fds":8}})";
          std::vector<uint8_t> p(sizeof(vu::VersionPayload) + caps.size() + 1, 0);
          vu::VersionPayload v{vu::kMajor, vu::kMinor};
          std::memcpy(p.data(), &v, sizeof v);
          std::memcpy(p.data() + sizeof v, caps.c_str(), caps.size());
          reply(c.get(), m, p.data(), p.size());
          break;
        }
        case vu::kDeviceGetInfo: {
          vu::DeviceInfo di{sizeof di, vu::kDeviceFlagPci, 9, 5};
          reply(c.get(), m, &di, sizeof di);
          break;
        }
        case vu::kDeviceGetRegionInfo: {
          struct {
            vu::RegionInfo info;
            vu::SparseMmapCap cap;
            vu::SparseMmapArea area;
          } ri{};
          ri.info.argsz = sizeof ri;
          ri.info.size = 2 * kDoorbells;
          ri.info.flags = vu::kRegionFlagRead | vu::kRegionFlagWrite;
          if (offer_mmap_) {
            ri.info.flags |= vu::kRegionFlagMmap | vu::kRegionFlagCaps;
            ri.info.cap_offset = sizeof ri.info;
            ri.cap.header = {vu::kCapSparseMmap, 1, 0};
            ri.cap.nr_areas = 1;
            ri.area = {kDoorbells, kDoorbells};
          }
          int fd = bar0_.get();
          reply(c.get(), m, &ri, offer_mmap_ ? sizeof ri : sizeof ri.info, &fd, offer_mmap_);
          break;
        }
        case vu::kRegionRead: {
          vu::RegionAccess a{};
          m.get(&a);
          std::vector<uint8_t> p(sizeof a + a.count, 0);
          std::memcpy(p.data(), &a, sizeof a);
          if (a.offset == nvemu::nvme::reg::kCap && a.count == 8) {
            uint64_t cap = nvemu::nvme::Cap::make(127, true, 20, 0, 0).raw | uint64_t{kDstrd} << 32;
            std::memcpy(p.data() + sizeof a, &cap, 8);
          }
          reply(c.get(), m, p.data(), p.size());
          break;
        }
        case vu::kRegionWrite: {
          vu::RegionAccess a{};
          uint32_t v = 0;
          m.get(&a);
          m.get(&v, sizeof a);
          written.emplace_back(a.offset, v);
          reply(c.get(), m, &a, sizeof a);
          break;
        }
        default:
          reply(c.get(), m, nullptr, 0);
      }
    }
  }

  bool offer_mmap_;
  std::string dir_;
  vu::UniqueFd bar0_, listen_;
  std::thread thread_;
};

TEST(VfioUserHostDoorbells, MappedDoorbellsFollowCapDstrd) {
  StridedDevice dev(true);
  std::string err;
  {
    auto d = Device::connect(dev.dir(), &err);
    ASSERT_TRUE(d) << err;
    ASSERT_TRUE(d->doorbells_mapped());
    d->ring_sq(3, 9);  // SQ 3 tail: 0x1000 + (2 * 3) * (4 << 2)
  }
  dev.finish();
  EXPECT_EQ(dev.mapped_dword(kDoorbells + 6 * 16), 9u);
  EXPECT_EQ(dev.mapped_dword(kDoorbells + 6 * 4), 0u);  // where DSTRD 0 would put it
  EXPECT_TRUE(dev.written.empty());
}

TEST(VfioUserHostDoorbells, MessagedDoorbellsFollowCapDstrd) {
  StridedDevice dev(false);
  std::string err;
  {
    auto d = Device::connect(dev.dir(), &err);
    ASSERT_TRUE(d) << err;
    ASSERT_FALSE(d->doorbells_mapped());
    d->ring_sq(1, 5);
  }
  dev.finish();
  ASSERT_EQ(dev.written.size(), 1u);
  EXPECT_EQ(dev.written[0].first, kDoorbells + 2 * 16);
  EXPECT_EQ(dev.written[0].second, 5u);
}

}  // namespace
