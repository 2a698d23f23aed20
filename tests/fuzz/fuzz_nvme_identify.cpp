// libFuzzer target: what a remote controller returns to bdev_nvme's
// bring-up and rescans — Identify Controller, Identify Namespace and the
// Namespace Identification Descriptor list — parsed from one 4 KiB page
// (shorter inputs are zero-padded, as a short data transfer leaves it).
// A namespace the parser accepts must be one the bdev can serve.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "bdev/nvme/path.h"

using namespace nvemu::bdev::nvme;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  alignas(8) uint8_t page[4096] = {};
  std::memcpy(page, data, size < sizeof page ? size : sizeof page);

  CtrlrInfo info;
  parse_identify_ctrlr(page, &info);
  if (info.max_xfer < 4096 || info.max_xfer > (1u << 20)) abort();

  NsInfo ns;
  if (parse_identify_ns(page, 1, &ns)) {
    if (ns.block_size < 512 || ns.block_size > 65536 || ns.num_blocks == 0) abort();
    if (ns.num_blocks > UINT64_MAX / ns.block_size) abort();
  }
  std::string uuid = parse_ns_uuid(page);
  if (!uuid.empty() && uuid.size() != 36) abort();
  return 0;
}
