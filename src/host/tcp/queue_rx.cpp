// Initiator receive path: ICResp, CapsuleResp, C2HData (reassembled straight
// into the caller's buffer), R2T (answered with H2CData) and C2HTermReq.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "host/tcp/queue.h"
#include "host/tcp/queue_slot.h"

namespace nvemu::host::tcp {

using namespace nvmf::tcp;

namespace {
constexpr uint32_t kDirectRecv = 4096;
}

bool Queue::receive() {
  while (fd_ >= 0 && rx_ != Rx::kStopped) {
    if (stage_pos_ == stage_len_) {
      uint32_t left = layout_.data_len - data_got_;
      bool direct = rx_ == Rx::kData && left >= kDirectRecv;
      ssize_t n = direct ? ::recv(fd_, data_dst_ + data_got_, left, MSG_DONTWAIT)
                         : ::recv(fd_, staging_.get(), kStagingSize, MSG_DONTWAIT);
      if (n == 0) {
        fail(term_fes_ != Fes::kNone ? failed_ : "controller closed the connection");
        return false;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        fail(std::string("recv: ") + strerror(errno));
        return false;
      }
      if (direct) {
        data_got_ += static_cast<uint32_t>(n);
        if (data_got_ == layout_.data_len) {
          if (layout_.ddgst_len)
            rx_ = Rx::kDataDigest;
          else
            payload_done();
        }
        continue;
      }
      stage_pos_ = 0;
      stage_len_ = static_cast<size_t>(n);
    }
    while (step()) {
    }
  }
  return fd_ >= 0;
}

bool Queue::step() {
  size_t avail = stage_len_ - stage_pos_;
  if (avail == 0 || fd_ < 0) return false;
  const uint8_t* src = staging_.get() + stage_pos_;
  switch (rx_) {
    case Rx::kCommonHeader:
    case Rx::kHeader: {
      uint32_t want = rx_ == Rx::kCommonHeader ? static_cast<uint32_t>(sizeof(CommonHeader))
                                               : layout_.header_len;
      size_t n = std::min<size_t>(avail, want - hdr_got_);
      std::memcpy(hdr_ + hdr_got_, src, n);
      hdr_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (hdr_got_ < want) return false;
      if (rx_ == Rx::kCommonHeader) {
        CommonHeader ch;
        std::memcpy(&ch, hdr_, sizeof ch);
        PduError e = check_common(ch, link_, &layout_);
        if (!e.ok()) {
          protocol_error(e);
          return false;
        }
        rx_ = Rx::kHeader;
        return true;
      }
      PduError e = check_header(hdr_, layout_, link_);
      if (!e.ok()) {
        protocol_error(e);
        return false;
      }
      header_done();
      return rx_ != Rx::kStopped && fd_ >= 0;
    }
    case Rx::kPad: {
      size_t n = std::min<size_t>(avail, layout_.pad_len - pad_got_);
      pad_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (pad_got_ == layout_.pad_len) rx_ = Rx::kData;
      return true;
    }
    case Rx::kData: {
      size_t n = std::min<size_t>(avail, layout_.data_len - data_got_);
      std::memcpy(data_dst_ + data_got_, src, n);
      data_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (data_got_ == layout_.data_len) {
        if (layout_.ddgst_len)
          rx_ = Rx::kDataDigest;
        else
          payload_done();
      }
      return rx_ != Rx::kStopped && fd_ >= 0;
    }
    case Rx::kDataDigest: {
      size_t n = std::min<size_t>(avail, kDigestLen - ddgst_got_);
      std::memcpy(ddgst_buf_ + ddgst_got_, src, n);
      ddgst_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (ddgst_got_ == kDigestLen) payload_done();
      return rx_ != Rx::kStopped && fd_ >= 0;
    }
    case Rx::kStopped:
      return false;
  }
  return false;
}

void Queue::header_done() {
  data_got_ = pad_got_ = ddgst_got_ = 0;
  data_dst_ = nullptr;
  rx_slot_ = nullptr;
  auto bad_cid = [this](uint16_t cid, uint32_t fei) -> Slot* {
    if (cid < depth_ && slots_[cid].busy) return &slots_[cid];
    protocol_error({Fes::kInvalidHeaderField, fei, "PDU for a command that is not outstanding"});
    return nullptr;
  };
  switch (static_cast<PduType>(hdr_[0])) {
    case PduType::kICResp: {
      ICResp r;
      std::memcpy(&r, hdr_, sizeof r);
      link_.ic_done = true;
      link_.hdgst = r.dgst & dgst_flags::kHdgstEnable;
      link_.ddgst = r.dgst & dgst_flags::kDdgstEnable;
      maxh2cdata_ = r.maxh2cdata;
      cpda_ = r.cpda;
      break;
    }
    case PduType::kC2HTermReq:
      data_dst_ = term_data_;
      break;
    case PduType::kCapsuleResp: {
      CapsuleResp r;
      std::memcpy(&r, hdr_, sizeof r);
      Slot* s = bad_cid(r.cqe.cid, offsetof(CapsuleResp, cqe) + offsetof(nvme::Cqe, cid));
      if (!s) return;
      if (s->data_error)  // data digest failed on the way in: the data is not trustworthy
        r.cqe.status = nvme::Status::generic(nvme::sc::kTransientTransportError, false).field();
      finish(*s, r.cqe);
      break;
    }
    case PduType::kC2HData: {
      C2HData d;
      std::memcpy(&d, hdr_, sizeof d);
      Slot* s = bad_cid(d.cccid, offsetof(C2HData, cccid));
      if (!s) return;
      if (s->dir != Dir::kFromController || d.datao != s->c2h_next ||
          static_cast<uint64_t>(d.datao) + d.datal > s->len)
        return protocol_error({Fes::kDataOutOfRange, 0, "C2HData outside the command's buffer"});
      rx_slot_ = s;
      data_dst_ = s->buf + d.datao;
      break;
    }
    case PduType::kR2T: {
      R2T r;
      std::memcpy(&r, hdr_, sizeof r);
      Slot* s = bad_cid(r.cccid, offsetof(R2T, cccid));
      if (!s) return;
      if (s->dir != Dir::kToController || r.r2to != s->h2c_next ||
          static_cast<uint64_t>(r.r2to) + r.r2tl > s->len || s->h2c.queued)
        return protocol_error({Fes::kDataOutOfRange, 0, "R2T outside the command's data"});
      s->ttag = r.ttag;
      s->r2t_end = r.r2to + r.r2tl;
      queue_h2c(*s);
      break;
    }
    default:
      break;
  }
  if (rx_ == Rx::kStopped || fd_ < 0) return;
  if (layout_.data_len == 0) {
    rx_ = Rx::kCommonHeader;
    hdr_got_ = 0;
  } else {
    rx_ = layout_.pad_len ? Rx::kPad : Rx::kData;
  }
}

void Queue::payload_done() {
  auto type = static_cast<PduType>(hdr_[0]);
  Slot* s = rx_slot_;
  uint8_t flags = hdr_[1];
  uint32_t data_len = layout_.data_len;
  if (layout_.ddgst_len && s) {
    uint32_t got;
    std::memcpy(&got, ddgst_buf_, 4);
    if (got != digest(data_dst_, data_len)) s->data_error = true;
  }
  rx_ = Rx::kCommonHeader;
  hdr_got_ = 0;
  rx_slot_ = nullptr;
  if (type == PduType::kC2HData && s) {
    s->c2h_next += data_len;
    if (flags & pdu_flags::kSuccess) {
      nvme::Cqe cqe{};
      cqe.cid = s->cid;
      cqe.sqid = 0;
      if (s->data_error)
        cqe.status = nvme::Status::generic(nvme::sc::kTransientTransportError, false).field();
      finish(*s, cqe);
    }
  } else if (type == PduType::kC2HTermReq) {
    TermReq t;
    std::memcpy(&t, hdr_, sizeof t);
    term_fes_ = static_cast<Fes>(t.fes);
    std::memcpy(&term_fei_, t.fei, 4);
    fail(std::string("controller sent C2HTermReq: ") + fes_name(term_fes_) + " (FEI " +
         std::to_string(term_fei_) + ")");
  }
}

void Queue::protocol_error(const PduError& e) {
  LOG_ERROR("tcp-host", "protocol error from controller: {} ({}); sending H2CTermReq", e.why,
            fes_name(e.fes));
  rx_ = Rx::kStopped;
  term_item_->iovcnt = 0;
  term_item_->slot = nullptr;
  term_item_->add(term_buf_, build_term_req(term_buf_, PduType::kH2CTermReq, e.fes, e.fei, hdr_,
                                            std::min<size_t>(hdr_got_, kMaxTermReqData)));
  if (!term_item_->queued) enqueue(term_item_.get());
  flush();
  fail(std::string("protocol error: ") + e.why);
}

}  // namespace nvemu::host::tcp
