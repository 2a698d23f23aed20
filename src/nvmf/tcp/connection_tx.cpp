// Target send path (R2T, C2HData, CapsuleResp, ICResp, C2HTermReq), the
// controller's completion entry and the connection's teardown.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "nvmf/fabrics.h"
#include "nvmf/fault.h"
#include "nvmf/tcp/connection.h"

namespace nvemu::nvmf::tcp {

TcpConnection::TcpConnection(std::shared_ptr<TcpShared> shared, Reactor& reactor, int fd,
                             ListenAddress listen, ListenAddress peer)
    : Qpair(reactor, 0, 0),
      shared_(std::move(shared)),
      opts_(shared_->opts),
      fd_(fd),
      listen_(std::move(listen)),
      peer_(std::move(peer)) {
  link_.receiver = Receiver::kController;
  link_.max_icd = std::max(opts_.base.in_capsule_data_size, kAdminInCapsuleSize);
  link_.max_h2c_data = opts_.max_h2c_data;
}

TcpConnection::~TcpConnection() {
  if (fd_ >= 0) ::close(fd_);
  std::free(small_mem_);
  std::free(big_mem_);
}

void TcpConnection::start() {
  if (state_ == ConnState::kClosed) return;  // closed before it got here
  ring_ = SocketRing::of(reactor());
  if (ring_) {
    ring_iov_ = std::make_unique<struct iovec[]>(kMaxSendIov);
    arm_recv();
    LOG_INFO("tcp", "new connection from {}:{} on {}:{} (io_uring)", peer_.traddr, peer_.trsvcid,
             listen_.traddr, listen_.trsvcid);
    return;
  }
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  // The handler holds a weak reference: the reactor's fd table must not keep
  // a closed connection alive, and remove_fd() drops it at close.
  reactor().add_fd(fd_, EPOLLIN | EPOLLRDHUP, [weak](uint32_t ev) {
    if (auto self = weak.lock()) self->on_events(ev);
  });
  LOG_INFO("tcp", "new connection from {}:{} on {}:{}", peer_.traddr, peer_.trsvcid, listen_.traddr,
           listen_.trsvcid);
}

nlohmann::json TcpConnection::peer_json() const {
  return {{"trtype", "TCP"},
          {"adrfam", peer_.adrfam},
          {"traddr", peer_.traddr},
          {"trsvcid", peer_.trsvcid}};
}

void TcpConnection::request_close() {
  std::shared_ptr<TcpConnection> self = shared_from_this();
  reactor().send([self] { self->close_connection("closed by the target"); });
}

void TcpConnection::disconnect() {
  if (reactor().on_thread())
    close_connection("controller dropped the queue");
  else
    request_close();
}

void TcpConnection::deliver(Request* req) {
  TcpRequest* tr = TcpRequest::of(req);
  --outstanding_;
  if (qid() == 0 && is_aer(*req)) --parked_;
  if (req->cmd.opc == 0x7f && (req->cmd.nsid & 0xff) == 0x01 && req->status.ok())
    subnqn_ = pending_subnqn_;
  if (state_ != ConnState::kActive) {
    release(tr);
    maybe_destroy();
    return;
  }
  queue_response(tr);
  request_flush();
}

void TcpConnection::complete_locally(TcpRequest* tr, nvme::Status st) {
  tr->req.status = st;
  tr->local_status = true;
  queue_response(tr);
  request_flush();
}

void TcpConnection::request_flush() {
  // In a receive batch on_readable() flushes at its end; otherwise the
  // PDUs of one reactor pass (a bdev completes a batch at once) go out in
  // one sendmsg at the end of the pass.
  if (!in_rx_) flush_task_.schedule();
}

void TcpConnection::queue_r2t(TcpRequest* tr) {
  tr->state = ReqState::kRecvH2C;
  tr->h2c_next = 0;
  size_t n = build_r2t(tr->hdr, tr->req.cmd.cid, tr->ttag, 0, tr->req.length, link_.hdgst);
  tr->send.iovcnt = 0;
  tr->send.kind = SendItem::Kind::kR2T;
  tr->send.add(tr->hdr, n);
  enqueue(&tr->send);
  request_flush();
}

void TcpConnection::queue_response(TcpRequest* tr) {
  Request& r = tr->req;
  r.rsp.cid = r.cmd.cid;
  r.rsp.sqid = qid();
  // 0xFFFF tells a host that asked for it that SQ flow control is off
  // (NVMe-oF 1.1, Connect CATTR bit 2).
  r.rsp.sqhd = sq_flow_disabled_ ? 0xffff : static_cast<uint16_t>(sqhd_);
  r.rsp.status = r.status.field();  // phase bit is 0 on fabrics
  SendItem& s = tr->send;
  s.iovcnt = 0;
  s.kind = SendItem::Kind::kResponse;
  bool c2h =
      r.xfer == XferDir::kControllerToHost && r.length > 0 && r.status.ok() && !tr->local_status;
  bool need_resp = true;
  if (c2h) {
    // SPDK's rule for c2h_success: skip the CapsuleResp only when it would
    // carry nothing but success (CDW0/CDW1 zero).
    bool success = opts_.c2h_success && r.rsp.cdw0 == 0 && r.rsp.cdw1 == 0;
    uint8_t fl = pdu_flags::kLastPdu | (success ? pdu_flags::kSuccess : 0);
    size_t n = build_data(tr->hdr, PduType::kC2HData, r.cmd.cid, 0, 0, r.length, fl, link_.hdgst,
                          link_.ddgst, hpda_);
    s.add(tr->hdr, n);
    s.add(r.iov[0].iov_base, r.length);
    if (link_.ddgst) {
      tr->ddgst = digest(r.iov[0].iov_base, r.length);
      s.add(&tr->ddgst, kDigestLen);
    }
    need_resp = !success;
  }
  if (need_resp) s.add(tr->resp, build_capsule_resp(tr->resp, r.rsp, link_.hdgst));
  tr->state = ReqState::kResponding;
  enqueue(&s);
}

void TcpConnection::enqueue(SendItem* item) {
  if (item->queued) {
    LOG_ERROR("tcp", "{}:{}: PDU queued twice; dropping the duplicate", peer_.traddr,
              peer_.trsvcid);
    return;
  }
  send_q_.push(item);
}

void TcpConnection::flush() {
  // on_sent() frees requests, which can start waiters and complete commands
  // inline; their PDUs join the queue and this loop sends them. A nested
  // flush would corrupt the bookkeeping of the sendmsg() in progress.
  if (flushing_) return;
  flushing_ = true;
  flush_locked();
  flushing_ = false;
}

void TcpConnection::flush_locked() {
  if (ring_) return send_on_ring();
  while (!send_q_.empty() && state_ != ConnState::kClosed) {
    struct iovec iov[kMaxSendIov];
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(send_q_.gather(iov, kMaxSendIov));
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return want_write(true);
      return close_connection(errno == EPIPE || errno == ECONNRESET ? "connection reset by host"
                                                                    : "send failed");
    }
    advance_sent(static_cast<size_t>(n));
  }
  if (state_ != ConnState::kClosed) want_write(false);
}

