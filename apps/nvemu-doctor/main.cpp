// nvemu-doctor: answers "why doesn't this work" before and after nvemu-tgt
// starts. Reads the system (hugepages, sockets, cpus, ports), asks a running
// target over RPC (DOCA functions), and explains a log's known error lines.
// Changes nothing.
#include <fmt/format.h>
#include <getopt.h>

#include <cstdlib>
#include <cstring>

#include "checks.h"

namespace {

constexpr const char* kUsage = R"(Usage: {0} [options]

Checks what nvemu-tgt (or an SPDK target) needs and finds what stops it: free
hugepages against -s (per NUMA node, who holds them, hugetlbfs), RPC sockets
(live with owner pid and command line, or stale), the cpu mask against online
and isolated cpus, NVMe/TCP ports in use and by whom, and the DOCA emulation
functions of a running target with their states and holders. Each problem
comes with its fix. Nothing on the system is changed.

Options:
  -s, --mem-size MB     the -s nvemu-tgt is (or will be) started with
  -m, --cpumask MASK    the -m it is started with [0x1]
  -r, --rpc-socket PATH an RPC socket to check (repeatable)
                        [/var/tmp/spdk.sock and /run/nvemu/spdk.sock]
  -p, --port PORT       a TCP listener port to check (repeatable) [4420]
  -b, --before-start    a target is about to start on these sockets and ports:
                        one in use, even by a healthy daemon, is a problem
                        (the record's "socket path ... in use") rather than a
                        warning
  -e, --explain FILE    map a log's known error lines (EAL, RPC socket, DOCA,
                        firmware BAD_RES_STATE_ERR, pasted lspci -k and
                        mlxconfig -q) to cause and fix; only this is done
  -j, --json            print the findings as JSON
  -h, --help            display this help and exit
  -V, --version         output version information and exit

Exit status:
  0  no problem found (warnings may be printed)
  1  at least one problem found
  2  some check could not be made, and no problem was found

Environment:
  NVEMU_MEMINFO         read this file instead of /proc/meminfo (replays a
                        record's numbers)

Examples:
  {0} -s 1024 -m 0x3
  {0} -b -s 1024 -m 0x3 -r /var/tmp/spdk.sock   (before starting a target)
  {0} --explain /tmp/nvme_emulation.log
)";

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno || !end || *end || *s == '-' || !*s) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nvemu::doctor;
  const char* prog = std::strrchr(argv[0], '/') ? std::strrchr(argv[0], '/') + 1 : argv[0];
  Options o;
  bool ports_given = false;
  static const struct option kLong[] = {{"mem-size", required_argument, nullptr, 's'},
                                        {"cpumask", required_argument, nullptr, 'm'},
                                        {"rpc-socket", required_argument, nullptr, 'r'},
                                        {"port", required_argument, nullptr, 'p'},
                                        {"before-start", no_argument, nullptr, 'b'},
                                        {"explain", required_argument, nullptr, 'e'},
                                        {"json", no_argument, nullptr, 'j'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":s:m:r:p:be:jhV", kLong, nullptr)) != -1) {
    uint64_t v;
    switch (c) {
      case 's':
        if (!parse_u64(optarg, &v) || v == 0) {
          fmt::print(stderr, "{}: -s '{}' must be a number of megabytes, e.g. -s 1024\n", prog,
                     optarg);
          return 2;
        }
        o.mem_mb = v;
        break;
      case 'm':
        o.cpumask = optarg;
        break;
      case 'r':
        o.sockets.push_back(optarg);
        break;
      case 'p':
        if (!parse_u64(optarg, &v) || v == 0 || v > 65535) {
          fmt::print(stderr, "{}: -p '{}' must be a TCP port (1-65535)\n", prog, optarg);
          return 2;
        }
        if (!ports_given) o.ports.clear();
        ports_given = true;
        o.ports.push_back(static_cast<uint16_t>(v));
        break;
      case 'b':
        o.before_start = true;
        break;
      case 'e':
        o.explain = optarg;
        break;
      case 'j':
        o.json = true;
        break;
      case 'h':
        fmt::print(kUsage, prog);
        return 0;
      case 'V':
        fmt::print("nvemu-doctor {}\nchecks and explains nvemu and SPDK target set-ups\n",
                   NVEMU_VERSION);
        return 0;
      case ':':
        fmt::print(stderr, "{}: option {} needs a value; see {} --help\n", prog, argv[optind - 1],
                   prog);
        return 2;
      default:
        fmt::print(stderr, "{}: unknown option {}; see {} --help\n", prog, argv[optind - 1], prog);
        return 2;
    }
  }
  if (optind < argc) {
    fmt::print(stderr, "{}: unexpected argument '{}'; see {} --help\n", prog, argv[optind], prog);
    return 2;
  }

  Findings f;
  if (!o.explain.empty()) {
    explain_log(o.explain, &f);
  } else {
    check_hugepages(o, &f);
    check_cpumask(o, &f);
    std::vector<std::string> live = check_sockets(o, &f);
    check_ports(o, &f);
    check_doca(live, &f);
  }
  if (o.json)
    fmt::print("{}\n", render_json(f).dump(2));
  else
    fmt::print("{}", render_text(f));
  return exit_code(f);
}
