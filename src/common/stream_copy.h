// A copy whose stores bypass the cache (non-temporal): for writing into
// memory that is cold and will not be read soon, such as a random block of a
// RAM disk. A plain copy first reads every destination line from DRAM (the
// read-for-ownership) and stalls on the store buffer while it waits; a
// streaming copy only writes. It ends with a store fence, so the data is
// visible to every core before whatever the caller does next (completing
// the I/O, which another reactor may then read).
//
// copy_from_cold is the other direction: reading a block that is most likely
// in DRAM, not in cache (a random block of a RAM disk), into a buffer the
// reader will use soon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace nvemu {

inline void copy_streaming(void* dst, const void* src, size_t n) {
#if defined(__SSE2__)
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  // Head up to 16-byte alignment of the destination, as streaming stores need.
  size_t head = (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15;
  if (head > n) head = n;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  for (; n >= 64; n -= 64, d += 64, s += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
    __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
  }
  std::memcpy(d, s, n);
  _mm_sfence();
#else
  std::memcpy(dst, src, n);
#endif
}

// Above 32 KiB, four 32-byte loads then four stores per step: 128 KiB in
// 10.0-10.8 us against glibc's 10.5-12.1 (same disk, sequential or random
// blocks), where the string instruction is the slowest (11.5-12.6).
#if defined(__x86_64__)
__attribute__((target("avx2"))) inline void copy_avx2(uint8_t* d, const uint8_t* s, size_t n) {
  for (; n >= 128; n -= 128, d += 128, s += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 64));
    __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 96));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 32), b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 64), c);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 96), e);
  }
  std::memcpy(d, s, n);
}

inline bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

// Up to 32 KiB, the string copy instruction: the core fetches the source's
// lines itself, more of them at once than glibc's vector loop keeps in
// flight. Random blocks of a 512 MiB disk (2 MiB pages, AMD EPYC VM, one
// core): 4 KiB 350-450 ns against glibc 2.36's 415-475, 8 KiB 620-770
// against 800-880; at 64 KiB it is slower (5.7 against 5.4 us), so larger
// copies take the vector loop above. glibc picks the instruction only from 8 KiB and
// only when CPUID shows ERMS, which this VM's hypervisor hides.
inline void copy_from_cold(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  if (n <= 32768) {
    asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
    return;
  }
  if (have_avx2()) {
    copy_avx2(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), n);
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace nvemu
