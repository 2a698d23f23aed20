#include "wire/vfio_user/msg_socket.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace nvemu::vfio_user {

const char* command_name(uint16_t cmd) {
  switch (cmd) {
    case kVersion:
      return "VERSION";
    case kDmaMap:
      return "DMA_MAP";
    case kDmaUnmap:
      return "DMA_UNMAP";
    case kDeviceGetInfo:
      return "DEVICE_GET_INFO";
    case kDeviceGetRegionInfo:
      return "DEVICE_GET_REGION_INFO";
    case kDeviceGetRegionIoFds:
      return "DEVICE_GET_REGION_IO_FDS";
    case kDeviceGetIrqInfo:
      return "DEVICE_GET_IRQ_INFO";
    case kDeviceSetIrqs:
      return "DEVICE_SET_IRQS";
    case kRegionRead:
      return "REGION_READ";
    case kRegionWrite:
      return "REGION_WRITE";
    case kDmaRead:
      return "DMA_READ";
    case kDmaWrite:
      return "DMA_WRITE";
    case kDeviceReset:
      return "DEVICE_RESET";
    case kDirtyPages:
      return "DIRTY_PAGES";
    case kRegionWriteMulti:
      return "REGION_WRITE_MULTI";
    default:
      return "UNKNOWN";
  }
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

std::string validate_header(const Header& h, uint32_t max_size) {
  if (h.msg_size < sizeof(Header))
    return fmt::format("message size {} is smaller than the {}-byte header", h.msg_size,
                       sizeof(Header));
  if (h.msg_size > max_size)
    return fmt::format("message size {} exceeds the limit of {} bytes", h.msg_size, max_size);
  uint32_t type = h.flags & kFlagTypeMask;
  if (type != kFlagRequest && type != kFlagReply)
    return fmt::format("unknown message type {} in flags {:#x}", type, h.flags);
  return "";
}

namespace {

// recvmsg that appends any passed fds to *fds. Returns bytes, 0 on close,
// -1 with errno.
ssize_t recv_with_fds(int fd, void* buf, size_t len, std::vector<UniqueFd>* fds) {
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 32)];
  struct iovec iov {
    buf, len
  };
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return -1;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(passed);
    }
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    errno = EMSGSIZE;  // more fds than we accept: the stream is suspect
    return -2;
  }
  return n;
}

}  // namespace

MsgReader::Result MsgReader::read(int fd, Message* out, std::string* why) {
  for (;;) {
    if (!in_body_) {
      ssize_t n = recv_with_fds(fd, hdr_buf_ + hdr_got_, sizeof(Header) - hdr_got_, &cur_.fds);
      if (n == 0) return Result::kClosed;
      if (n == -2) {
        *why = "too many file descriptors passed with one message";
        return Result::kError;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Result::kAgain;
        *why = fmt::format("recvmsg: {}", strerror(errno));
        return Result::kError;
      }
      hdr_got_ += static_cast<size_t>(n);
      if (hdr_got_ < sizeof(Header)) continue;
      std::memcpy(&cur_.hdr, hdr_buf_, sizeof(Header));
      std::string bad = validate_header(cur_.hdr, max_size_);
      if (!bad.empty()) {
        *why = bad;
        return Result::kError;
      }
      if (cur_.fds.size() > kMaxMsgFds) {
        *why = fmt::format("{} fds passed, at most {} accepted", cur_.fds.size(), kMaxMsgFds);
        return Result::kError;
      }
      cur_.payload.resize(cur_.hdr.msg_size - sizeof(Header));
      body_got_ = 0;
      in_body_ = true;
    }
    while (body_got_ < cur_.payload.size()) {
      ssize_t n = recv_with_fds(fd, cur_.payload.data() + body_got_,
                                cur_.payload.size() - body_got_, &cur_.fds);
      if (n == 0) return Result::kClosed;
      if (n == -2 || (n > 0 && cur_.fds.size() > kMaxMsgFds)) {
        *why = "too many file descriptors passed with one message";
        return Result::kError;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Result::kAgain;
        *why = fmt::format("recvmsg: {}", strerror(errno));
        return Result::kError;
      }
      body_got_ += static_cast<size_t>(n);
    }
    *out = std::move(cur_);
    cur_ = Message{};
    hdr_got_ = 0;
    body_got_ = 0;
    in_body_ = false;
    return Result::kMessage;
  }
}

bool send_message(int fd, Header hdr, const void* payload, size_t len, const int* fds, size_t nfds,
                  int timeout_ms) {
  if (len > kMaxMsgSize - sizeof(Header) || nfds > kMaxMsgFds) return false;
  hdr.msg_size = static_cast<uint32_t>(sizeof(Header) + len);
  struct iovec iov[2] = {{&hdr, sizeof hdr}, {const_cast<void*>(payload), len}};
  size_t total = sizeof hdr + len;
  size_t sent = 0;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxMsgFds)];
  bool fds_pending = nfds > 0;
  while (sent < total) {
    struct iovec cur[2];
    int niov = 0;
    size_t skip = sent;
    for (auto& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      cur[niov].iov_base = static_cast<char*>(v.iov_base) + skip;
      cur[niov].iov_len = v.iov_len - skip;
      skip = 0;
      ++niov;
    }
    struct msghdr mh {};
    mh.msg_iov = cur;
    mh.msg_iovlen = static_cast<size_t>(niov);
    if (fds_pending) {
      std::memset(cbuf, 0, sizeof cbuf);
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      struct pollfd p {
        fd, POLLOUT, 0
      };
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      continue;
    }
    fds_pending = false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool recv_message(int fd, Message* out, std::string* why, int timeout_ms) {
  MsgReader reader;
  for (;;) {
    switch (reader.read(fd, out, why)) {
      case MsgReader::Result::kMessage:
        return true;
      case MsgReader::Result::kClosed:
        *why = "peer closed the socket";
        return false;
      case MsgReader::Result::kError:
        return false;
      case MsgReader::Result::kAgain: {
        struct pollfd p {
          fd, POLLIN, 0
        };
        int r = poll(&p, 1, timeout_ms);
        if (r == 0) {
          *why = "timed out waiting for a reply";
          return false;
        }
        if (r < 0 && errno != EINTR) {
          *why = fmt::format("poll: {}", strerror(errno));
          return false;
        }
        break;
      }
    }
  }
}

}  // namespace nvemu::vfio_user
