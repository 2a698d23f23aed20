#include "nvmf/tcp/transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "nvmf/target.h"
#include "nvmf/tcp/tcp.h"
#include "reactor/reactor.h"
#include "reactor/sock_opts.h"

namespace nvemu::nvmf::tcp {

namespace {

// rpc.py sends every nvmf_create_transport flag, also those of RDMA and
// VFIOUSER; SPDK's TCP transport ignores them, and so does nvemu's. A key
// no transport knows is still an error.
bool is_other_transports_option(const std::string& k) {
  static const char* kKeys[] = {"no_srq",
                                "max_srq_depth",
                                "num_cqe",
                                "acceptor_backlog",
                                "no_wr_batching",
                                "disable_mappable_bar0",
                                "disable_adaptive_irq",
                                "disable_shadow_doorbells",
                                "ack_timeout",
                                "data_wr_pool_size",
                                "tgt_name"};
  for (const char* key : kKeys)
    if (k == key) return true;
  return false;
}

bool iequals(const std::string& a, const char* b) {
  return strcasecmp(a.c_str(), b) == 0;
}

// Parses adrfam/traddr/trsvcid into a sockaddr. Returns "" or why not.
std::string to_sockaddr(const ListenAddress& a, sockaddr_storage* ss, socklen_t* len) {
  char* end = nullptr;
  errno = 0;
  unsigned long port = std::strtoul(a.trsvcid.c_str(), &end, 10);
  if (a.trsvcid.empty() || *end || errno || port > 65535)
    return "trsvcid '" + a.trsvcid + "' is not a TCP port number (0-65535)";
  std::memset(ss, 0, sizeof *ss);
  bool v6 =
      iequals(a.adrfam, "IPv6") || (a.adrfam.empty() && a.traddr.find(':') != std::string::npos);
  if (!v6 && !a.adrfam.empty() && !iequals(a.adrfam, "IPv4"))
    return "adrfam '" + a.adrfam + "' is not supported by TCP (use IPv4 or IPv6)";
  if (v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, a.traddr.c_str(), &s6->sin6_addr) != 1)
      return "traddr '" + a.traddr + "' is not an IPv6 address";
    *len = sizeof *s6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, a.traddr.c_str(), &s4->sin_addr) != 1)
      return "traddr '" + a.traddr + "' is not an IPv4 address";
    *len = sizeof *s4;
  }
  return "";
}

ListenAddress from_sockaddr(const sockaddr_storage& ss) {
  ListenAddress a;
  a.trtype = "TCP";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    a.adrfam = "IPv6";
    a.trsvcid = std::to_string(ntohs(s6->sin6_port));
  } else {
    auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
    a.adrfam = "IPv4";
    a.trsvcid = std::to_string(ntohs(s4->sin_port));
  }
  a.traddr = buf;
  return a;
}

bool same_endpoint(const ListenAddress& a, const ListenAddress& b) {
  return a.traddr == b.traddr && a.trsvcid == b.trsvcid;
}

// Runs fn on the main reactor: now when already there, else as a message.
void on_main(std::function<void()> fn) {
  Reactor& main = ReactorSet::instance().main();
  if (main.on_thread())
    fn();
  else
    main.send(std::move(fn));
}

}  // namespace

std::string parse_tcp_options(const TransportOpts& o, TcpOptions* out) {
  TcpOptions t;
  t.base = o;
  if (o.max_queue_depth < 2 || o.max_queue_depth > 65536)
    return "max_queue_depth must be between 2 and 65536";
  if (o.max_aq_depth < 2 || o.max_aq_depth > 4096) return "max_aq_depth must be between 2 and 4096";
  if (o.max_io_size < 4096 || o.max_io_size > 4u * 1024 * 1024)
    return "max_io_size must be between 4096 and 4194304";
  if (o.in_capsule_data_size % 16)
    return "in_capsule_data_size must be a multiple of 16 (IOCCSZ is in 16-byte units)";
  if (o.in_capsule_data_size > o.max_io_size)
    return "in_capsule_data_size must not exceed max_io_size";
  if (o.io_unit_size == 0) return "io_unit_size must not be 0";
  for (auto it = o.specific.begin(); it != o.specific.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    if (k == "c2h_success") {
      if (!v.is_boolean()) return "c2h_success must be true or false";
      t.c2h_success = v.get<bool>();
    } else if (k == "sock_priority") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 16)
        return "sock_priority must be an integer between 0 and 16";
      t.sock_priority = v.get<int>();
    } else if (k == "control_msg_num") {
      if (!v.is_number_unsigned() || v.get<uint64_t>() == 0)
        return "control_msg_num must be a positive integer";
      t.control_msg_num = v.get<uint32_t>();
    } else if (!is_other_transports_option(k)) {
      return "unknown TCP transport option '" + k +
             "' (known: c2h_success, sock_priority, control_msg_num)";
    }
  }
  t.max_h2c_data = 131072;
  *out = std::move(t);
  return "";
}

