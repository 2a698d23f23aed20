// vfio-user message framing over a Unix stream socket: reading whole
// messages (header, payload, passed fds) from a non-blocking socket,
// validating the header, and sending messages with fds. Shared by the
// server (src/nvmf/vfio_user) and nvemu's host driver (src/host/vfio_user).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "wire/vfio_user/protocol.h"

namespace nvemu::vfio_user {

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct Message {
  Header hdr{};
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;

  // The payload viewed as T at `offset`, or nullptr when it is too short.
  template <class T>
  bool get(T* out, size_t offset = 0) const {
    if (offset > payload.size() || payload.size() - offset < sizeof(T)) return false;
    std::memcpy(out, payload.data() + offset, sizeof(T));
    return true;
  }
  bool is_reply() const { return (hdr.flags & kFlagTypeMask) == kFlagReply; }
  bool wants_reply() const { return !(hdr.flags & kFlagNoReply); }
};

// Checks what can be checked before the payload is read. Returns "" when
// the header is acceptable, else why the stream cannot be trusted (the
// connection is then closed: a bad size leaves no way to find the next
// message).
std::string validate_header(const Header& h, uint32_t max_size = kMaxMsgSize);

// Incremental reader for a non-blocking stream socket. Passed fds are
// collected from every recvmsg of a message and handed over with it.
class MsgReader {
 public:
  enum class Result { kMessage, kAgain, kClosed, kError };
  explicit MsgReader(uint32_t max_size = kMaxMsgSize) : max_size_(max_size) {}
  // Reads until one whole message is available (kMessage, *out filled),
  // the socket would block (kAgain), the peer closed (kClosed) or the
  // stream is unusable (kError, *why set).
  Result read(int fd, Message* out, std::string* why);

 private:
  uint32_t max_size_;
  uint8_t hdr_buf_[sizeof(Header)]{};
  size_t hdr_got_ = 0;
  Message cur_;
  size_t body_got_ = 0;
  bool in_body_ = false;
};

// Sends one message (header.msg_size is set here) with optional fds,
// waiting up to timeout_ms for socket space. Returns false on error.
bool send_message(int fd, Header hdr, const void* payload, size_t len, const int* fds = nullptr,
                  size_t nfds = 0, int timeout_ms = 5000);
// Blocking helper for the client: reads one whole message (timeout_ms < 0:
// forever). Returns false with *why on error/timeout/close.
bool recv_message(int fd, Message* out, std::string* why, int timeout_ms = 5000);

}  // namespace nvemu::vfio_user
