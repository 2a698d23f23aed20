// nvemu's NVMe/TCP initiator: one Queue is one TCP connection carrying one
// NVMe-oF queue pair (admin or I/O). It is a plain non-blocking state
// machine: submit() queues a command, poll() sends what is pending, receives
// whatever arrived and runs completion callbacks. Nothing on that path
// allocates: command slots, PDU headers and the receive staging buffer are
// set up by connect(), and data moves straight between the socket and the
// caller's buffers. Drive it from a test loop (wait()/exec()) or from a
// reactor (add_fd(fd(), ...) -> poll()).
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nvme/sqe.h"
#include "wire/tcp/pdu_codec.h"
#include "wire/tcp/pdu_reader.h"
#include "wire/tcp/send_queue.h"

namespace nvemu::host::tcp {

struct QueueOptions {
  bool hdgst = false;   // ask for header digests in ICReq
  bool ddgst = false;   // ask for data digests
  uint16_t depth = 32;  // commands in flight (command slots)
  uint8_t hpda = 0;     // our PDU data alignment (0's based dwords)
  // Writes up to this many bytes travel in the command capsule; larger ones
  // wait for R2T. Admin queues may use 8 KiB; for I/O queues use
  // IOCCSZ * 16 - 64 from Identify Controller.
  uint32_t max_icd = 8192;
  int connect_timeout_ms = 5000;
  // The local end (SPDK's hostaddr/hostsvcid): bound before connecting
  // when set; port 0 lets the kernel choose.
  std::string src_addr;
  uint16_t src_port = 0;
};

enum class Dir : uint8_t { kNone, kToController, kFromController };

// Completion: the CQE as the controller sent it, or synthesized from a
// C2HData SUCCESS flag. A transport failure completes outstanding commands
// with Transient Transport Error (or Aborted SQ Deletion when closed).
using CompletionFn = void (*)(void* ctx, const nvme::Cqe& cqe);

class Queue final : private wire::tcp::PduReader::Owner {
 public:
  Queue();
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Blocking: TCP connect, then ICReq/ICResp. Returns "" or what failed.
  std::string connect(const std::string& traddr, uint16_t port, const QueueOptions& opts);
  // Completes every outstanding command with Aborted - SQ Deletion.
  void close();

  // Queues one command. The CID is assigned here (sqe.cid is ignored). `buf`
  // stays valid until the callback. False when no slot is free or the queue
  // is down.
  bool submit(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir, CompletionFn fn, void* ctx);
  // Most pieces a write's data may come in (submit_iov).
  static constexpr int kMaxIov = 16;
  // A write (opcode with data to the controller) whose data lies in `iov`
  // (total `len` bytes): it goes to the socket from there, no copy. `iov`
  // and the data stay valid until the callback. False as submit(), or when
  // iovcnt is not 1..kMaxIov or the iovecs hold less than len.
  bool submit_iov(const nvme::Sqe& sqe, const struct iovec* iov, int iovcnt, uint32_t len,
                  CompletionFn fn, void* ctx);
  // Never blocks. Returns completions delivered, or -1 once the connection
  // failed (error() says why).
  int poll();
  // Blocks in poll(2) until `done` returns true, the queue fails or the
  // timeout passes; returns whether done() became true.
  template <typename Pred>
  bool wait(Pred done, int timeout_ms);
  // Synchronous command (tests, control path). Returns "" or what failed;
  // *cqe gets the completion.
  std::string exec(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir, nvme::Cqe* cqe,
                   int timeout_ms = 10000);

  int fd() const { return fd_; }
  bool ok() const { return fd_ >= 0 && failed_.empty(); }
  const std::string& error() const { return failed_; }
  uint32_t outstanding() const { return outstanding_; }
  uint32_t maxh2cdata() const { return maxh2cdata_; }
  bool hdgst() const { return link_.hdgst; }
  bool ddgst() const { return link_.ddgst; }
  // The controller's C2HTermReq, if it sent one.
  wire::tcp::Fes term_fes() const { return term_fes_; }
  uint32_t term_fei() const { return term_fei_; }
  void set_max_icd(uint32_t n) { opts_.max_icd = n; }
  // Raw bytes straight onto the socket, for protocol tests that forge PDUs.
  bool send_raw(const void* data, size_t len);

 private:
  struct Item;
  struct Slot;

  bool block_once(int timeout_ms);
  void fail(const std::string& why, uint8_t sc = nvme::sc::kTransientTransportError);
  void finish(Slot& s, const nvme::Cqe& cqe);
  void enqueue(Item* it);
  bool flush();
  void on_sent(Item* it);
  void queue_h2c(Slot& s);
  bool submit_common(const nvme::Sqe& sqe, void* buf, const struct iovec* iov, int iovcnt,
                     uint32_t len, Dir dir, CompletionFn fn, void* ctx);
  bool receive();
  // PduReader::Owner: one call per received PDU.
  void header_done() override;
  void payload_done() override;
  void protocol_error(const wire::tcp::PduError& e) override;

  int fd_ = -1;
  QueueOptions opts_;
  std::string failed_;
  wire::tcp::LinkParams link_;
  uint32_t maxh2cdata_ = 0;
  uint8_t cpda_ = 0;
  wire::tcp::Fes term_fes_ = wire::tcp::Fes::kNone;
  uint32_t term_fei_ = 0;

  std::unique_ptr<Slot[]> slots_;
  std::vector<uint16_t> free_;
  uint16_t depth_ = 0;
  std::unique_ptr<Item> term_item_;
  alignas(8) uint8_t term_buf_[wire::tcp::kMaxTermReqPlen];
  uint16_t next_slot_ = 0;
  uint32_t outstanding_ = 0;
  int delivered_ = 0;

  wire::tcp::SendQueue<Item> send_q_;
  std::unique_ptr<Item> icreq_item_;
  alignas(8) uint8_t icreq_buf_[sizeof(wire::tcp::ICReq)];

  wire::tcp::PduReader rx_{*this, link_};
  uint8_t term_data_[wire::tcp::kMaxTermReqData];
  Slot* rx_slot_ = nullptr;
};

template <typename Pred>
bool Queue::wait(Pred done, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (poll() < 0) return done();
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!block_once(10)) return done();
  }
  return true;
}

}  // namespace nvemu::host::tcp