TcpTransport::TcpTransport(TcpOptions opts)
    : Transport(opts.base), shared_(std::make_shared<TcpShared>(std::move(opts))) {}

TcpTransport::~TcpTransport() {
  bool running = ReactorSet::instance().created();
  for (Listener& l : listeners_) {
    int fd = l.fd;
    if (running && ReactorSet::instance().main().on_thread())
      ReactorSet::instance().main().remove_fd(fd);
    ::close(fd);
  }
  for (auto& c : shared_->snapshot()) c->request_close();
}

std::string TcpTransport::listen(const ListenAddress& addr) {
  if (!ReactorSet::instance().created()) return "no reactors are running";
  for (const Listener& l : listeners_)
    if (same_endpoint(l.addr, addr)) return "";  // SPDK: listening twice is not an error
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string err = to_sockaddr(addr, &ss, &len);
  if (!err.empty()) return err;
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket(): ") + strerror(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 512) != 0) {
    int e = errno;
    ::close(fd);
    return "cannot listen on " + addr.traddr + ":" + addr.trsvcid + ": " + strerror(e) +
           (e == EADDRINUSE ? " (another process or listener has this port)" : "");
  }
  listeners_.push_back({addr, fd});
  std::shared_ptr<TcpShared> shared = shared_;
  ListenAddress a = addr;
  a.trtype = "TCP";
  on_main([shared, a, fd] {
    ReactorSet::instance().main().add_fd(fd, EPOLLIN,
                                         [shared, a, fd](uint32_t) { on_accept(shared, a, fd); });
  });
  LOG_NOTICE("tcp", "NVMe/TCP Target Listening on {} port {}", addr.traddr, addr.trsvcid);
  return "";
}

void TcpTransport::on_accept(const std::shared_ptr<TcpShared>& shared, const ListenAddress& addr,
                             int lfd) {
  for (;;) {
    sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd =
        ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        LOG_WARN("tcp", "accept on {}:{}: {}", addr.traddr, addr.trsvcid, strerror(errno));
      return;
    }
    int one = 1;
    // Capsules are small and latency-bound: never wait for Nagle.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    apply_sock_opts(fd);
    if (shared->opts.sock_priority > 0) {
      int prio = shared->opts.sock_priority;
      setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio);
    }
    Reactor& r = ReactorSet::instance().next();
    auto conn = std::make_shared<TcpConnection>(shared, r, fd, addr, from_sockaddr(peer));
    shared->add(conn);
    r.send([conn] { conn->start(); });
  }
}

void TcpTransport::stop_listen(const ListenAddress& addr) {
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!same_endpoint(listeners_[i].addr, addr)) continue;
    int fd = listeners_[i].fd;
    listeners_.erase(listeners_.begin() + static_cast<long>(i));
    on_main([fd] {
      ReactorSet::instance().main().remove_fd(fd);
      ::close(fd);
    });
    LOG_NOTICE("tcp", "stopped listening on {} port {}", addr.traddr, addr.trsvcid);
    break;
  }
  // Hosts that came in through this address lose their queues (SPDK does
  // the same when a listener is removed).
  for (auto& c : shared_->snapshot())
    if (same_endpoint(c->listen_address(), addr)) c->request_close();
}

void TcpTransport::disconnect_subsystem(const std::string& nqn) {
  for (auto& c : shared_->snapshot()) {
    c->reactor().send([c, nqn] {
      if (c->subnqn() == nqn) c->disconnect();
    });
  }
}

nlohmann::json TcpTransport::stats_json() const {
  return {{"trtype", "TCP"}, {"connections", shared_->count()}, {"listeners", listeners_.size()}};
}

void register_transport() {
  Target& t = Target::instance();
  if (t.has_factory("TCP")) return;
  t.register_defaults("TCP", [](TransportOpts& o) {
    // SPDK v23.01 nvmf_tcp defaults.
    o.max_queue_depth = 128;
    o.max_io_qpairs_per_ctrlr = 127;
    o.in_capsule_data_size = 4096;
    o.max_io_size = 131072;
    o.io_unit_size = 131072;
    o.max_aq_depth = 128;
    o.num_shared_buffers = 511;
    o.buf_cache_size = 32;
    o.abort_timeout_sec = 1;
    if (!o.specific.is_object()) o.specific = nlohmann::json::object();
    if (!o.specific.contains("c2h_success")) o.specific["c2h_success"] = true;
    if (!o.specific.contains("sock_priority")) o.specific["sock_priority"] = 0;
  });
  t.register_factory("TCP",
                     [](TransportOpts opts, std::string* error) -> std::unique_ptr<Transport> {
                       TcpOptions tcp;
                       std::string err = parse_tcp_options(opts, &tcp);
                       if (!err.empty()) {
                         if (error) *error = "TCP transport: " + err;
                         return nullptr;
                       }
                       return std::make_unique<TcpTransport>(std::move(tcp));
                     });
}

}  // namespace nvemu::nvmf::tcp
