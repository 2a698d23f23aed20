// Initiator receive path: ICResp, CapsuleResp, C2HData (reassembled straight
// into the caller's buffer), R2T (answered with H2CData) and C2HTermReq.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "host/tcp/queue.h"
#include "host/tcp/queue_slot.h"

namespace nvemu::host::tcp {

using namespace wire::tcp;

bool Queue::receive() {
  if (fd_ < 0) return false;
  switch (rx_.read_from(fd_)) {
    case PduReader::ReadResult::kEof:
      fail(term_fes_ != Fes::kNone ? failed_ : "controller closed the connection");
      return false;
    case PduReader::ReadResult::kError:
      fail(std::string("recv: ") + strerror(errno));
      return false;
    case PduReader::ReadResult::kDrained:
      return true;
    case PduReader::ReadResult::kStopped:
      break;
  }
  return fd_ >= 0;
}

void Queue::header_done() {
  rx_slot_ = nullptr;
  auto bad_cid = [this](uint16_t cid, uint32_t fei) -> Slot* {
    if (cid < depth_ && slots_[cid].busy) return &slots_[cid];
    protocol_error({Fes::kInvalidHeaderField, fei, "PDU for a command that is not outstanding"});
    return nullptr;
  };
  const uint8_t* hdr = rx_.hdr();
  switch (static_cast<PduType>(hdr[0])) {
    case PduType::kICResp: {
      ICResp r;
      std::memcpy(&r, hdr, sizeof r);
      link_.ic_done = true;
      link_.hdgst = r.dgst & dgst_flags::kHdgstEnable;
      link_.ddgst = r.dgst & dgst_flags::kDdgstEnable;
      maxh2cdata_ = r.maxh2cdata;
      cpda_ = r.cpda;
      break;
    }
    case PduType::kC2HTermReq:
      rx_.set_data_dst(term_data_);
      break;
    case PduType::kCapsuleResp: {
      CapsuleResp r;
      std::memcpy(&r, hdr, sizeof r);
      Slot* s = bad_cid(r.cqe.cid, offsetof(CapsuleResp, cqe) + offsetof(nvme::Cqe, cid));
      if (!s) return;
      if (s->data_error)  // data digest failed on the way in: the data is not trustworthy
        r.cqe.status = nvme::Status::generic(nvme::sc::kTransientTransportError, false).field();
      finish(*s, r.cqe);
      break;
    }
    case PduType::kC2HData: {
      C2HData d;
      std::memcpy(&d, hdr, sizeof d);
      Slot* s = bad_cid(d.cccid, offsetof(C2HData, cccid));
      if (!s) return;
      if (s->dir != Dir::kFromController || d.datao != s->c2h_next ||
          static_cast<uint64_t>(d.datao) + d.datal > s->len)
        return protocol_error({Fes::kDataOutOfRange, 0, "C2HData outside the command's buffer"});
      rx_slot_ = s;
      rx_.set_data_dst(s->buf + d.datao);
      break;
    }
    case PduType::kR2T: {
      R2T r;
      std::memcpy(&r, hdr, sizeof r);
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
}

void Queue::payload_done() {
  uint32_t data_len = rx_.layout().data_len;
  // A PDU without data was handled by header_done() alone (that includes a
  // C2HTermReq or a C2HData SUCCESS without data).
  if (data_len == 0) return;
  const uint8_t* hdr = rx_.hdr();
  auto type = static_cast<PduType>(hdr[0]);
  Slot* s = rx_slot_;
  uint8_t flags = hdr[1];
  if (s && !rx_.data_digest_ok()) s->data_error = true;
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
    std::memcpy(&t, hdr, sizeof t);
    term_fes_ = static_cast<Fes>(t.fes);
    std::memcpy(&term_fei_, t.fei, 4);
    fail(std::string("controller sent C2HTermReq: ") + fes_name(term_fes_) + " (FEI " +
         std::to_string(term_fei_) + ")");
  }
}

void Queue::protocol_error(const PduError& e) {
  LOG_ERROR("tcp-host", "protocol error from controller: {} ({}); sending H2CTermReq", e.why,
            fes_name(e.fes));
  rx_.stop();
  term_item_->iovcnt = 0;
  term_item_->slot = nullptr;
  term_item_->add(term_buf_,
                  build_term_req(term_buf_, PduType::kH2CTermReq, e.fes, e.fei, rx_.hdr(),
                                 std::min<size_t>(rx_.hdr_got(), kMaxTermReqData)));
  if (!term_item_->queued) enqueue(term_item_.get());
  flush();
  fail(std::string("protocol error: ") + e.why);
}

}  // namespace nvemu::host::tcp
