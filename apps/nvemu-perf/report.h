// nvemu-perf's output: SPDK perf's summary table, -L percentiles and the
// --json document.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "job.h"
#include "options.h"

namespace nvemu::perf {

struct RunResult {
  double elapsed_s = 0;  // first submission to last completion
  int core = -1;
  std::vector<NsJob*> jobs;
};

void print_summary(const Options& o, const RunResult& r);
// "" or why FILE could not be written.
std::string write_json(const Options& o, const RunResult& r, const std::string& path);

}  // namespace nvemu::perf
