#include "host/tcp/queue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "host/tcp/queue_slot.h"

namespace nvemu::host::tcp {

using namespace wire::tcp;

Queue::Queue() {
  link_.receiver = Receiver::kHost;
}

Queue::~Queue() {
  close();
}

namespace {

std::string resolve(const std::string& addr, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string svc = std::to_string(port);
  int rc = getaddrinfo(addr.c_str(), svc.c_str(), &hints, &res);
  if (rc != 0 || !res) return "cannot resolve " + addr + ": " + gai_strerror(rc);
  std::memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return "";
}

}  // namespace

std::string Queue::connect(const std::string& traddr, uint16_t port, const QueueOptions& opts) {
  close();
  opts_ = opts;
  failed_.clear();
  term_fes_ = Fes::kNone;
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string err = resolve(traddr, port, &ss, &len);
  if (!err.empty()) return err;
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  if (!opts.src_addr.empty()) {
    sockaddr_storage src;
    socklen_t src_len = 0;
    err = resolve(opts.src_addr, opts.src_port, &src, &src_len);
    if (err.empty() && ::bind(fd, reinterpret_cast<sockaddr*>(&src), src_len) != 0)
      err =
          "bind to " + opts.src_addr + ":" + std::to_string(opts.src_port) + ": " + strerror(errno);
    if (!err.empty()) {
      ::close(fd);
      return err;
    }
  }
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, opts.connect_timeout_ms) == 1) {
      int e = 0;
      socklen_t el = sizeof e;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
      rc = e ? -1 : 0;
      errno = e ? e : ETIMEDOUT;
    } else {
      errno = ETIMEDOUT;
    }
  }
  if (rc != 0) {
    int e = errno;
    ::close(fd);
    return "connect to " + traddr + ":" + std::to_string(port) + ": " + strerror(e);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;

  uint16_t depth = opts.depth ? opts.depth : 1;
  depth_ = depth;
  slots_ = std::make_unique<Slot[]>(depth);
  free_.clear();
  free_.reserve(depth);
  for (uint16_t i = depth; i-- > 0;) {
    slots_[i].cid = i;
    slots_[i].cap.slot = slots_[i].h2c.slot = &slots_[i];
    slots_[i].cap.kind = Item::Kind::kCapsule;
    slots_[i].h2c.kind = Item::Kind::kH2C;
    free_.push_back(i);
  }
  link_ = {};
  link_.receiver = Receiver::kHost;
  link_.hdgst = opts.hdgst;  // what we ask for, until the ICResp says what we got
  link_.ddgst = opts.ddgst;
  rx_.reset();
  outstanding_ = 0;
  icreq_item_ = std::make_unique<Item>();
  term_item_ = std::make_unique<Item>();
  icreq_item_->add(icreq_buf_, build_icreq(icreq_buf_, opts.hpda, opts.hdgst, opts.ddgst, 0));
  enqueue(icreq_item_.get());
  if (!wait([this] { return link_.ic_done; }, opts.connect_timeout_ms)) {
    std::string why = failed_.empty() ? "no ICResp from the controller" : failed_;
    close();
    return why;
  }
  return "";
}

void Queue::close() {
  if (fd_ >= 0) fail("queue closed", nvme::sc::kAbortedSqDeletion);
}

void Queue::fail(const std::string& why, uint8_t sc) {
  if (failed_.empty()) failed_ = why;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  rx_.stop();
  send_q_.clear([](Item*) {});
  if (!slots_) return;
  for (uint16_t i = 0; i < depth_; ++i) {
    Slot& s = slots_[i];
    if (!s.busy) continue;
    nvme::Cqe cqe{};
    cqe.cid = s.cid;
    cqe.status = nvme::Status::generic(sc, false).field();
    s.zombie = false;
    finish(s, cqe);
  }
}

bool Queue::submit(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir, CompletionFn fn,
                   void* ctx) {
  return submit_common(sqe, buf, nullptr, 0, buf ? len : 0, dir, fn, ctx);
}

bool Queue::submit_iov(const nvme::Sqe& sqe, const struct iovec* iov, int iovcnt, uint32_t len,
                       CompletionFn fn, void* ctx) {
  if (iovcnt < 1 || iovcnt > kMaxIov || len == 0) return false;
  size_t have = 0;
  for (int i = 0; i < iovcnt; ++i) have += iov[i].iov_len;
  if (have < len) return false;
  return submit_common(sqe, nullptr, iov, iovcnt, len, Dir::kToController, fn, ctx);
}

