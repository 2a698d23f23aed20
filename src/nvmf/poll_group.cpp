#include "nvmf/poll_group.h"

#include <algorithm>

namespace nvemu::nvmf {

PollGroup& PollGroup::current() {
  thread_local PollGroup group;
  return group;
}

NsChannel* PollGroup::get(const std::shared_ptr<const Namespace>& ns) {
  auto it = by_ns_.find(ns.get());
  if (it != by_ns_.end()) return it->second.get();
  prune();  // a new namespace: a good moment to let go of dead ones
  auto c = std::make_unique<NsChannel>();
  c->ns = ns;
  c->bdev = ns->bdev;
  c->channel = ns->bdev->open_channel();
  NsChannel* raw = c.get();
  by_ns_.emplace(ns.get(), std::move(c));
  return raw;
}

void PollGroup::end_io(NsChannel* c) {
  --c->inflight;
  if (c->removed && c->inflight == 0)
    std::erase_if(dying_, [c](const std::unique_ptr<NsChannel>& d) { return d.get() == c; });
}

void PollGroup::prune() {
  std::erase_if(by_ns_, [](const auto& e) {
    return e.second->inflight == 0 && e.second->ns.use_count() == 1;
  });
}

void PollGroup::drop(const Namespace* ns) {
  auto it = by_ns_.find(ns);
  if (it == by_ns_.end()) return;
  std::unique_ptr<NsChannel> c = std::move(it->second);
  by_ns_.erase(it);
  if (c->inflight == 0) return;  // closes the channel now
  c->removed = true;
  dying_.push_back(std::move(c));
}

}  // namespace nvemu::nvmf
