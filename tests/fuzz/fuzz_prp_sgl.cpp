// libFuzzer target: the PRP/SGL walker against a DMA map of 16 pages whose
// contents (PRP lists, SGL segments) come from the input. Checks that every
// iovec lies inside the mapped memory and that the lengths add up.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "nvmf/vfio_user/dma.h"
#include "nvmf/vfio_user/prp_sgl.h"
#include "wire/vfio_user/protocol.h"

using namespace nvemu;
using namespace nvemu::vfio_user;

namespace {
constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kSize = 16 * 4096;

struct Env {
  DmaTable table;
  uint8_t* mem = nullptr;
  Env() {
    int fd = memfd_create("fuzz", 0);
    if (fd < 0 || ftruncate(fd, kSize) != 0) abort();
    mem = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    std::string why;
    if (table.map(kBase, kSize, dup(fd), 0, kDmaMapRead | kDmaMapWrite, &why) != 0) abort();
    close(fd);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env env;
  if (size < sizeof(nvme::Sqe) + 8) return 0;
  nvme::Sqe cmd;
  std::memcpy(&cmd, data, sizeof cmd);
  uint32_t len;
  std::memcpy(&len, data + sizeof cmd, 4);
  uint8_t flags = data[sizeof cmd + 4];
  data += sizeof cmd + 8;
  size -= sizeof cmd + 8;
  std::memset(env.mem, 0, kSize);
  std::memcpy(env.mem, data, std::min<size_t>(size, kSize));
  DataMapParams p;
  p.length = len % (256 * 1024);
  p.admin = flags & 1;
  p.device_writes = flags & 2;
  p.max_sgl_descriptors = 256;
  struct iovec iov[33];
  int n = 0;
  DmaRefs refs;
  nvme::Status s = map_data(cmd, p, env.table, iov, 33, &n, &refs);
  if (s.ok()) {
    const uint8_t* lo = env.table.translate(kBase, 1, false);
    uint64_t total = 0;
    for (int i = 0; i < n; ++i) {
      auto* b = static_cast<const uint8_t*>(iov[i].iov_base);
      if (b < lo || b + iov[i].iov_len > lo + kSize) abort();
      total += iov[i].iov_len;
    }
    if (total != p.length) abort();
  }
  refs.clear();
  return 0;
}
