// nvemu-host: a small diagnostic NVMe host over nvemu's own initiators.
//
//   nvemu-host -r 'trtype:VFIOUSER traddr:DIR' identify
//   nvemu-host -r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN'
//              write-verify --nsid 1 --lba 0 --blocks 2048 --seed 7
//   nvemu-host -r ... read --nsid 1 --lba 0 --blocks 8 --out FILE
//   nvemu-host -r ... hold --seconds 30
//
// Every command attaches, enables the controller (CC.EN=1, CSTS.RDY) and
// creates I/O queue 1. Results go to stdout as one JSON object; errors to
// stderr. Exit status: 0 ok, 1 data mismatch or command failure, 2 usage.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "host_ctrl.h"
#include "nvme/identify.h"

using json = nlohmann::ordered_json;
using namespace nvemu;
using nvemu::hosttool::HostCtrl;

namespace {

const char* kUsage =
    "usage: nvemu-host -r TRID [--hostnqn NQN] COMMAND [options]\n"
    "  TRID: 'trtype:VFIOUSER traddr:DIR' or\n"
    "        'trtype:TCP adrfam:IPv4 traddr:ADDR trsvcid:PORT subnqn:NQN'\n"
    "commands:\n"
    "  identify                                     controller and namespaces as JSON\n"
    "  write-verify --nsid N --lba L --blocks B [--seed S]\n"
    "                                               write a pattern, read back, compare\n"
    "  read --nsid N --lba L --blocks B --out FILE  read blocks into FILE ('-': stdout)\n"
    "  flush --nsid N                               NVM Flush\n"
    "  write-zeroes --nsid N --lba L --blocks B     Write Zeroes (in 64K-block commands)\n"
    "  deallocate --nsid N --lba L --blocks B       Dataset Management, deallocate\n"
    "  hold [--seconds N]                           keep the controller attached and\n"
    "                                               enabled (0: until SIGTERM/SIGINT)\n";

volatile std::sig_atomic_t g_stop = 0;

struct Usage {
  std::string what;
};

struct Args {
  std::string trid, hostnqn, command, out;
  uint32_t nsid = 1;
  uint64_t lba = 0, blocks = 0, seed = 1, seconds = 0;
  bool has_blocks = false;
};

uint64_t number(const std::string& opt, const char* v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 0);
  if (errno || !*v || *end || *v == '-')
    throw Usage{fmt::format("{}: '{}' is not a number", opt, v)};
  return n;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string o = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw Usage{o + " needs a value"};
      return argv[++i];
    };
    if (o == "-h" || o == "--help") throw Usage{};
    if (o == "-r" || o == "--trid")
      a.trid = value();
    else if (o == "--hostnqn")
      a.hostnqn = value();
    else if (o == "--nsid" || o == "-n") {
      uint64_t n = number(o, value());
      if (n == 0 || n > 0xfffffffe) throw Usage{"--nsid must be 1..4294967294"};
      a.nsid = static_cast<uint32_t>(n);
    } else if (o == "--lba")
      a.lba = number(o, value());
    else if (o == "--blocks") {
      a.blocks = number(o, value());
      a.has_blocks = true;
    } else if (o == "--seed")
      a.seed = number(o, value());
    else if (o == "--seconds")
      a.seconds = number(o, value());
    else if (o == "--out" || o == "-o")
      a.out = value();
    else if (!o.empty() && o[0] != '-' && a.command.empty())
      a.command = o;
    else
      throw Usage{fmt::format("unexpected argument '{}'", o)};
  }
  if (a.trid.empty()) throw Usage{"-r TRID is required"};
  if (a.command.empty()) throw Usage{"a command is required"};
  return a;
}

