// A virtual bdev stacked on a base bdev (SPDK's vbdev_error, vbdev_delay):
// it claims the base (so the base is neither exported as a namespace nor
// deleted under it), forwards every I/O to a base channel of the same
// reactor and sees each base completion before its caller does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"

namespace nvemu::bdev {

class Vbdev : public Bdev {
 public:
  // Claims `base` for `name`; when the base goes away (e.g. its remote
  // controller detached), the vbdev is removed from the registry too.
  Vbdev(std::string name, std::string product_name, std::shared_ptr<Bdev> base);
  ~Vbdev() override;

  Bdev& base() const { return *base_; }
  bool has_write_cache() const override { return base_->has_write_cache(); }
  bool supports(IoType t) const override { return base_->supports(t); }

  // Main thread, before the registry drops the vbdev: gives the base back.
  void release_base();

 private:
  std::shared_ptr<Bdev> base_;
  uint64_t remove_hook_ = 0;
  bool released_ = false;
};

// Claims `base` for a vbdev named `name`, or returns false with *error
// saying who holds it.
bool claim_base(Bdev& base, const std::string& name, std::string* error);

class VbdevChannel : public Channel {
 public:
  // `base_ch` must be a channel of the vbdev's base on this reactor.
  VbdevChannel(Vbdev& vbdev, std::unique_ptr<Channel> base_ch);
  ~VbdevChannel() override;

 protected:
  // Sends `io` to the base; on_base_done() sees the outcome.
  void forward(BdevIo* io);
  // The base finished `io` (the vbdev's own I/O, its data in place).
  // The default completes it at once.
  virtual void on_base_done(BdevIo* io, IoStatus status) { complete(io, status); }
  // I/Os forwarded and not yet back from the base.
  uint64_t in_base() const { return in_base_; }

 private:
  // One base I/O per vbdev I/O in flight, from a per-channel pool that
  // grows to the channel's peak queue depth and is then reused.
  struct Child {
    BdevIo io;
    BdevIo* parent = nullptr;
    VbdevChannel* ch = nullptr;
    Child* next_free = nullptr;
  };
  static void child_done(BdevIo* io, IoStatus status);

  std::unique_ptr<Channel> base_ch_;
  std::vector<std::unique_ptr<Child>> children_;
  Child* free_ = nullptr;
  uint64_t in_base_ = 0;
};

}  // namespace nvemu::bdev
