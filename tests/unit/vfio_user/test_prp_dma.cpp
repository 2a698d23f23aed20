// DMA map table, PRP/SGL walker and PCI config space, without sockets.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "nvmf/vfio_user/dma.h"
#include "nvmf/vfio_user/pci_config.h"
#include "nvmf/vfio_user/prp_sgl.h"
#include "wire/vfio_user/protocol.h"

using namespace nvemu;
using namespace nvemu::vfio_user;

namespace {

constexpr uint64_t kBase = 0x100000;
constexpr uint64_t kSize = 64 * 4096;

struct Mem {
  int fd = memfd_create("t", 0);
  uint8_t* p = nullptr;
  Mem() {
    EXPECT_EQ(ftruncate(fd, kSize), 0);
    p = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  }
  ~Mem() {
    munmap(p, kSize);
    close(fd);
  }
  uint8_t* at(uint64_t iova) { return p + (iova - kBase); }
  // The same byte as the DMA table maps it (a second mapping of the memfd).
  static uint8_t* in(const DmaTable& t, uint64_t iova) { return t.translate(iova, 1, false); }
};

void map(DmaTable& t, Mem& m) {
  std::string why;
  ASSERT_EQ(t.map(kBase, kSize, dup(m.fd), 0, kDmaMapRead | kDmaMapWrite, &why), 0) << why;
}

nvme::Status walk(const DmaTable& t, const nvme::Sqe& c, uint32_t len, int* n, struct iovec* iov,
                  bool admin = false) {
  DataMapParams p;
  p.length = len;
  p.admin = admin;
  p.device_writes = true;
  DmaRefs refs;
  return map_data(c, p, t, iov, 33, n, &refs);
}

}  // namespace

TEST(VfioUserDma, MapTranslateUnmap) {
  Mem m;
  DmaTable t;
  map(t, m);
  std::string why;
  EXPECT_EQ(t.map(kBase + 4096, 4096, -1, 0, kDmaMapRead, &why), EEXIST);
  EXPECT_EQ(t.map(kBase + 1, 4096, -1, 0, kDmaMapRead, &why), EINVAL);
  EXPECT_EQ(t.map(~0ull - 4095, 8192, -1, 0, kDmaMapRead, &why), EINVAL);
  uint8_t* base = t.translate(kBase, 1, false);  // the table's own mapping of the memfd
  ASSERT_NE(base, nullptr);
  EXPECT_EQ(t.translate(kBase + 8, 16, true), base + 8);
  EXPECT_EQ(t.translate(kBase + kSize - 8, 16, false), nullptr);  // crosses the end
  EXPECT_EQ(t.translate(kBase - 1, 1, false), nullptr);
  uint64_t n = 0;
  EXPECT_EQ(t.unmap(kBase, 4096, &n, &why), EINVAL);  // would split
  DmaRef ref;
  uint8_t* p = t.translate(kBase, 4096, true, &ref);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(t.unmap(kBase, kSize, &n, &why), 0);
  EXPECT_EQ(n, kSize);
  EXPECT_EQ(t.translate(kBase, 16, false), nullptr);
  // The in-flight reference keeps the mapping usable until dropped.
  p[0] = 0x5a;  // same memfd page as m.p[0]
  EXPECT_EQ(m.p[0], 0x5a);
  ref.reset();
}

TEST(VfioUserPrp, TwoEntriesAndList) {
  Mem m;
  DmaTable t;
  map(t, m);
  struct iovec iov[33];
  int n = 0;
  nvme::Sqe c{};
  // One page, offset 0x200: one iovec.
  c.dptr.prp.prp1 = kBase + 0x200;
  ASSERT_TRUE(walk(t, c, 512, &n, iov).ok());
  EXPECT_EQ(n, 1);
  EXPECT_EQ(iov[0].iov_base, Mem::in(t, kBase + 0x200));
  // Two pages via PRP2 (non-contiguous page).
  c.dptr.prp.prp1 = kBase + 0x800;
  c.dptr.prp.prp2 = kBase + 10 * 4096;
  ASSERT_TRUE(walk(t, c, 4096, &n, iov).ok());
  EXPECT_EQ(n, 2);
  EXPECT_EQ(iov[0].iov_len, 0x800u);
  EXPECT_EQ(iov[1].iov_base, Mem::in(t, kBase + 10 * 4096));
  // PRP2 with an offset where a page is required.
  c.dptr.prp.prp2 = kBase + 10 * 4096 + 8;
  auto s = walk(t, c, 4096, &n, iov);
  EXPECT_EQ(s.sc, nvme::sc::kInvalidPrpOffset);
  // A PRP list of 4 pages (contiguous ones merge).
  auto* list = reinterpret_cast<uint64_t*>(m.at(kBase + 20 * 4096));
  list[0] = kBase + 1 * 4096;
  list[1] = kBase + 2 * 4096;
  list[2] = kBase + 5 * 4096;
  c.dptr.prp.prp1 = kBase;
  c.dptr.prp.prp2 = kBase + 20 * 4096;
  ASSERT_TRUE(walk(t, c, 4 * 4096, &n, iov).ok());
  EXPECT_EQ(n, 2);
  EXPECT_EQ(iov[0].iov_len, 3u * 4096);
  // A list entry with an offset; an entry outside the map.
  list[1] = kBase + 2 * 4096 + 4;
  EXPECT_EQ(walk(t, c, 4 * 4096, &n, iov).sc, nvme::sc::kInvalidPrpOffset);
  list[1] = 0xdead0000;
  EXPECT_EQ(walk(t, c, 4 * 4096, &n, iov).sc, nvme::sc::kDataTransferError);
  // List pointer outside the map.
  c.dptr.prp.prp2 = 0xbad000;
  EXPECT_EQ(walk(t, c, 4 * 4096, &n, iov).sc, nvme::sc::kDataTransferError);
  // PRP1 not dword aligned.
  c.dptr.prp.prp1 = kBase + 2;
  EXPECT_EQ(walk(t, c, 16, &n, iov).sc, nvme::sc::kInvalidPrpOffset);
}

