// The receive framing of an NVMe/TCP connection, shared by the target and the
// initiator: reads a non-blocking socket through a staging buffer and walks
// each PDU through common header -> rest of header (both validated with the
// codec) -> pad -> data -> data digest. What a PDU means is the owner's
// business: the reader calls it once per PDU when the header is complete
// (the owner says where the data goes), once when the PDU is complete, and on
// a header the codec rejects. Large data is received straight into the
// owner's buffer, bypassing the staging buffer. Nothing here allocates after
// construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "wire/tcp/pdu_codec.h"

namespace nvemu::wire::tcp {

class PduReader {
 public:
  // Called once per PDU (never per byte).
  class Owner {
   public:
    // The header passed check_common() and check_header(); hdr() holds it.
    // A PDU with data needs set_data_dst() here, or stop().
    virtual void header_done() = 0;
    // The PDU is complete: its data and data digest arrived, or it had no
    // data. The reader is already waiting for the next PDU, but hdr(),
    // layout() and data_digest_ok() still describe this one.
    virtual void payload_done() = 0;
    // The codec rejected the header; the reader reads nothing more of it.
    // Owners answer with a TermReq and stop().
    virtual void protocol_error(const PduError& e) = 0;

   protected:
    ~Owner() = default;
  };

  enum class ReadResult : uint8_t {
    kDrained,  // the socket has nothing more for now (EAGAIN)
    kStopped,  // stop() was called
    kEof,      // the peer closed the connection
    kError,    // recv() failed; errno says why
  };

  // `link` is the owner's negotiated state; the reader validates against it.
  PduReader(Owner& owner, const LinkParams& link);
  PduReader(const PduReader&) = delete;
  PduReader& operator=(const PduReader&) = delete;

  // Receives from the non-blocking socket `fd` and runs the state machine
  // until one of the ReadResult conditions.
  ReadResult read_from(int fd);

  // For a caller that receives by other means (io_uring): where the next
  // receive lands and the most it may take, then received() with the byte
  // count that arrived there (> 0), which runs the state machine over them
  // and returns kStopped or kDrained.
  struct RecvSpan {
    uint8_t* buf;
    size_t len;
  };
  RecvSpan next_recv();
  ReadResult received(size_t n);

  // Read nothing more (fatal error or closed).
  void stop() { state_ = State::kStopped; }
  bool stopped() const { return state_ == State::kStopped; }
  // Wait for a fresh common header with an empty staging buffer.
  void reset();

  // The current PDU's header (hdr_got() bytes of it received so far).
  const uint8_t* hdr() const { return hdr_; }
  uint32_t hdr_got() const { return hdr_got_; }
  const PduLayout& layout() const { return layout_; }
  // From header_done(): where the PDU's layout().data_len bytes go.
  void set_data_dst(uint8_t* dst) { data_dst_ = dst; }
  // From payload_done(): whether the received data digest matches the data
  // (true when the PDU carries none). Computes the CRC on each call.
  bool data_digest_ok() const;

 private:
  enum class State : uint8_t {
    kCommonHeader,  // reading the 8-byte common header
    kHeader,        // reading the rest of the header and its digest
    kPad,           // skipping PDO padding
    kData,          // reading PDU data into data_dst_
    kDataDigest,    // reading the 4-byte data digest
    kStopped,       // fatal error or closed: read nothing more
  };

  bool step();  // consumes staged bytes; false when it needs more or stopped
  void on_header();
  void on_data();
  void end_pdu();

  Owner& owner_;
  const LinkParams& link_;
  State state_ = State::kCommonHeader;
  alignas(8) uint8_t hdr_[kMaxHeaderWithDigest];
  uint32_t hdr_got_ = 0;
  PduLayout layout_;
  uint8_t* data_dst_ = nullptr;  // where this PDU's data goes
  uint32_t data_got_ = 0;
  uint32_t pad_got_ = 0;
  uint8_t ddgst_buf_[kDigestLen];
  uint32_t ddgst_got_ = 0;
  static constexpr size_t kStagingSize = 64 * 1024;
  std::unique_ptr<uint8_t[]> staging_;
  size_t stage_pos_ = 0, stage_len_ = 0;
  bool recv_direct_ = false;  // the span of next_recv() is the owner's buffer
};

}  // namespace nvemu::wire::tcp
