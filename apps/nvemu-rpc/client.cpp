#include "client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

namespace nvemu::rpccli {
namespace {

// The offset one past the first complete JSON value in buf (leading
// whitespace skipped), or npos while it is incomplete. Strings are tracked
// so brackets inside them do not count.
size_t complete_json_end(const std::string& buf) {
  size_t i = buf.find_first_not_of(" \t\r\n");
  if (i == std::string::npos) return std::string::npos;
  const char first = buf[i];
  if (first == '"') {  // a bare string
    for (++i; i < buf.size(); ++i) {
      if (buf[i] == '\\')
        ++i;
      else if (buf[i] == '"')
        return i + 1;
    }
    return std::string::npos;
  }
  if (first != '{' && first != '[') {  // a bare scalar: complete at a delimiter
    size_t end = buf.find_first_of(" \t\r\n,]}", i);
    return end == std::string::npos ? std::string::npos : end;
  }
  int depth = 0;
  bool in_string = false;
  for (; i < buf.size(); ++i) {
    char c = buf[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      ++depth;
    else if ((c == '}' || c == ']') && --depth == 0)
      return i + 1;
  }
  return std::string::npos;
}

std::string errno_text(int err) {
  return fmt::format("[Errno {}] {}", err, std::strerror(err));
}

void log(LogLevel have, LogLevel want, const std::string& msg) {
  if (static_cast<int>(have) < static_cast<int>(want)) return;
  std::cerr << (want == LogLevel::kDebug ? "DEBUG: " : "INFO: ") << msg << std::endl;
}

class SocketClient : public Client {
 public:
  explicit SocketClient(const ClientOptions& opts) : opts_(opts) {
    for (int i = 0; i < opts_.conn_retries; ++i) {
      if (try_connect(nullptr)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::string why;
    if (!try_connect(&why))
      throw RpcException(fmt::format(
          "Error while connecting to {}\n"
          "Is the nvemu target running? Start nvemu-tgt (its -r option names the RPC socket), "
          "or point nvemu-rpc at its socket with -s SOCKET.\n"
          "Error details: {}",
          opts_.addr, why));
  }
  ~SocketClient() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Json call(const std::string& method, const Json& params, bool send_empty_params) override {
    Json req;
    req["jsonrpc"] = "2.0";
    req["method"] = method;
    req["id"] = ++request_id_;
    const bool has_params = !params.is_null() && (send_empty_params || !params.empty());
    if (has_params) req["params"] = params;
    log(opts_.log_level, LogLevel::kInfo, "Requests:\n" + py_dumps(req, 2) + "\n");
    send_all(wire_dump(req));

    Json response;
    try {
      response = receive();
    } catch (const RpcException&) {
      // The target exits on spdk_kill_instance and may not answer first.
      if (fd_ < 0 && method == "spdk_kill_instance") {
        log(opts_.log_level, LogLevel::kInfo,
            "Connection terminated but ignoring since method is 'spdk_kill_instance'");
        return Json::object();
      }
      throw;
    }
    log(opts_.log_level, LogLevel::kInfo, "response:\n" + py_dumps(response, 2) + "\n");

    if (response.is_object() && response.contains("error")) {
      Json shown = params.is_object() ? params : Json::object();
      if (!params.is_object() && has_params) shown["params"] = params;
      shown["method"] = method;
      shown["req_id"] = request_id_;
      throw RpcException("request:\n" + py_dumps(shown, 2) + "\nGot JSON-RPC error response\n" +
                         "response:\n" + py_dumps(response["error"], 2));
    }
    if (!response.is_object())
      throw RpcException("Invalid JSON-RPC response (not an object):\n" + py_dumps(response, 2));
    return response.contains("result") ? response["result"] : Json();
  }

 private:
  bool try_connect(std::string* why) {
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
    in_addr a4;
    in6_addr a6;
    const bool v4 = inet_pton(AF_INET, opts_.addr.c_str(), &a4) == 1;
    const bool v6 = !v4 && inet_pton(AF_INET6, opts_.addr.c_str(), &a6) == 1;
    if (v4 || v6) {
      log(opts_.log_level, LogLevel::kDebug,
          fmt::format("Trying to connect to {} address addr:{}, port:{}", v4 ? "IPv4" : "IPv6",
                      opts_.addr, opts_.port));
      addrinfo hints{};
      hints.ai_family = v4 ? AF_INET : AF_INET6;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = getaddrinfo(opts_.addr.c_str(), std::to_string(opts_.port).c_str(), &hints, &res);
      if (rc != 0) {
        if (why) *why = gai_strerror(rc);
        return false;
      }
      fd_ = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
      rc = fd_ < 0 ? -1 : ::connect(fd_, res->ai_addr, res->ai_addrlen);
      int err = errno;
      freeaddrinfo(res);
      if (rc != 0) {
        if (why) *why = errno_text(err);
        if (fd_ >= 0) ::close(fd_), fd_ = -1;
        return false;
      }
      return true;
    }
    log(opts_.log_level, LogLevel::kDebug, "Trying to connect to UNIX socket: " + opts_.addr);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (opts_.addr.size() >= sizeof(sa.sun_path)) {
      if (why) *why = fmt::format("socket path is longer than {} bytes", sizeof(sa.sun_path) - 1);
      return false;
    }
    std::memcpy(sa.sun_path, opts_.addr.c_str(), opts_.addr.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      int err = errno;
      if (why) *why = errno_text(err);
      if (fd_ >= 0) ::close(fd_), fd_ = -1;
      return false;
    }
    return true;
  }

  void send_all(const std::string& data) {
    if (fd_ < 0) throw RpcException("Connection to " + opts_.addr + " is closed");
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw RpcException(
            fmt::format("Error while sending request to {}: {}", opts_.addr, errno_text(errno)));
      off += static_cast<size_t>(n);
    }
  }

  // One complete JSON value from the stream; what follows it stays buffered.
  Json receive() {
    using Clock = std::chrono::steady_clock;
    const auto deadline =
        Clock::now() + std::chrono::microseconds(static_cast<int64_t>(opts_.timeout * 1e6));
    while (true) {
      if (size_t first = buf_.find_first_not_of(" \t\r\n");
          first != std::string::npos &&
          std::string("{[\"-0123456789tfn").find(buf_[first]) == std::string::npos)
        throw RpcException("Invalid JSON in response:\n" + buf_ + "\n");
      if (size_t end = complete_json_end(buf_); end != std::string::npos) {
        std::string text = buf_.substr(0, end);
        buf_.erase(0, end);
        try {
          return Json::parse(text);
        } catch (const Json::exception& e) {
          throw RpcException(fmt::format("Invalid JSON in response ({}):\n{}\n", e.what(), text));
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0)
        throw RpcException(
            fmt::format("Timeout while waiting for response ({} s, -t changes "
                        "it):\n{}\n",
                        opts_.timeout, buf_));
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (rc < 0 && errno != EINTR)
        throw RpcException("Error while waiting for response: " + errno_text(errno));
      if (rc <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        int err = n < 0 ? errno : 0;
        ::close(fd_);
        fd_ = -1;
        throw RpcException(
            err ? fmt::format("Connection error while reading response: {}", errno_text(err))
                : "Connection closed with partial response:\n" + buf_ + "\n");
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  ClientOptions opts_;
  int fd_ = -1;
  int request_id_ = 0;
  std::string buf_;
};

class DryRunClient : public Client {
 public:
  Json call(const std::string& method, const Json& params, bool send_empty_params) override {
    Json req;
    req["method"] = method;
    req["params"] = (params.is_null() || (params.empty() && !send_empty_params)) ? Json() : params;
    std::cout << "Request:\n" << py_dumps(req, 2) << std::endl;
    return Json();
  }
  bool dry_run() const override { return true; }
};

}  // namespace

std::unique_ptr<Client> make_socket_client(const ClientOptions& opts) {
  return std::make_unique<SocketClient>(opts);
}

std::unique_ptr<Client> make_dry_run_client() {
  return std::make_unique<DryRunClient>();
}

}  // namespace nvemu::rpccli
