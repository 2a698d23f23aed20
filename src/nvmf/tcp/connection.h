// One NVMe/TCP connection on the target = one NVMe-oF queue pair. It lives on
// one reactor for its whole life. Receive framing is the shared PduReader
// (common header -> rest of header -> pad -> data -> data digest), which
// hands each PDU to this connection; sending queues PDUs as SendItems and
// writes them in batches with sendmsg(). The socket's I/O goes through the
// reactor's SocketRing (io_uring: one receive and one sendmsg in flight at a
// time) or, without one, epoll with recv()/sendmsg(). Bad PDUs end in a
// C2HTermReq and the close of this connection only (NVMe/TCP 1.0, 3.6.2.4
// and 3.5).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "nvmf/tcp/tcp_request.h"
#include "nvmf/transport.h"
#include "reactor/reactor.h"
#include "reactor/socket_ring.h"
#include "wire/tcp/pdu_codec.h"
#include "wire/tcp/pdu_reader.h"
#include "wire/tcp/send_queue.h"

namespace nvemu::nvmf::tcp {

// The PDU codec, reader and send queue are the wire format both ends share.
using namespace nvemu::wire::tcp;

class TcpConnection;

// SPDK nvmf_tcp options beyond the common ones (TransportOpts::specific).
struct TcpOptions {
  TransportOpts base;
  bool c2h_success = true;
  int sock_priority = 0;
  uint32_t control_msg_num = 32;   // accepted for SPDK compatibility; unused
  uint32_t max_h2c_data = 131072;  // MAXH2CDATA announced in ICResp
};
// Validates and fills *out from opts. Returns "" or what is wrong.
std::string parse_tcp_options(const TransportOpts& opts, TcpOptions* out);

// State a transport shares with its connections, so a connection can outlive
// the Transport object (teardown order at shutdown is then irrelevant).
class TcpShared {
 public:
  explicit TcpShared(TcpOptions o) : opts(std::move(o)) {}
  const TcpOptions opts;

  void add(const std::shared_ptr<TcpConnection>& c);
  // Drops the registry's reference; the connection dies with the last one.
  void forget(TcpConnection* c);
  std::vector<std::shared_ptr<TcpConnection>> snapshot() const;
  size_t count() const;