bool Queue::submit_common(const nvme::Sqe& sqe, void* buf, const struct iovec* iov, int iovcnt,
                          uint32_t len, Dir dir, CompletionFn fn, void* ctx) {
  if (!ok() || free_.empty()) return false;
  Slot& s = slots_[free_.back()];
  free_.pop_back();
  s.busy = true;
  s.zombie = s.data_error = false;
  s.buf = static_cast<uint8_t*>(buf);
  s.data_iov = iov;
  s.data_iovcnt = iovcnt;
  s.len = len;
  s.dir = s.len ? dir : Dir::kNone;
  s.fn = fn;
  s.ctx = ctx;
  s.h2c_next = s.r2t_end = s.c2h_next = 0;
  s.sqe = sqe;
  s.sqe.cid = s.cid;
  s.sqe.flags = static_cast<uint8_t>((sqe.flags & 0x3f) | (nvme::kPsdtSglMptrContig << 6));
  uint32_t icd = s.dir == Dir::kToController && s.len <= opts_.max_icd ? s.len : 0;
  s.sqe.dptr.sgl1 = {};
  s.sqe.dptr.sgl1.length = s.len;
  s.sqe.dptr.sgl1.type = icd ? kSglInCapsule : kSglTransport;
  s.cap.iovcnt = 0;
  s.cap.add(s.cap_hdr, build_capsule_cmd(s.cap_hdr, s.sqe, icd, link_.hdgst, link_.ddgst, cpda_));
  if (icd) {
    s.cap_ddgst = s.add_data(s.cap, 0, icd, link_.ddgst);
    if (link_.ddgst) s.cap.add(&s.cap_ddgst, kDigestLen);
    s.h2c_next = icd;  // nothing left for R2T
  }
  ++outstanding_;
  enqueue(&s.cap);
  return true;
}

void Queue::finish(Slot& s, const nvme::Cqe& cqe) {
  if (s.cap.queued || s.h2c.queued) {
    // A controller may answer before our last PDU left (e.g. an error);
    // the slot is reused only once nothing of it is queued.
    s.zombie = true;
    s.pending = cqe;
    return;
  }
  CompletionFn fn = s.fn;
  void* ctx = s.ctx;
  s.busy = false;
  free_.push_back(s.cid);
  --outstanding_;
  ++delivered_;
  if (fn) fn(ctx, cqe);
}

std::string Queue::exec(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir, nvme::Cqe* cqe,
                        int timeout_ms) {
  struct Done {
    bool done = false;
    nvme::Cqe cqe{};
  } d;
  auto cb = [](void* ctx, const nvme::Cqe& c) {
    auto* dd = static_cast<Done*>(ctx);
    dd->done = true;
    dd->cqe = c;
  };
  if (!submit(sqe, buf, len, dir, cb, &d)) return ok() ? "no free command slot" : error();
  if (!wait([&d] { return d.done; }, timeout_ms)) {
    return ok() ? "command timed out" : error();
  }
  if (cqe) *cqe = d.cqe;
  return "";
}

bool Queue::send_raw(const void* data, size_t len) {
  if (fd_ < 0) return false;
  auto* p = static_cast<const uint8_t*>(data);
  while (len) {
    ssize_t n = ::send(fd_, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pf{fd_, POLLOUT, 0};
      ::poll(&pf, 1, 100);
      continue;
    }
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool Queue::block_once(int timeout_ms) {
  if (fd_ < 0) return false;
  pollfd p{fd_, static_cast<short>(POLLIN | (send_q_.empty() ? 0 : POLLOUT)), 0};
  int rc = ::poll(&p, 1, timeout_ms);
  return rc >= 0 || errno == EINTR;
}

int Queue::poll() {
  delivered_ = 0;
  if (!ok()) return -1;
  if (flush() && receive()) flush();
  if (!ok()) return delivered_ ? delivered_ : -1;
  return delivered_;
}

void Queue::enqueue(Item* it) {
  send_q_.push(it);
}

bool Queue::flush() {
  while (!send_q_.empty() && fd_ >= 0) {
    struct iovec iov[64];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(send_q_.gather(iov, 64));
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      fail(std::string("send: ") + strerror(errno));
      return false;
    }
    send_q_.advance(static_cast<size_t>(n), [this](Item* done) {
      on_sent(done);
      return fd_ >= 0;
    });
  }
  return fd_ >= 0;
}

void Queue::on_sent(Item* it) {
  Slot* s = it->slot;
  if (!s) return;
  if (it->kind == Item::Kind::kH2C && s->h2c_next < s->r2t_end && !s->zombie) queue_h2c(*s);
  if (s->zombie && !s->cap.queued && !s->h2c.queued) {
    s->zombie = false;
    finish(*s, s->pending);
  }
}

void Queue::queue_h2c(Slot& s) {
  uint32_t chunk = std::min(s.r2t_end - s.h2c_next, maxh2cdata_);
  bool last = s.h2c_next + chunk == s.r2t_end;
  s.h2c.iovcnt = 0;
  s.h2c.add(s.h2c_hdr, build_data(s.h2c_hdr, PduType::kH2CData, s.cid, s.ttag, s.h2c_next, chunk,
                                  last ? pdu_flags::kLastPdu : 0, link_.hdgst, link_.ddgst, cpda_));
  s.h2c_ddgst = s.add_data(s.h2c, s.h2c_next, chunk, link_.ddgst);
  if (link_.ddgst) s.h2c.add(&s.h2c_ddgst, kDigestLen);
  s.h2c_next += chunk;
  enqueue(&s.h2c);
}

}  // namespace nvemu::host::tcp
