#include "bdev/vbdev.h"

#include <fmt/format.h>

namespace nvemu::bdev {

bool claim_base(Bdev& base, const std::string& name, std::string* error) {
  if (base.claim(name)) return true;
  *error = fmt::format(
      "bdev {} is already claimed by {}; a bdev can back one user at a time (remove that user "
      "first)",
      base.name(), base.claimed_by());
  return false;
}

Vbdev::Vbdev(std::string name, std::string product_name, std::shared_ptr<Bdev> base)
    : Bdev(std::move(name), std::move(product_name), base->block_size(), base->num_blocks()),
      base_(std::move(base)) {
  std::string vname = this->name();
  remove_hook_ = base_->add_remove_hook([vname](Bdev&) { Registry::instance().remove(vname); });
}

Vbdev::~Vbdev() {
  release_base();
}

void Vbdev::release_base() {
  if (released_) return;
  released_ = true;
  base_->remove_remove_hook(remove_hook_);
  if (base_->claimed_by() == name()) base_->release_claim();
}

VbdevChannel::VbdevChannel(Vbdev& vbdev, std::unique_ptr<Channel> base_ch)
    : Channel(vbdev), base_ch_(std::move(base_ch)) {}

VbdevChannel::~VbdevChannel() {
  // The base channel's destructor finishes (or aborts) what it still holds,
  // and those completions come back through child_done while this object
  // is still whole; so close it first, explicitly.
  base_ch_.reset();
}

void VbdevChannel::forward(BdevIo* io) {
  Child* c = free_;
  if (c) {
    free_ = c->next_free;
  } else {
    children_.push_back(std::make_unique<Child>());
    c = children_.back().get();
    c->ch = this;
  }
  c->parent = io;
  c->io = BdevIo{};
  c->io.type = io->type;
  c->io.offset_blocks = io->offset_blocks;
  c->io.num_blocks = io->num_blocks;
  c->io.iovs = io->iovs;
  c->io.iovcnt = io->iovcnt;
  c->io.fua = io->fua;
  c->io.cb = child_done;
  c->io.ctx = c;
  ++in_base_;
  base_ch_->submit(&c->io);
}

void VbdevChannel::child_done(BdevIo* io, IoStatus status) {
  auto* c = static_cast<Child*>(io->ctx);
  VbdevChannel* ch = c->ch;
  BdevIo* parent = c->parent;
  c->parent = nullptr;
  c->next_free = ch->free_;
  ch->free_ = c;
  --ch->in_base_;
  ch->on_base_done(parent, status);
}

}  // namespace nvemu::bdev