std::string trimmed(const char* p, size_t n) {
  std::string s(p, strnlen(p, n));
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

struct NsInfo {
  uint64_t nsze = 0;
  uint32_t block_size = 0;
  json j;
};

NsInfo ns_info(HostCtrl& c, uint32_t nsid) {
  nvme::IdentifyNamespace ns{};
  if (auto err = c.identify(0, nsid, &ns); !err.empty())
    throw std::runtime_error(fmt::format("Identify Namespace {}: {}", nsid, err));
  NsInfo r;
  uint8_t fmt_idx = (ns.flbas & 0xf) | ((ns.flbas >> 1) & 0x30);
  uint8_t lbads = ns.lbaf[fmt_idx & 63].lbads;
  if (ns.nsze == 0 || lbads < 9 || lbads > 16)
    throw std::runtime_error(
        fmt::format("namespace {} is not active (nsze {}, lbads {})", nsid, ns.nsze, lbads));
  r.nsze = ns.nsze;
  r.block_size = 1u << lbads;
  r.j = {{"nsid", nsid},     {"nsze", ns.nsze}, {"ncap", ns.ncap},
         {"nuse", ns.nuse},  {"lbads", lbads},  {"block_size", r.block_size},
         {"flbas", ns.flbas}};
  // The identifiers a host keys the namespace by (Linux compares them on
  // every rescan: "identifiers changed for nsid N").
  auto hex = [](const uint8_t* p, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
    return out;
  };
  r.j["nguid"] = hex(ns.nguid, sizeof ns.nguid);
  r.j["eui64"] = hex(ns.eui64, sizeof ns.eui64);
  std::vector<uint8_t> desc(4096);
  if (c.identify(3, nsid, desc.data()).empty()) {
    for (size_t off = 0; off + 4 <= desc.size() && desc[off] != 0;) {
      uint8_t type = desc[off], len = desc[off + 1];
      if (off + 4 + len > desc.size()) break;
      if (type == 3 && len == 16) {  // NIDT UUID
        std::string u = hex(&desc[off + 4], 16);
        r.j["uuid"] = u.substr(0, 8) + "-" + u.substr(8, 4) + "-" + u.substr(12, 4) + "-" +
                      u.substr(16, 4) + "-" + u.substr(20);
      }
      off += 4 + len;
    }
  }
  return r;
}

// Bytes one command may move: the transport's limit and MDTS (CAP.MPSMIN
// 4 KiB is assumed, as nvemu reports it).
uint32_t chunk_bytes(HostCtrl& c) {
  nvme::IdentifyController id{};
  if (auto err = c.identify(1, 0, &id); !err.empty())
    throw std::runtime_error("Identify Controller: " + err);
  uint64_t n = c.max_transfer();
  if (id.mdts && id.mdts < 32) n = std::min<uint64_t>(n, 4096ull << id.mdts);
  return static_cast<uint32_t>(n);
}

int cmd_identify(HostCtrl& c, const Args&) {
  nvme::IdentifyController id{};
  if (auto err = c.identify(1, 0, &id); !err.empty())
    throw std::runtime_error("Identify Controller: " + err);
  json out = {{"vid", fmt::format("{:#06x}", id.vid)},
              {"ssvid", fmt::format("{:#06x}", id.ssvid)},
              {"sn", trimmed(id.sn, sizeof id.sn)},
              {"mn", trimmed(id.mn, sizeof id.mn)},
              {"fr", trimmed(id.fr, sizeof id.fr)},
              {"cntlid", id.cntlid},
              {"mdts", id.mdts},
              {"crdt", {id.crdt[0], id.crdt[1], id.crdt[2]}},
              {"ver", fmt::format("{}.{}.{}", id.ver >> 16, (id.ver >> 8) & 0xff, id.ver & 0xff)},
              {"subnqn", trimmed(id.subnqn, sizeof id.subnqn)},
              {"nn", id.nn}};
  // Active namespace list (CNS 02h); a 1.0 controller without it: 1..NN.
  std::vector<uint32_t> list(1024);
  std::vector<uint32_t> nsids;
  if (c.identify(2, 0, list.data()).empty()) {
    for (uint32_t n : list)
      if (n) nsids.push_back(n);
  } else {
    for (uint32_t n = 1; n <= std::min<uint32_t>(id.nn, 1024); ++n) nsids.push_back(n);
  }
  out["namespaces"] = json::array();
  for (uint32_t n : nsids) out["namespaces"].push_back(ns_info(c, n).j);
  std::puts(out.dump(2).c_str());
  return 0;
}

// The pattern depends only on the seed and the absolute byte address, so
// any range can be verified against any other write of the same seed.
uint64_t pattern_word(uint64_t seed, uint64_t word_index) {
  uint64_t z = seed + (word_index + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fill(uint8_t* p, uint32_t len, uint64_t seed, uint64_t byte_addr) {
  for (uint32_t off = 0; off < len; off += 8) {
    uint64_t w = pattern_word(seed, (byte_addr + off) / 8);
    std::memcpy(p + off, &w, 8);
  }
}

struct Range {
  uint32_t nsid, bs, chunk_blocks;
  uint64_t lba, blocks;
};

Range range(HostCtrl& c, const Args& a) {
  if (!a.has_blocks || a.blocks == 0) throw Usage{"--blocks N (N > 0) is required"};
  NsInfo ns = ns_info(c, a.nsid);
  if (a.lba >= ns.nsze || a.blocks > ns.nsze - a.lba)
    throw std::runtime_error(fmt::format("LBA range {}+{} is outside namespace {} ({} blocks)",
                                         a.lba, a.blocks, a.nsid, ns.nsze));
  uint32_t chunk = chunk_bytes(c);
  if (chunk < ns.block_size) throw std::runtime_error("transfer limit is below one block");
  return {a.nsid, ns.block_size, chunk / ns.block_size, a.lba, a.blocks};
}

template <typename Fn>
void for_chunks(const Range& r, Fn fn) {
  for (uint64_t done = 0; done < r.blocks;) {
    auto n = static_cast<uint32_t>(std::min<uint64_t>(r.chunk_blocks, r.blocks - done));
    fn(r.lba + done, n, done * r.bs);
    done += n;
  }
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int cmd_write_verify(HostCtrl& c, const Args& a) {
  Range r = range(c, a);
  std::vector<uint8_t> buf(size_t{r.chunk_blocks} * r.bs), want(buf.size());
  auto t0 = std::chrono::steady_clock::now();
  for_chunks(r, [&](uint64_t lba, uint32_t n, uint64_t) {
    uint32_t len = n * r.bs;
    fill(buf.data(), len, a.seed, lba * r.bs);
    if (auto err = c.rw(true, r.nsid, lba, n, buf.data(), len); !err.empty())
      throw std::runtime_error(fmt::format("LBA {}+{}: {}", lba, n, err));
  });
  double write_s = since(t0);
  t0 = std::chrono::steady_clock::now();
  json out = {{"nsid", r.nsid},           {"lba", r.lba},
              {"blocks", r.blocks},       {"block_size", r.bs},
              {"bytes", r.blocks * r.bs}, {"seed", a.seed}};
  bool ok = true;
  for_chunks(r, [&](uint64_t lba, uint32_t n, uint64_t byte_off) {
    if (!ok) return;
    uint32_t len = n * r.bs;
    std::memset(buf.data(), 0, len);
    if (auto err = c.rw(false, r.nsid, lba, n, buf.data(), len); !err.empty())
      throw std::runtime_error(fmt::format("LBA {}+{}: {}", lba, n, err));
    fill(want.data(), len, a.seed, lba * r.bs);
    if (std::memcmp(buf.data(), want.data(), len) == 0) return;
    uint32_t i = 0;
    while (buf[i] == want[i]) ++i;
    ok = false;
    out["mismatch_offset"] = byte_off + i;
    out["mismatch_lba"] = lba + i / r.bs;
    out["expected"] = fmt::format("{:#04x}", want[i]);
    out["got"] = fmt::format("{:#04x}", buf[i]);
  });
  out["ok"] = ok;
  out["write_seconds"] = write_s;
  out["read_seconds"] = since(t0);
  std::puts(out.dump(2).c_str());
  if (!ok)
    std::fprintf(stderr,
                 "nvemu-host: data mismatch at byte offset %llu from LBA %llu (in LBA %llu): "
                 "expected %s, read %s\n",
                 static_cast<unsigned long long>(out["mismatch_offset"].get<uint64_t>()),
                 static_cast<unsigned long long>(r.lba),
                 static_cast<unsigned long long>(out["mismatch_lba"].get<uint64_t>()),
                 out["expected"].get<std::string>().c_str(), out["got"].get<std::string>().c_str());
  return ok ? 0 : 1;
}

int cmd_read(HostCtrl& c, const Args& a) {
  if (a.out.empty()) throw Usage{"read needs --out FILE ('-' for stdout)"};
  Range r = range(c, a);
  FILE* f = a.out == "-" ? stdout : std::fopen(a.out.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: {}", a.out, strerror(errno)));
  std::vector<uint8_t> buf(size_t{r.chunk_blocks} * r.bs);
  for_chunks(r, [&](uint64_t lba, uint32_t n, uint64_t) {
    uint32_t len = n * r.bs;
    if (auto err = c.rw(false, r.nsid, lba, n, buf.data(), len); !err.empty())
      throw std::runtime_error(fmt::format("LBA {}+{}: {}", lba, n, err));
    if (std::fwrite(buf.data(), 1, len, f) != len)
      throw std::runtime_error(fmt::format("{}: {}", a.out, strerror(errno)));
  });
  if (f != stdout && std::fclose(f) != 0)
    throw std::runtime_error(fmt::format("{}: {}", a.out, strerror(errno)));
  if (a.out != "-")
    std::puts(json({{"nsid", r.nsid},
                    {"lba", r.lba},
                    {"blocks", r.blocks},
                    {"bytes", r.blocks * r.bs},
                    {"out", a.out}})
                  .dump()
                  .c_str());
  return 0;
}

int cmd_flush(HostCtrl& c, const Args& a) {
  nvme::Sqe sqe{};
  sqe.opc = 0x00;
  sqe.nsid = a.nsid;
  if (auto err = c.io_cmd("Flush", sqe, nullptr, 0); !err.empty()) throw std::runtime_error(err);
  std::puts(json({{"nsid", a.nsid}, {"flushed", true}}).dump().c_str());
  return 0;
}

// Write Zeroes (opcode 08h) or Dataset Management deallocate (09h) of a
// range, in commands of at most 65536 blocks (NLB is 16 bits).
int zero_range(HostCtrl& c, const Args& a, bool dsm) {
  Range r = range(c, a);
  for (uint64_t done = 0; done < r.blocks;) {
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(65536, r.blocks - done));
    uint64_t lba = r.lba + done;
    nvme::Sqe sqe{};
    sqe.nsid = r.nsid;
    std::string err;
    if (dsm) {
      // One range: context attributes, length in blocks (1-based), SLBA.
      struct {
        uint32_t cattr, nlb;
        uint64_t slba;
      } range{0, n, lba};
      sqe.opc = 0x09;
      sqe.cdw10 = 0;       // one range (NR is 0-based)
      sqe.cdw11 = 1 << 2;  // AD: deallocate
      err = c.io_cmd("Dataset Management", sqe, &range, sizeof range);
    } else {
      sqe.opc = 0x08;
      sqe.cdw10 = static_cast<uint32_t>(lba);
      sqe.cdw11 = static_cast<uint32_t>(lba >> 32);
      sqe.cdw12 = n - 1;
      err = c.io_cmd("Write Zeroes", sqe, nullptr, 0);
    }
    if (!err.empty()) throw std::runtime_error(fmt::format("LBA {}+{}: {}", lba, n, err));
    done += n;
  }
  std::puts(json({{"nsid", r.nsid},
                  {"lba", r.lba},
                  {"blocks", r.blocks},
                  {dsm ? "deallocated" : "zeroed", true}})
                .dump()
                .c_str());
  return 0;
}

int cmd_write_zeroes(HostCtrl& c, const Args& a) {
  return zero_range(c, a, false);
}

int cmd_deallocate(HostCtrl& c, const Args& a) {
  return zero_range(c, a, true);
}

int cmd_hold(HostCtrl& c, const Args& a) {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("%s\n",
              json({{"held", true}, {"pid", getpid()}, {"seconds", a.seconds}}).dump().c_str());
  std::fflush(stdout);
  auto t0 = std::chrono::steady_clock::now();
  auto next_tick = t0;
  while (!g_stop && (a.seconds == 0 || since(t0) < static_cast<double>(a.seconds))) {
    if (std::chrono::steady_clock::now() >= next_tick) {
      if (auto err = c.tick(); !err.empty())
        throw std::runtime_error("the controller went away while held: " + err);
      next_tick += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "nvemu-host: releasing the controller (%s)\n",
               g_stop ? "signal" : "time is up");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // help2man reads the man page's name line from --version.
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf("nvemu-host %s\nNVMe host (initiator) over NVMe/TCP and vfio-user\n",
                NVEMU_VERSION);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  Args a;
  try {
    a = parse(argc, argv);
  } catch (const Usage& u) {
    if (!u.what.empty()) std::fprintf(stderr, "nvemu-host: %s\n", u.what.c_str());
    std::fputs(kUsage, u.what.empty() ? stdout : stderr);
    return u.what.empty() ? 0 : 2;
  }
  using Command = int (*)(HostCtrl&, const Args&);
  static const std::map<std::string, Command> kCommands = {{"identify", cmd_identify},
                                                           {"write-verify", cmd_write_verify},
                                                           {"read", cmd_read},
                                                           {"flush", cmd_flush},
                                                           {"write-zeroes", cmd_write_zeroes},
                                                           {"deallocate", cmd_deallocate},
                                                           {"hold", cmd_hold}};
  auto cmd = kCommands.find(a.command);
  if (cmd == kCommands.end()) {
    std::fprintf(stderr, "nvemu-host: unknown command '%s'\n%s", a.command.c_str(), kUsage);
    return 2;
  }
  hosttool::Trid trid;
  if (auto err = hosttool::parse_trid(a.trid, &trid); !err.empty()) {
    std::fprintf(stderr, "nvemu-host: transport ID '%s': %s\n", a.trid.c_str(), err.c_str());
    return 2;
  }
  std::string err;
  auto ctrl = HostCtrl::open(trid, a.hostnqn, &err);
  if (!ctrl) {
    std::fprintf(stderr, "nvemu-host: %s\n", err.c_str());
    return 1;
  }
  int rc = 1;
  try {
    rc = cmd->second(*ctrl, a);
  } catch (const Usage& u) {
    std::fprintf(stderr, "nvemu-host: %s\n", u.what.c_str());
    rc = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nvemu-host: %s\n", e.what());
    rc = 1;
  }
  ctrl->close();
  return rc;
}
