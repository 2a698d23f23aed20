// A test-only RAM bdev: plain heap memory, synchronous completion, optional
// write cache and a switch to drop Write Zeroes support (so the emulation
// path runs). Independent of the malloc module's hugepage handling. With
// hold_reads/hold_writes set, I/O waits in `held` until release_held()
// runs it (call that on the I/O's reactor), so tests can keep I/O in flight.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "bdev/bdev.h"

namespace nvemu::nvmf::test {

class RamBdev final : public bdev::Bdev {
 public:
  RamBdev(std::string name, uint32_t bs, uint64_t blocks)
      : Bdev(std::move(name), "RAM test disk", bs, blocks), mem_(bs * blocks, 0xee) {}
  bool write_cache = false;
  bool write_zeroes = true;
  bool hold_reads = false, hold_writes = false;
  bool has_write_cache() const override { return write_cache; }
  bool supports(bdev::IoType t) const override {
    return t != bdev::IoType::kWriteZeroes || write_zeroes;
  }
  std::string module_name() const override { return "ram_test"; }
  nlohmann::json config_entry() const override { return nlohmann::json::object(); }
  std::unique_ptr<bdev::Channel> open_channel() override { return std::make_unique<Ch>(*this); }
  std::vector<uint8_t>& mem() { return mem_; }
  size_t held_count() const { return held_.size(); }
  // Runs the held I/Os in arrival order; returns how many.
  size_t release_held() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& [ch, io] : held) ch->exec(io);
    return held.size();
  }

 private:
  class Ch final : public bdev::Channel {
   public:
    explicit Ch(RamBdev& b) : Channel(b), b_(b) {}

    void exec(bdev::BdevIo* io) {
      uint64_t bs = b_.block_size();
      uint8_t* p = b_.mem_.data() + io->offset_blocks * bs;
      uint64_t len = io->num_blocks * bs;
      switch (io->type) {
        case bdev::IoType::kRead:
        case bdev::IoType::kWrite: {
          uint64_t done = 0;
          for (int i = 0; i < io->iovcnt && done < len; ++i) {
            size_t n = std::min<uint64_t>(io->iovs[i].iov_len, len - done);
            if (io->type == bdev::IoType::kRead)
              std::memcpy(io->iovs[i].iov_base, p + done, n);
            else
              std::memcpy(p + done, io->iovs[i].iov_base, n);
            done += n;
          }
          complete(io, done == len ? bdev::IoStatus::kSuccess : bdev::IoStatus::kError);
          return;
        }
        case bdev::IoType::kUnmap:
        case bdev::IoType::kWriteZeroes:
          std::memset(p, 0, len);
          break;
        case bdev::IoType::kFlush:
          break;
      }
      complete(io, bdev::IoStatus::kSuccess);
    }

   protected:
    void do_submit(bdev::BdevIo* io) override {
      bool read = io->type == bdev::IoType::kRead;
      bool modify = !read && io->type != bdev::IoType::kFlush;
      if ((read && b_.hold_reads) || (modify && b_.hold_writes)) {
        b_.held_.push_back({this, io});
        return;
      }
      exec(io);
    }

   private:
    RamBdev& b_;
  };
  std::vector<uint8_t> mem_;
  std::vector<std::pair<Ch*, bdev::BdevIo*>> held_;
};

}  // namespace nvemu::nvmf::test
