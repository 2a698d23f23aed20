#include <fmt/format.h>
#include <getopt.h>

#include <cstdlib>
#include <cstring>

#include "app/app.h"

namespace nvemu::app {
namespace {

constexpr const char* kUsage = R"(Usage: {0} [options]

An NVMe controller emulator with SPDK's control plane: configure it over
JSON-RPC (nvemu-rpc, SPDK's rpc.py or any JSON-RPC client) and reach its
controllers over NVMe/TCP or as a PCIe function over vfio-user.

Options (as SPDK's application framework):
  -m, --cpumask MASK      cores to run reactors on: hex mask (0x3) or list ([0,1], [0-3]) [0x1]
  -p, --main-core N       core of the main reactor, which also serves RPC [lowest in mask]
  -s, --mem-size MB       memory the app may use; checked against free hugepages
                          when hugepages are configured (nvemu never needs them)
      --no-pci            accepted for compatibility (nvemu never scans PCI)
      --wait-for-rpc      wait for framework_start_init before initializing
  -r, --rpc-socket PATH   JSON-RPC Unix socket [/var/tmp/spdk.sock], created mode 0600
      --rpc-socket-group G  let group G use the socket too (mode 0660)
      --rpc-max-request-bytes N  refuse larger requests and close the connection [4194304]
  -c, --json FILE         replay a configuration written by save_config
      --config-autosave FILE
                          keep FILE equal to save_config after every change (atomic
                          rename); restart with -c FILE to restore the same state
  -L, --logflag FLAG      debug log for a component (rpc, nvmf, tcp, vfio_user, bdev, ...; all)
      --metrics IP:PORT   serve Prometheus metrics over HTTP at http://IP:PORT/metrics
                          (off by default; e.g. --metrics 127.0.0.1:9464)
  -h, --help              display this help and exit
  -V, --version           output version information and exit

Under systemd (Type=notify) it reports READY=1 once the RPC socket answers and
STOPPING=1 on shutdown; with JOURNAL_STREAM set, log lines carry their priority.
The DOCA emulation functions' sockets go to $NVEMU_DOCA_DIR [/var/tmp/nvemu-doca].

Example (the DOCA NVMe Emulation record's command line):
  {0} -m 0x3 --main-core 0 -s 1024 --no-pci --wait-for-rpc
)";

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno || !end || *end || *s == '-') return false;
  *out = v;
  return true;
}

}  // namespace

bool parse_options(int argc, char** argv, Options* o, std::string* message, int* exit_code) {
  enum {
    kNoPci = 256,
    kWaitForRpc,
    kMainCore,
    kHugeUnlink,
    kNoHuge,
    kRpcGroup,
    kRpcMax,
    kAutosave,
    kMetrics
  };
  static const struct option kLong[] = {
      {"cpumask", required_argument, nullptr, 'm'},
      {"main-core", required_argument, nullptr, 'p'},
      {"master-core", required_argument, nullptr, kMainCore},
      {"mem-size", required_argument, nullptr, 's'},
      {"no-pci", no_argument, nullptr, kNoPci},
      {"wait-for-rpc", no_argument, nullptr, kWaitForRpc},
      {"rpc-socket", required_argument, nullptr, 'r'},
      {"rpc-socket-group", required_argument, nullptr, kRpcGroup},
      {"rpc-max-request-bytes", required_argument, nullptr, kRpcMax},
      {"json", required_argument, nullptr, 'c'},
      {"config", required_argument, nullptr, 'c'},
      {"logflag", required_argument, nullptr, 'L'},
      {"config-autosave", required_argument, nullptr, kAutosave},
      {"huge-unlink", no_argument, nullptr, kHugeUnlink},
      {"no-huge", no_argument, nullptr, kNoHuge},
      {"metrics", required_argument, nullptr, kMetrics},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0}};
  // The bare name: help2man copies the usage line into the man page.
  const char* prog = argc > 0 ? argv[0] : "nvemu-tgt";
  if (const char* slash = std::strrchr(prog, '/')) prog = slash + 1;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":m:p:s:r:c:L:hV", kLong, nullptr)) != -1) {
    uint64_t v;
    switch (c) {
      case 'm':
        o->cpumask = optarg;
        break;
      case 'p':
      case kMainCore:
        if (!parse_u64(optarg, &v) || v > 1023) {
          *message = fmt::format("--main-core '{}' is not a core number", optarg);
          *exit_code = 1;
          return false;
        }
        o->main_core = static_cast<int>(v);
        break;
      case 's':
        if (!parse_u64(optarg, &v) || v == 0) {
          *message =
              fmt::format("-s/--mem-size '{}' must be a number of megabytes, e.g. -s 1024", optarg);
          *exit_code = 1;
          return false;
        }
        o->mem_size_mb = v;
        break;
      case kNoPci:
        o->no_pci = true;
        break;
      case kWaitForRpc:
        o->wait_for_rpc = true;
        break;
      case kHugeUnlink:
      case kNoHuge:
        break;
      case 'r':
        o->rpc_socket = optarg;
        break;
      case kAutosave:
        o->config_autosave = optarg;
        break;
      case kRpcGroup:
        o->rpc_socket_group = optarg;
        break;
      case kRpcMax: {
        uint64_t v = 0;
        if (!parse_u64(optarg, &v) || v < 1024) {
          *message = fmt::format(
              "--rpc-max-request-bytes '{}' must be a number of bytes, at "
              "least 1024",
              optarg);
          *exit_code = 1;
          return false;
        }
        o->rpc_max_request_bytes = v;
        break;
      }
      case 'c':
        o->json_config = optarg;
        break;
      case 'L':
        o->log_flags.push_back(optarg);
        break;
      case kMetrics:
        o->metrics_addr = optarg;
        break;
      case 'V':
        *message = fmt::format("nvemu-tgt {}\nSPDK v23.01 compatible NVMe emulation target\n",
                               NVEMU_VERSION);
        *exit_code = 0;
        return false;
      case 'h':
        *message = fmt::format(kUsage, prog);
        *exit_code = 0;
        return false;
      case ':':
        *message = fmt::format("option {} needs a value\n\n{}", argv[optind - 1],
                               fmt::format(kUsage, prog));
        *exit_code = 1;
        return false;
      default:
        *message =
            fmt::format("unknown option {}\n\n{}", argv[optind - 1], fmt::format(kUsage, prog));
        *exit_code = 1;
        return false;
    }
  }
  if (optind < argc) {
    *message = fmt::format("unexpected argument '{}'; see {} -h", argv[optind], prog);
    *exit_code = 1;
    return false;
  }
  return true;
}

}  // namespace nvemu::app
