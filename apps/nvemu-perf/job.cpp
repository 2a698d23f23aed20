#include "job.h"

#include <fmt/format.h>

#include <cstring>

#include "nvme/identify.h"

namespace nvemu::perf {

NsJob::NsJob(const Options& o, const host::perf::TransportId& tid, uint32_t nsid,
             uint32_t block_size, uint64_t nblocks)
    : opts_(o),
      tid_(tid),
      name_(fmt::format("{} NSID {}", tid.describe(), nsid)),
      nsid_(nsid),
      block_size_(block_size),
      io_blocks_(o.io_size / block_size),
      io_slots_(nblocks / (o.io_size / block_size)),
      rng_(o.seed ^ (uint64_t{nsid} * 0x9e3779b97f4a7c15ull) ^ 0x5851f42d4c957f2dull),
      hist_(std::make_unique<host::perf::Histogram>()) {}

uint64_t NsJob::next_lba() {
  if (opts_.random()) return (rand64() % io_slots_) * io_blocks_;
  uint64_t lba = seq_next_ * io_blocks_;
  if (++seq_next_ >= io_slots_) seq_next_ = 0;
  return lba;
}

bool NsJob::submit_task(Task* t) {
  if (opts_.rwmixread == 100)
    t->read = true;
  else if (opts_.rwmixread == 0)
    t->read = false;
  else
    t->read = static_cast<int>(rand64() % 100) < opts_.rwmixread;
  uint64_t lba = next_lba();
  t->start_ns = now_ns();
  if (!submit_io(t, lba, io_blocks_)) {
    if (error_.empty()) error_ = "could not queue an I/O (queue full or down)";
    return false;
  }
  ++outstanding_;
  return true;
}

bool NsJob::start() {
  for (auto& t : tasks_)
    if (!submit_task(&t)) return false;
  return true;
}

void NsJob::complete(Task* t, bool ok) {
  uint64_t end = now_ns();
  --outstanding_;
  hist_->record(end - t->start_ns);
  if (!ok) {
    ++stats_.errors;
  } else if (t->read) {
    ++stats_.reads;
  } else {
    ++stats_.writes;
  }
  stats_.bytes += opts_.io_size;
  ++interval_ios_;
  interval_bytes_ += opts_.io_size;
  if (running_) submit_task(t);
}

uint64_t NsJob::take_interval(uint64_t* bytes) {
  uint64_t n = interval_ios_;
  *bytes = interval_bytes_;
  interval_ios_ = interval_bytes_ = 0;
  return n;
}

bool ns_geometry(const void* page, uint32_t* block_size, uint64_t* nblocks) {
  nvme::IdentifyNamespace id;
  std::memcpy(&id, page, sizeof id);
  if (id.nsze == 0) return false;
  unsigned fmt_idx = (id.flbas & 0xf) | ((id.flbas >> 5 & 3) << 4);
  unsigned lbads = id.lbaf[fmt_idx].lbads;
  if (lbads < 9 || lbads > 20) return false;
  *block_size = 1u << lbads;
  *nblocks = id.nsze;
  return true;
}

}  // namespace nvemu::perf