TEST(VfioUserSgl, DataBlocksAndSegments) {
  Mem m;
  DmaTable t;
  map(t, m);
  struct iovec iov[33];
  int n = 0;
  nvme::Sqe c{};
  c.flags = nvme::kPsdtSglMptrContig << 6;
  c.dptr.sgl1 = {kBase + 100, 1000, {}, nvme::kSglDataBlock << 4};
  ASSERT_TRUE(walk(t, c, 1000, &n, iov).ok());
  EXPECT_EQ(n, 1);
  EXPECT_EQ(walk(t, c, 2000, &n, iov).sc, nvme::sc::kDataSglLengthInvalid);
  // Admin commands on PCIe must use PRPs.
  EXPECT_EQ(walk(t, c, 1000, &n, iov, true).sc, nvme::sc::kInvalidField);
  // Last segment with two data blocks.
  auto* seg = reinterpret_cast<nvme::SglDescriptor*>(m.at(kBase + 30 * 4096));
  seg[0] = {kBase + 0x1000, 512, {}, nvme::kSglDataBlock << 4};
  seg[1] = {kBase + 0x3000, 512, {}, nvme::kSglDataBlock << 4};
  c.dptr.sgl1 = {kBase + 30 * 4096, 32, {}, nvme::kSglLastSegment << 4};
  ASSERT_TRUE(walk(t, c, 1024, &n, iov).ok());
  EXPECT_EQ(n, 2);
  // Segment length not a multiple of 16; keyed descriptor; a segment in a last segment.
  c.dptr.sgl1.length = 20;
  EXPECT_EQ(walk(t, c, 1024, &n, iov).sc, nvme::sc::kInvalidSglSegDescriptor);
  c.dptr.sgl1.length = 32;
  seg[1].type = nvme::kSglKeyedDataBlock << 4;
  EXPECT_EQ(walk(t, c, 1024, &n, iov).sc, nvme::sc::kSglDescriptorTypeInvalid);
  seg[1] = {kBase + 30 * 4096, 32, {}, nvme::kSglSegment << 4};
  EXPECT_EQ(walk(t, c, 1024, &n, iov).sc, nvme::sc::kInvalidSglSegDescriptor);
  // A self-referencing Segment loops until the descriptor budget runs out.
  seg[0] = {kBase + 30 * 4096, 16, {}, nvme::kSglSegment << 4};
  c.dptr.sgl1 = {kBase + 30 * 4096, 16, {}, nvme::kSglSegment << 4};
  EXPECT_EQ(walk(t, c, 1024, &n, iov).sc, nvme::sc::kInvalidNumSglDescriptors);
}

TEST(VfioUserPciConfig, HeaderCapsAndBarSizing) {
  PciConfig c;
  uint32_t v = 0;
  ASSERT_TRUE(c.read(0, &v, 4));
  EXPECT_EQ(v, 0x00014e58u);
  ASSERT_TRUE(c.read(8, &v, 4));
  EXPECT_EQ(v >> 8, 0x010802u);
  uint32_t ones = 0xffffffff;
  ASSERT_TRUE(c.write(0x10, &ones, 4));
  ASSERT_TRUE(c.read(0x10, &v, 4));
  EXPECT_EQ(v, static_cast<uint32_t>(~(kBar0Size - 1)) | 0x4);
  ASSERT_TRUE(c.write(0x14, &ones, 4));
  ASSERT_TRUE(c.read(0x14, &v, 4));
  EXPECT_EQ(v, 0xffffffffu);
  // Capability chain PM -> MSI-X -> PCIe.
  uint8_t ptr = 0;
  c.read(0x34, &ptr, 1);
  std::vector<uint8_t> ids;
  for (int guard = 0; ptr && guard < 8; ++guard) {
    uint8_t id = 0;
    c.read(ptr, &id, 1);
    ids.push_back(id);
    c.read(ptr + 1u, &ptr, 1);
  }
  EXPECT_EQ(ids, (std::vector<uint8_t>{0x01, 0x11, 0x10}));
  uint16_t vid = 0x1234;
  c.write(0, &vid, 2);  // read-only
  c.read(0, &v, 4);
  EXPECT_EQ(v & 0xffff, 0x4e58u);
  EXPECT_FALSE(c.read(4095, &v, 4));
}
