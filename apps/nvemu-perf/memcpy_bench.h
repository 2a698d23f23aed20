// --memcpy-bench: how many 4 KiB and 128 KiB memcpy()s one core does per
// second, cache-cold source/destination rotating through 64 MiB, i.e. the
// ceiling for a copying transport.
#pragma once

#include "options.h"

namespace nvemu::perf {
int run_memcpy_bench(const Options& o);
}
