#include "wire/tcp/pdu_reader.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nvemu::wire::tcp {

namespace {
// Payload bytes left that make receiving straight into the owner's buffer
// cheaper than going through the staging buffer.
constexpr uint32_t kDirectRecv = 4096;
}  // namespace

PduReader::PduReader(Owner& owner, const LinkParams& link)
    : owner_(owner), link_(link), staging_(new uint8_t[kStagingSize]) {}

void PduReader::reset() {
  state_ = State::kCommonHeader;
  hdr_got_ = 0;
  stage_pos_ = stage_len_ = 0;
}

PduReader::ReadResult PduReader::read_from(int fd) {
  // A read that returned less than asked for emptied the socket: the next
  // one would only say EAGAIN, and the (level-triggered) epoll reports any
  // byte that arrives after it. One syscall saved per wake-up.
  while (state_ != State::kStopped) {
    RecvSpan span = next_recv();
    ssize_t n = ::recv(fd, span.buf, span.len, MSG_DONTWAIT);
    if (n == 0) return ReadResult::kEof;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadResult::kDrained;
      return ReadResult::kError;
    }
    if (received(static_cast<size_t>(n)) == ReadResult::kStopped) return ReadResult::kStopped;
    if (static_cast<size_t>(n) < span.len) return ReadResult::kDrained;
  }
  return ReadResult::kStopped;
}

PduReader::RecvSpan PduReader::next_recv() {
  uint32_t left = layout_.data_len - data_got_;
  recv_direct_ = state_ == State::kData && left >= kDirectRecv;
  if (recv_direct_) return {data_dst_ + data_got_, left};
  return {staging_.get(), kStagingSize};
}

PduReader::ReadResult PduReader::received(size_t n) {
  if (recv_direct_) {
    data_got_ += static_cast<uint32_t>(n);
    if (data_got_ == layout_.data_len) on_data();
  } else {
    stage_pos_ = 0;
    stage_len_ = n;
    while (step()) {
    }
  }
  return state_ == State::kStopped ? ReadResult::kStopped : ReadResult::kDrained;
}

bool PduReader::step() {
  size_t avail = stage_len_ - stage_pos_;
  if (avail == 0) return false;
  const uint8_t* src = staging_.get() + stage_pos_;
  switch (state_) {
    case State::kCommonHeader:
    case State::kHeader: {
      uint32_t want = state_ == State::kCommonHeader ? static_cast<uint32_t>(sizeof(CommonHeader))
                                                     : layout_.header_len;
      size_t n = std::min<size_t>(avail, want - hdr_got_);
      std::memcpy(hdr_ + hdr_got_, src, n);
      hdr_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (hdr_got_ < want) return false;
      if (state_ == State::kCommonHeader) {
        CommonHeader ch;
        std::memcpy(&ch, hdr_, sizeof ch);
        PduError e = check_common(ch, link_, &layout_);
        if (!e.ok()) {
          owner_.protocol_error(e);
          return false;
        }
        state_ = State::kHeader;
        return true;
      }
      PduError e = check_header(hdr_, layout_, link_);
      if (!e.ok()) {
        owner_.protocol_error(e);
        return false;
      }
      on_header();
      return state_ != State::kStopped;
    }
    case State::kPad: {
      size_t n = std::min<size_t>(avail, layout_.pad_len - pad_got_);
      pad_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (pad_got_ == layout_.pad_len) state_ = State::kData;
      return true;
    }
    case State::kData: {
      size_t n = std::min<size_t>(avail, layout_.data_len - data_got_);
      std::memcpy(data_dst_ + data_got_, src, n);
      data_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (data_got_ == layout_.data_len) on_data();
      return state_ != State::kStopped;
    }
    case State::kDataDigest: {
      size_t n = std::min<size_t>(avail, kDigestLen - ddgst_got_);
      std::memcpy(ddgst_buf_ + ddgst_got_, src, n);
      ddgst_got_ += static_cast<uint32_t>(n);
      stage_pos_ += n;
      if (ddgst_got_ == kDigestLen) end_pdu();
      return state_ != State::kStopped;
    }
    case State::kStopped:
      return false;
  }
  return false;
}

void PduReader::on_header() {
  data_got_ = pad_got_ = ddgst_got_ = 0;
  data_dst_ = nullptr;
  owner_.header_done();
  if (state_ == State::kStopped) return;
  if (layout_.data_len == 0)
    end_pdu();
  else
    state_ = layout_.pad_len ? State::kPad : State::kData;
}

void PduReader::on_data() {
  if (layout_.ddgst_len)
    state_ = State::kDataDigest;
  else
    end_pdu();
}

void PduReader::end_pdu() {
  // Ready for the next PDU before the owner can re-enter.
  state_ = State::kCommonHeader;
  hdr_got_ = 0;
  owner_.payload_done();
}

bool PduReader::data_digest_ok() const {
  if (!layout_.ddgst_len) return true;
  uint32_t got;
  std::memcpy(&got, ddgst_buf_, kDigestLen);
  return got == digest(data_dst_, layout_.data_len);
}

}  // namespace nvemu::wire::tcp
