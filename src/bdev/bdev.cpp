#include "bdev/bdev.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/counter.h"
#include "reactor/reactor.h"

namespace nvemu::bdev {

const char* io_status_name(IoStatus s) {
  switch (s) {
    case IoStatus::kSuccess:
      return "success";
    case IoStatus::kError:
      return "error";
    case IoStatus::kNoMem:
      return "nomem";
    case IoStatus::kAborted:
      return "aborted";
    case IoStatus::kOutOfRange:
      return "out_of_range";
    case IoStatus::kMediaRead:
      return "media_read_error";
    case IoStatus::kMediaWrite:
      return "media_write_fault";
  }
  return "?";
}

namespace {

void add(std::atomic<uint64_t>& a, uint64_t v) {
  add_single_writer(a, v);  // one channel, one reactor
}

uint64_t get(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

void accumulate(IoStats& into, const IoStats& from) {
  into.bytes_read.fetch_add(get(from.bytes_read));
  into.num_read_ops.fetch_add(get(from.num_read_ops));
  into.bytes_written.fetch_add(get(from.bytes_written));
  into.num_write_ops.fetch_add(get(from.num_write_ops));
  into.bytes_unmapped.fetch_add(get(from.bytes_unmapped));
  into.num_unmap_ops.fetch_add(get(from.num_unmap_ops));
  into.num_write_zeroes_ops.fetch_add(get(from.num_write_zeroes_ops));
  into.num_flush_ops.fetch_add(get(from.num_flush_ops));
  into.read_latency_us.fetch_add(get(from.read_latency_us));
  into.write_latency_us.fetch_add(get(from.write_latency_us));
  into.unmap_latency_us.fetch_add(get(from.unmap_latency_us));
  into.num_errors.fetch_add(get(from.num_errors));
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    into.read_hist[i].fetch_add(get(from.read_hist[i]));
    into.write_hist[i].fetch_add(get(from.write_hist[i]));
  }
}

}  // namespace

size_t latency_bucket(uint64_t us) {
  if (us <= 1) return 0;
  size_t i = static_cast<size_t>(64 - __builtin_clzll(us - 1));  // ceil(log2(us))
  return i < kLatencyBuckets - 1 ? i : kLatencyBuckets - 1;
}

void IoStats::add_to(nlohmann::json& out) const {
  auto bump = [&](const char* key, uint64_t v) {
    out[key] = (out.contains(key) ? out[key].get<uint64_t>() : 0) + v;
  };
  bump("bytes_read", get(bytes_read));
  bump("num_read_ops", get(num_read_ops));
  bump("bytes_written", get(bytes_written));
  bump("num_write_ops", get(num_write_ops));
  bump("bytes_unmapped", get(bytes_unmapped));
  bump("num_unmap_ops", get(num_unmap_ops));
  bump("num_write_zeroes_ops", get(num_write_zeroes_ops));
  bump("num_flush_ops", get(num_flush_ops));
  // SPDK reports latency in ticks; nvemu's tick is one microsecond.
  bump("read_latency_ticks", get(read_latency_us));
  bump("write_latency_ticks", get(write_latency_us));
  bump("unmap_latency_ticks", get(unmap_latency_us));
  bump("io_error", get(num_errors));
}

Channel::Channel(Bdev& bdev) : bdev_(bdev) {
  bdev_.attach_channel(this);
}
Channel::~Channel() {
  bdev_.detach_channel(this);
}

void Channel::submit(BdevIo* io) {
  io->submit_us = Reactor::loop_us();
  if (io->num_blocks > bdev_.num_blocks() ||
      io->offset_blocks > bdev_.num_blocks() - io->num_blocks) {
    complete(io, IoStatus::kOutOfRange);
    return;
  }
  if (!bdev_.supports(io->type)) {
    complete(io, IoStatus::kError);
    return;
  }
  do_submit(io);
}

void Channel::complete(BdevIo* io, IoStatus status) {
  uint64_t lat = Reactor::loop_us() - io->submit_us;
  uint64_t bytes = io->num_blocks * bdev_.block_size();
  if (status == IoStatus::kSuccess) {
    switch (io->type) {
      case IoType::kRead:
        add(stats_.bytes_read, bytes);
        add(stats_.num_read_ops, 1);
        add(stats_.read_latency_us, lat);
        add(stats_.read_hist[latency_bucket(lat)], 1);
        break;
      case IoType::kWrite:
        add(stats_.bytes_written, bytes);
        add(stats_.num_write_ops, 1);
        add(stats_.write_latency_us, lat);
        add(stats_.write_hist[latency_bucket(lat)], 1);
        break;
      case IoType::kUnmap:
        add(stats_.bytes_unmapped, bytes);
        add(stats_.num_unmap_ops, 1);
        add(stats_.unmap_latency_us, lat);
        break;
      case IoType::kWriteZeroes:
        add(stats_.num_write_zeroes_ops, 1);
        break;
      case IoType::kFlush:
        add(stats_.num_flush_ops, 1);
        break;
    }
  } else if (status != IoStatus::kNoMem) {
    add(stats_.num_errors, 1);
  }
  io->cb(io, status);
}

Bdev::Bdev(std::string name, std::string product_name, uint32_t block_size, uint64_t num_blocks)
    : name_(std::move(name)),
      product_name_(std::move(product_name)),
      uuid_(generate_uuid()),
      block_size_(block_size),
      num_blocks_(num_blocks) {}

Bdev::~Bdev() = default;

bool Bdev::claim(const std::string& owner) {
  if (!claimed_by_.empty()) return false;
  claimed_by_ = owner;
  return true;
}

void Bdev::release_claim() {
  claimed_by_.clear();
}

uint64_t Bdev::add_remove_hook(RemoveHook hook) {
  remove_hooks_.emplace_back(next_hook_, std::move(hook));
  return next_hook_++;
}

void Bdev::remove_remove_hook(uint64_t id) {
  std::erase_if(remove_hooks_, [id](const auto& h) { return h.first == id; });
}

void Bdev::notify_removal() {
  auto hooks = std::move(remove_hooks_);
  remove_hooks_.clear();
  for (auto& [id, hook] : hooks) hook(*this);
}

uint64_t Bdev::add_resize_hook(ResizeHook hook) {
  resize_hooks_.emplace_back(next_hook_, std::move(hook));
  return next_hook_++;
}

void Bdev::remove_resize_hook(uint64_t id) {
  std::erase_if(resize_hooks_, [id](const auto& h) { return h.first == id; });
}

bool Bdev::grow(uint64_t new_num_blocks) {
  if (new_num_blocks < num_blocks()) return false;
  if (new_num_blocks == num_blocks()) return true;
  num_blocks_.store(new_num_blocks, std::memory_order_relaxed);
  auto hooks = resize_hooks_;  // a hook may remove itself
  for (auto& [id, hook] : hooks) hook(*this);
  return true;
}

void Bdev::attach_channel(Channel* ch) {
  std::lock_guard lock(channels_mu_);
  channels_.push_back(ch);
}

void Bdev::detach_channel(Channel* ch) {
  std::lock_guard lock(channels_mu_);
  accumulate(retired_, ch->stats());
  std::erase(channels_, ch);
}

nlohmann::json Bdev::info_json() const {
  nlohmann::json j = {
      {"name", name_},
      {"aliases", nlohmann::json::array()},
      {"product_name", product_name_},
      {"block_size", block_size_},
      {"num_blocks", num_blocks()},
      {"uuid", uuid_},
      {"assigned_rate_limits",
       {{"rw_ios_per_sec", 0},
        {"rw_mbytes_per_sec", 0},
        {"r_mbytes_per_sec", 0},
        {"w_mbytes_per_sec", 0}}},
      {"claimed", !claimed_by_.empty()},
      {"zoned", false},
      {"supported_io_types",
       {{"read", supports(IoType::kRead)},
        {"write", supports(IoType::kWrite)},
        {"unmap", supports(IoType::kUnmap)},
        {"write_zeroes", supports(IoType::kWriteZeroes)},
        {"flush", supports(IoType::kFlush)},
        {"reset", true},
        {"compare", false},
        {"compare_and_write", false},
        {"abort", false},
        {"nvme_admin", false},
        {"nvme_io", false}}},
      {"driver_specific", driver_specific()},
  };
  if (!claimed_by_.empty()) j["claim_type"] = "exclusive_write";
  return j;
}

nlohmann::json Bdev::iostat_json() const {
  nlohmann::json j = {{"name", name_}};
  std::lock_guard lock(channels_mu_);
  retired_.add_to(j);
  for (const Channel* ch : channels_) ch->stats().add_to(j);
  return j;
}

void Bdev::latency_histograms(uint64_t (&read)[kLatencyBuckets],
                              uint64_t (&write)[kLatencyBuckets]) const {
  std::lock_guard lock(channels_mu_);
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    read[i] = get(retired_.read_hist[i]);
    write[i] = get(retired_.write_hist[i]);
    for (const Channel* ch : channels_) {
      read[i] += get(ch->stats().read_hist[i]);
      write[i] += get(ch->stats().write_hist[i]);
    }
  }
}