 private:
  mutable std::mutex mu_;  // connect/disconnect only, never per I/O
  std::unordered_map<TcpConnection*, std::shared_ptr<TcpConnection>> conns_;
};

class TcpConnection final : public Qpair,
                            public std::enable_shared_from_this<TcpConnection>,
                            private PduReader::Owner {
 public:
  TcpConnection(std::shared_ptr<TcpShared> shared, Reactor& reactor, int fd, ListenAddress listen,
                ListenAddress peer);
  ~TcpConnection() override;

  // On the connection's reactor, once: start watching the socket.
  void start();

  // Qpair.
  void disconnect() override;
  std::string trtype() const override { return "TCP"; }
  nlohmann::json peer_json() const override;

  const ListenAddress& listen_address() const { return listen_; }
  // Subsystem NQN from a successful Connect; reactor thread only.
  const std::string& subnqn() const { return subnqn_; }
  // Any thread: close without a TermReq (stop_listen, subsystem removal).
  void request_close();

 private:
  enum class ConnState : uint8_t { kActive, kTerminating, kClosed };

  // Qpair: the controller's completion (Qpair::complete counted it).
  void deliver(Request* req) override;

  // --- receive (connection_rx.cpp)
  void on_events(uint32_t events);
  void on_readable();
  // PduReader::Owner: one call per received PDU.
  void header_done() override;
  void payload_done() override;
  void protocol_error(const PduError& e) override { fatal(e); }
  void handle_icreq();
  void handle_capsule_header();
  void handle_h2c_header();
  void handle_term_req();
  void fatal(const PduError& e);
  bool alloc_pool(const nvme::Sqe& connect);
  nvme::Status parse_data_pointer(TcpRequest* tr, uint32_t pdu_data_len);
  void dispatch(TcpRequest* tr);        // after the capsule (and its data) arrived
  void start_transfer(TcpRequest* tr);  // has its buffer: R2T or execute
  void execute(TcpRequest* tr);
  bool take_big_buffer(TcpRequest* tr);
  void release(TcpRequest* tr);

  // --- the socket on the reactor's io_uring (connection_ring.cpp)
  void arm_recv();
  void on_recv_done(int res);
  void send_on_ring();
  void on_send_done(int res);

  // --- send, completion and teardown (connection_tx.cpp)
  void queue_r2t(TcpRequest* tr);
  void queue_response(TcpRequest* tr);
  void complete_locally(TcpRequest* tr, nvme::Status st);
  void enqueue(SendItem* item);
  void flush();
  void flush_locked();
  // n more bytes of the queue went out: done items leave it.
  void advance_sent(size_t n);
  void request_flush();
  void on_sent(SendItem* item);
  void want_write(bool on);
  void update_events();
  void close_connection(const char* why);
  void drop_send_queue();
  void maybe_destroy();
  static bool is_aer(const Request& r);

  std::shared_ptr<TcpShared> shared_;
  const TcpOptions& opts_;
  int fd_;
  ListenAddress listen_, peer_;
  ConnState state_ = ConnState::kActive;

  // Negotiated link parameters (ICReq/ICResp) and limits for received PDUs.
  LinkParams link_;
  uint8_t hpda_ = 0;

  // Receive side.
  PduReader rx_{*this, link_};
  TcpRequest* rx_req_ = nullptr;  // request the current PDU feeds
  uint8_t term_data_[kMaxTermReqData];
  bool in_rx_ = false;  // defer flushes while a receive batch runs

  // Requests and buffers, allocated at the first CapsuleCmd (Connect).
  std::unique_ptr<TcpRequest[]> reqs_;
  uint32_t depth_ = 0;
  uint32_t small_cap_ = 0;
  uint8_t* small_mem_ = nullptr;
  uint8_t* big_mem_ = nullptr;
  std::vector<uint8_t*> big_free_;
  TcpRequest* wait_head_ = nullptr;
  TcpRequest* wait_tail_ = nullptr;
  std::vector<TcpRequest*> free_;
  uint32_t outstanding_ = 0;  // requests with the controller
  uint32_t parked_ = 0;       // of those, Asynchronous Event Requests
  bool destroyed_notified_ = false;
  uint32_t sqhd_ = 0;
  bool sq_flow_disabled_ = false;
  bool connect_seen_ = false;
  bool submitted_any_ = false;
  std::string subnqn_;
  std::string pending_subnqn_;

  // One sendmsg() covers about a hundred C2HData+response PDUs, what a deep
  // queue completes in one pass. At 64 a QD128 pass took four calls, and
  // each loopback send also runs the receiver's side: 4K randread QD128
  // +22 % at 256; 1024 gained nothing more.
  static constexpr int kMaxSendIov = 256;

  // io_uring path; nullptr: epoll. The fd stays open until destruction
  // while operations that name it may be queued or in flight.
  SocketRing* ring_ = nullptr;
  struct RingOp final : SocketRing::Op {
    RingOp(TcpConnection* c, void (TcpConnection::*f)(int)) : conn(c), done(f) {}
    void on_cqe(int res) override { (conn->*done)(res); }
    TcpConnection* conn;
    void (TcpConnection::*done)(int);
  };
  RingOp recv_op_{this, &TcpConnection::on_recv_done};
  RingOp send_op_{this, &TcpConnection::on_send_done};
  bool recv_armed_ = false;
  bool send_inflight_ = false;
  std::unique_ptr<struct iovec[]> ring_iov_;  // of the sendmsg in flight
  struct msghdr ring_msg_ {};

  SendQueue<SendItem> send_q_;
  bool want_write_ = false;
  bool flushing_ = false;
  // Sends this pass's PDUs in one sendmsg at its end. Unscheduled before the
  // last reference can go: forget() runs a pass after close.
  Reactor::PassTask flush_task_{reactor(), [this] { flush(); }};
  SendItem icresp_item_;
  alignas(8) uint8_t icresp_buf_[sizeof(ICResp)];
  SendItem term_item_;
  alignas(8) uint8_t term_buf_[kMaxTermReqPlen];
  Reactor::TimerId term_timer_ = 0;
  bool destroy_posted_ = false;
};

}  // namespace nvemu::nvmf::tcp
