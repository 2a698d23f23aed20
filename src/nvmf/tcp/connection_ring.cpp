// The connection's socket on the reactor's SocketRing: one receive in flight
// (into the PduReader's staging buffer, or straight into a request's buffer
// for large data) and one sendmsg of the queued PDUs. Completions arrive in a
// later pass; until both operations are back, the connection stays alive.
#include <cerrno>

#include "nvmf/tcp/connection.h"

namespace nvemu::nvmf::tcp {

void TcpConnection::arm_recv() {
  if (recv_armed_ || state_ == ConnState::kClosed || rx_.stopped()) return;
  PduReader::RecvSpan span = rx_.next_recv();
  recv_armed_ = true;
  ring_->recv(fd_, span.buf, span.len, &recv_op_);
}

void TcpConnection::on_recv_done(int res) {
  recv_armed_ = false;
  if (state_ == ConnState::kClosed) return maybe_destroy();
  if (res == -EINTR || res == -EAGAIN) return arm_recv();
  if (res == 0) return close_connection("host closed the connection");
  if (res < 0)
    return close_connection(res == -ECONNRESET ? "connection reset by host" : "receive failed");
  in_rx_ = true;
  rx_.received(static_cast<size_t>(res));
  in_rx_ = false;
  flush();
  arm_recv();
}

void TcpConnection::send_on_ring() {
  if (send_inflight_ || send_q_.empty() || state_ == ConnState::kClosed) return;
  ring_msg_ = {};
  ring_msg_.msg_iov = ring_iov_.get();
  ring_msg_.msg_iovlen = static_cast<size_t>(send_q_.gather(ring_iov_.get(), kMaxSendIov));
  send_inflight_ = true;
  ring_->sendmsg(fd_, &ring_msg_, MSG_NOSIGNAL, &send_op_);
}

void TcpConnection::on_send_done(int res) {
  send_inflight_ = false;
  if (state_ == ConnState::kClosed) {
    drop_send_queue();
    return maybe_destroy();
  }
  if (res < 0 && res != -EINTR && res != -EAGAIN)
    return close_connection(res == -EPIPE || res == -ECONNRESET ? "connection reset by host"
                                                                : "send failed");
  // on_sent() may queue more PDUs and ask for a flush: the one below.
  flushing_ = true;
  if (res > 0) advance_sent(static_cast<size_t>(res));
  flushing_ = false;
  flush();
}

}  // namespace nvemu::nvmf::tcp
