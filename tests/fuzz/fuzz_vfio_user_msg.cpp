// libFuzzer target: vfio-user requests into a live Endpoint (function with
// a controller, no namespaces). The input is a sequence of messages, each
// a 16-byte header followed by msg_size-16 bytes of payload; a header the
// stream reader would reject ends the input (the real server closes the
// client there). Replies go to a socketpair that is drained after each one.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "nvmf/subsystem.h"
#include "nvmf/transport.h"
#include "nvmf/vfio_user/endpoint.h"
#include "reactor/reactor.h"
#include "wire/vfio_user/msg_socket.h"

using namespace nvemu;
using namespace nvemu::vfio_user;

namespace {
struct Env {
  Reactor reactor{0, 0};
  std::shared_ptr<nvmf::Subsystem> subsys =
      std::make_shared<nvmf::Subsystem>("nqn.2016-06.io.nvemu:fuzz", nvmf::Subsystem::Type::kNvme);
  std::shared_ptr<Endpoint> ep;
  int peer = -1;
  Env() {
    std::string dir = "/tmp/nvemu-fuzz-vfu-" + std::to_string(getpid());
    nvmf::TransportOpts opts;
    opts.trtype = "VFIOUSER";
    std::string err;
    ep = Endpoint::create(dir, subsys, reactor, opts, &err);
    if (!ep) abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) abort();
    ep->attach_client(sv[0]);
    peer = sv[1];
  }
  void drain() {
    char buf[65536];
    while (read(peer, buf, sizeof buf) > 0) {
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env env;
  {
    // Every input starts from a negotiated session.
    Message v;
    v.hdr = {1, kVersion, sizeof(Header) + 4, kFlagRequest, 0};
    v.payload = {0, 0, 1, 0};
    env.ep->handle_message(v);
    env.drain();
  }
  while (size >= sizeof(Header)) {
    Message m;
    std::memcpy(&m.hdr, data, sizeof m.hdr);
    if (!validate_header(m.hdr, 1u << 16).empty()) break;
    size_t body = m.hdr.msg_size - sizeof(Header);
    if (body > size - sizeof(Header)) break;
    m.payload.assign(data + sizeof(Header), data + sizeof(Header) + body);
    data += sizeof(Header) + body;
    size -= sizeof(Header) + body;
    env.ep->handle_message(m);
    env.drain();
  }
  // Back to a clean device for the next input.
  Message r;
  r.hdr = {2, kDeviceReset, sizeof(Header), kFlagRequest, 0};
  env.ep->handle_message(r);
  Message u;
  DmaUnmap all{sizeof(DmaUnmap), kDmaUnmapAll, 0, 0};
  u.hdr = {3, kDmaUnmap, sizeof(Header) + sizeof all, kFlagRequest, 0};
  u.payload.resize(sizeof all);
  std::memcpy(u.payload.data(), &all, sizeof all);
  env.ep->handle_message(u);
  env.drain();
  return 0;
}
