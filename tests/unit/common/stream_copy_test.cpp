#include "common/stream_copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace nvemu {
namespace {

using Copy = void (*)(void*, const void*, size_t);

// Every alignment of source and destination against every length in LENGTHS:
// the bytes arrive, and nothing beside the destination range is touched.
void expect_exact_copies(Copy copy, const std::vector<size_t>& lengths, size_t alignments) {
  constexpr size_t kPad = 64;
  for (size_t so = 0; so < alignments; ++so)
    for (size_t dof = 0; dof < alignments; ++dof)
      for (size_t n : lengths) {
        std::vector<uint8_t> src(n + so + kPad), dst(n + dof + 2 * kPad, 0xEE);
        for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
        copy(dst.data() + kPad + dof, src.data() + so, n);
        for (size_t i = 0; i < dst.size(); ++i) {
          bool inside = i >= kPad + dof && i < kPad + dof + n;
          uint8_t want = inside ? src[i - kPad - dof + so] : 0xEE;
          ASSERT_EQ(dst[i], want) << "src+" << so << " dst+" << dof << " n=" << n << " at " << i;
        }
      }
}

// Lengths around the 16-byte head and 64-byte body boundaries, and a block.
TEST(StreamCopy, CopiesExactlyTheRangeAtAnyAlignment) {
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 200; ++n) lengths.push_back(n);
  lengths.push_back(4096);
  lengths.push_back(4096 + 7);
  expect_exact_copies(copy_streaming, lengths, 17);
}

// Both sides of the 32 KiB switch from the string instruction to memcpy.
TEST(ColdCopy, CopiesExactlyTheRangeAtAnyAlignment) {
  std::vector<size_t> lengths = {0,    1,    63,    64,    65,    512,   4095,
                                 4096, 4097, 32767, 32768, 32769, 131072};
  expect_exact_copies(copy_from_cold, lengths, 9);
}

}  // namespace
}  // namespace nvemu
