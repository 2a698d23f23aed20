// The PDUs one NVMe/TCP socket still has to send, in order, shared by the
// target's connections and the host driver's queues. Intrusive: an Item
// carries its iovecs (iov[], iovcnt), the link (next) and a queued flag, so
// queueing allocates nothing. A send may end inside an item; the queue
// remembers how much of its first item went out.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace nvemu::wire::tcp {

template <typename Item>
class SendQueue {
 public:
  bool empty() const { return head_ == nullptr; }

  void push(Item* it) {
    it->queued = true;
    it->next = nullptr;
    if (tail_)
      tail_->next = it;
    else
      head_ = it;
    tail_ = it;
  }

  // Fills iov with the bytes not sent yet, at most max entries; returns how
  // many it filled.
  int gather(struct iovec* iov, int max) const {
    int cnt = 0;
    size_t skip = off_;
    for (const Item* it = head_; it && cnt < max; it = it->next) {
      for (int i = 0; i < it->iovcnt && cnt < max; ++i) {
        size_t len = it->iov[i].iov_len;
        if (skip >= len) {
          skip -= len;
          continue;
        }
        iov[cnt].iov_base = static_cast<uint8_t*>(it->iov[i].iov_base) + skip;
        iov[cnt].iov_len = len - skip;
        skip = 0;
        ++cnt;
      }
    }
    return cnt;
  }

  // n more bytes went out. Each item they complete leaves the queue, then
  // sent(item) runs; it may queue more, and returns false to stop (the
  // socket was closed under it).
  template <typename Sent>
  void advance(size_t n, Sent sent) {
    size_t left = n + off_;
    while (head_) {
      size_t total = bytes(head_);
      if (left < total) {
        off_ = left;
        return;
      }
      left -= total;
      Item* done = head_;
      head_ = done->next;
      if (!head_) tail_ = nullptr;
      off_ = 0;
      done->queued = false;
      if (!sent(done)) return;
    }
  }

  // Empties the queue without sending; dropped(item) runs for each.
  template <typename Dropped>
  void clear(Dropped dropped) {
    Item* it = head_;
    head_ = tail_ = nullptr;
    off_ = 0;
    while (it) {
      Item* next = it->next;
      it->queued = false;
      dropped(it);
      it = next;
    }
  }

 private:
  static size_t bytes(const Item* it) {
    size_t n = 0;
    for (int i = 0; i < it->iovcnt; ++i) n += it->iov[i].iov_len;
    return n;
  }

  Item* head_ = nullptr;
  Item* tail_ = nullptr;
  size_t off_ = 0;  // bytes of head_ already sent
};

}  // namespace nvemu::wire::tcp