Registry& Registry::instance() {
  static Registry r;
  return r;
}

bool Registry::add(std::shared_ptr<Bdev> bdev) {
  if (find(bdev->name())) return false;
  bdevs_.push_back(std::move(bdev));
  return true;
}

std::shared_ptr<Bdev> Registry::find(const std::string& name) const {
  for (const auto& b : bdevs_)
    if (b->name() == name || b->uuid() == name) return b;
  return nullptr;
}

bool Registry::remove(const std::string& name) {
  auto it =
      std::find_if(bdevs_.begin(), bdevs_.end(), [&](const auto& b) { return b->name() == name; });
  if (it == bdevs_.end()) return false;
  std::shared_ptr<Bdev> b = *it;
  bdevs_.erase(it);
  b->notify_removal();
  return true;
}

std::vector<std::shared_ptr<Bdev>> Registry::list() const {
  return bdevs_;
}

void Registry::clear() {
  while (!bdevs_.empty()) remove(bdevs_.front()->name());
}

std::string generate_uuid() {
  uint8_t b[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && read(fd, b, sizeof b) == static_cast<ssize_t>(sizeof b);
  if (fd >= 0) close(fd);
  if (!ok) {
    std::random_device rd;
    for (auto& x : b) x = static_cast<uint8_t>(rd());
  }
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

bool is_valid_uuid(const std::string& t) {
  if (t.size() != 36) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? t[i] != '-' : !std::isxdigit(static_cast<unsigned char>(t[i]))) return false;
  }
  return true;
}

}  // namespace nvemu::bdev
