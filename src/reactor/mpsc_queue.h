// A lock-free multi-producer single-consumer queue (Vyukov's intrusive
// design): producers on any thread push with one atomic exchange, the owning
// reactor pops without atomics beyond loads. It carries cross-reactor
// messages, so no reactor ever takes a lock to talk to another.
#pragma once

#include <atomic>
#include <utility>

namespace nvemu {

template <typename T>
class MpscQueue {
 public:
  MpscQueue() : head_(&stub_), tail_(&stub_) {}
  ~MpscQueue() {
    T item;
    while (pop(&item)) {
    }
  }
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Any thread.
  void push(T value) {
    Node* n = new Node{std::move(value)};
    Node* prev = head_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }

  // Consumer thread only. False when empty (or a push is half done; the
  // item shows up on a later call).
  bool pop(T* out) {
    Node* tail = tail_;
    Node* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (!next) return false;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next) {
      tail_ = next;
      *out = std::move(tail->value);
      delete tail;
      return true;
    }
    if (tail != head_.load(std::memory_order_acquire)) return false;
    stub_.next.store(nullptr, std::memory_order_relaxed);
    Node* prev = head_.exchange(&stub_, std::memory_order_acq_rel);
    prev->next.store(&stub_, std::memory_order_release);
    next = tail->next.load(std::memory_order_acquire);
    if (!next) return false;
    tail_ = next;
    *out = std::move(tail->value);
    delete tail;
    return true;
  }

  bool empty() const {
    return tail_ == &stub_ ? stub_.next.load(std::memory_order_acquire) == nullptr : false;
  }

 private:
  struct Node {
    T value{};
    std::atomic<Node*> next{nullptr};
  };
  Node stub_;
  std::atomic<Node*> head_;
  Node* tail_;
};

}  // namespace nvemu