void TcpConnection::advance_sent(size_t n) {
  send_q_.advance(n, [this](SendItem* done) {
    on_sent(done);
    return state_ != ConnState::kClosed;
  });
}

void TcpConnection::on_sent(SendItem* item) {
  switch (item->kind) {
    case SendItem::Kind::kResponse:
      release(static_cast<TcpRequest*>(item->owner));
      break;
    case SendItem::Kind::kTermReq:
      close_connection("C2HTermReq sent");
      break;
    case SendItem::Kind::kR2T:
    case SendItem::Kind::kControl:
      break;
  }
}

void TcpConnection::want_write(bool on) {
  if (on == want_write_) return;
  want_write_ = on;
  update_events();
}

void TcpConnection::update_events() {
  if (ring_ || fd_ < 0 || state_ == ConnState::kClosed) return;
  uint32_t ev = !rx_.stopped() ? (EPOLLIN | EPOLLRDHUP) : 0;
  if (want_write_) ev |= EPOLLOUT;
  reactor().modify_fd(fd_, ev);
}

void TcpConnection::close_connection(const char* why) {
  if (state_ == ConnState::kClosed) return;
  LOG_INFO("tcp", "{}:{}: closing qid {} connection: {}", peer_.traddr, peer_.trsvcid, qid(), why);
  state_ = ConnState::kClosed;
  rx_.stop();
  if (term_timer_) {
    reactor().cancel_timer(term_timer_);
    term_timer_ = 0;
  }
  if (fd_ >= 0) {
    // shutdown() also completes the ring's operations on the socket.
    if (!ring_) reactor().remove_fd(fd_);
    ::shutdown(fd_, SHUT_RDWR);
    if (!ring_) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  // A sendmsg in flight may still read the queued PDUs' data (a memory
  // bdev's blocks): they go when it is back.
  if (!send_inflight_) drop_send_queue();
  // Requests the controller never saw are freed here; those a fault holds
  // (fault.h) come back now, the rest through complete().
  wait_head_ = wait_tail_ = nullptr;
  for (uint32_t i = 0; i < depth_; ++i) {
    ReqState s = reqs_[i].state;
    if (s == ReqState::kRecvCapsuleData || s == ReqState::kWaitBuffer || s == ReqState::kRecvH2C)
      release(&reqs_[i]);
  }
  nvmf::fault::qpair_closing(this);
  maybe_destroy();
}

void TcpConnection::drop_send_queue() {
  // Unsent PDUs go; their requests are done.
  send_q_.clear([this](SendItem* it) {
    if (it->kind == SendItem::Kind::kResponse) release(static_cast<TcpRequest*>(it->owner));
  });
}

void TcpConnection::maybe_destroy() {
  if (state_ != ConnState::kClosed) return;
  // Tell the controller once only parked commands (AERs, which it aborts
  // itself) are left, so no in-flight I/O completes into a forgotten qpair.
  if (!destroyed_notified_ && outstanding_ == parked_) {
    destroyed_notified_ = true;
    if (submitted_any_) qpair_destroyed(this);
  }
  if (outstanding_ == 0 && destroyed_notified_ && !destroy_posted_ && !recv_armed_ &&
      !send_inflight_) {
    destroy_posted_ = true;
    std::shared_ptr<TcpConnection> self = shared_from_this();
    // Deferred: we may be deep inside our own callbacks right now.
    reactor().send([self] { self->shared_->forget(self.get()); });
  }
}

// ---- TcpShared

void TcpShared::add(const std::shared_ptr<TcpConnection>& c) {
  std::lock_guard lock(mu_);
  conns_[c.get()] = c;
}

void TcpShared::forget(TcpConnection* c) {
  std::shared_ptr<TcpConnection> last;
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(c);
    if (it == conns_.end()) return;
    last = std::move(it->second);
    conns_.erase(it);
  }
  // `last` may be the final reference: destroyed here, outside the lock.
}

std::vector<std::shared_ptr<TcpConnection>> TcpShared::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<TcpConnection>> out;
  out.reserve(conns_.size());
  for (auto& [_, c] : conns_) out.push_back(c);
  return out;
}

size_t TcpShared::count() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

}  // namespace nvemu::nvmf::tcp
