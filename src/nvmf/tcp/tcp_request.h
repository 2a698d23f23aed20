// One NVMe/TCP command in flight on the target: the transport-agnostic
// Request plus what the TCP queue needs to move its data. Requests and their
// buffers are allocated once per connection (at Connect), never per I/O.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "nvmf/request.h"
#include "wire/tcp/pdu.h"

namespace nvemu::nvmf::tcp {

// The PDU codec, reader and send queue are the wire format both ends share.
using namespace nvemu::wire::tcp;

// The request lifecycle. Each transition has one owner: the receive state
// machine moves a request up to kExecuting, the controller owns it while
// kExecuting, the send path from kResponding back to kFree.
enum class ReqState : uint8_t {
  kFree,
  kRecvCapsuleData,  // in-capsule data of its CapsuleCmd still arriving
  kWaitBuffer,       // needs a large data buffer; parked until one frees
  kRecvH2C,          // R2T queued or sent; H2CData PDUs arriving
  kExecuting,        // handed to the controller (submit_request)
  kResponding,       // C2HData/CapsuleResp queued or partly on the wire
};

const char* req_state_name(ReqState s);

// A run of bytes to write: PDUs are queued as items and written with one
// sendmsg() over as many items as fit (batching).
struct SendItem {
  enum class Kind : uint8_t { kR2T, kResponse, kControl, kTermReq };
  static constexpr int kMaxIov = 4;  // header, data, data digest, CapsuleResp
  struct iovec iov[kMaxIov];
  int iovcnt = 0;
  Kind kind = Kind::kControl;
  SendItem* next = nullptr;
  bool queued = false;
  void* owner = nullptr;  // the TcpRequest for kR2T/kResponse
  void add(const void* base, size_t len) {
    iov[iovcnt].iov_base = const_cast<void*>(base);
    iov[iovcnt].iov_len = len;
    ++iovcnt;
  }
};

struct TcpRequest {
  Request req;
  ReqState state = ReqState::kFree;
  uint16_t ttag = 0;  // index in the connection's pool; also the R2T transfer tag

  uint8_t* small_buf = nullptr;  // this request's own buffer (in-capsule size)
  uint8_t* big_buf = nullptr;    // borrowed from the connection's pool, or null
  uint32_t h2c_next = 0;         // next DATAO expected from the host
  bool local_status = false;     // the transport fails it; never reaches the controller
  bool ddgst_error = false;      // a data digest mismatched: Transient Transport Error
  bool r2t = false;              // host data comes by R2T/H2CData, not in the capsule

  SendItem send;
  TcpRequest* next_wait = nullptr;  // buffer wait list
  // Outgoing PDU headers: C2HData or R2T with digest and HPDA pad, then CapsuleResp.
  alignas(8) uint8_t hdr[sizeof(C2HData) + kDigestLen + 128];
  alignas(8) uint8_t resp[sizeof(CapsuleResp) + kDigestLen];
  uint32_t ddgst = 0;

  uint8_t* data() const { return big_buf ? big_buf : small_buf; }
  static TcpRequest* of(Request* r) { return static_cast<TcpRequest*>(r->transport_ctx); }
};

}  // namespace nvemu::nvmf::tcp
