// rpc.py v23.01.1's parsers for bdev_nvme: set_options, set_hotplug,
// attach/detach/get/reset controller (same letters, types, params keys and
// "is not None" vs truthy rules as python/spdk/rpc/bdev.py and nvme.py).
#include "commands.h"

namespace nvemu::rpccli {
namespace {

constexpr ArgType kInt = ArgType::kInt;

Arg not_null(Arg a) {
  return a.when(Emit::kNotNull);
}

}  // namespace

std::vector<Command> nvme_commands() {
  return {
      {"bdev_nvme_set_options",
       "Set options for the bdev nvme type. This is startup command.",
       {opt("-a", "--action-on-timeout",
            "Action to take on command time out. Valid values are: none, reset, abort"),
        not_null(opt("-t", "--timeout-us",
                     "Timeout for each command, in microseconds. If 0, don't track timeouts.",
                     kInt)),
        not_null(opt("", "--timeout-admin-us",
                     "Timeout for each admin command, in microseconds. If 0, treat same as io "
                     "timeouts.",
                     kInt)),
        not_null(opt("-k", "--keep-alive-timeout-ms",
                     "Keep alive timeout period in millisecond. If 0, disable keep-alive.", kInt)),
        not_null(opt("-n", "--retry-count",
                     "the number of attempts per I/O when an I/O fails. (deprecated, please use "
                     "--transport-retry-count.)",
                     kInt)),
        not_null(opt("", "--arbitration-burst", "the value is expressed as a power of two", kInt)),
        not_null(opt("", "--low-priority-weight",
                     "the maximum number of commands that the controller may launch at one time "
                     "from a low priority queue",
                     kInt)),
        not_null(opt("", "--medium-priority-weight",
                     "the maximum number of commands that the controller may launch at one time "
                     "from a medium priority queue",
                     kInt)),
        not_null(opt("", "--high-priority-weight",
                     "the maximum number of commands that the controller may launch at one time "
                     "from a high priority queue",
                     kInt)),
        opt("-p", "--nvme-adminq-poll-period-us",
            "How often the admin queue is polled for asynchronous events", kInt),
        not_null(opt("-i", "--nvme-ioq-poll-period-us",
                     "How often to poll I/O queues for completions", kInt)),
        not_null(opt("-s", "--io-queue-requests",
                     "The number of requests allocated for each NVMe I/O queue. Default: 512",
                     kInt)),
        not_null(flag("-d", "--disable-delay-cmd-submit",
                      "Disable delaying NVMe command submission, i.e. no batching of multiple "
                      "commands",
                      true)
                     .dest("delay_cmd_submit")),
        not_null(opt("-c", "--transport-retry-count",
                     "the number of attempts per I/O in the transport layer when an I/O fails.",
                     kInt)),
        not_null(opt("-r", "--bdev-retry-count",
                     "the number of attempts per I/O in the bdev layer when an I/O fails. -1 "
                     "means infinite retries.",
                     kInt)),
        not_null(opt("-e", "--transport-ack-timeout",
                     "Time to wait ack until packet retransmission for RDMA or until closes "
                     "connection for TCP. Range 0-31 where 0 is driver-specific default value.",
                     kInt)),
        not_null(opt("-l", "--ctrlr-loss-timeout-sec",
                     "Time to wait until ctrlr is reconnected before deleting ctrlr. -1 means "
                     "infinite reconnect retries. 0 means no reconnect retry.",
                     kInt)),
        not_null(opt("-o", "--reconnect-delay-sec", "Time to delay a reconnect retry.", kInt)),
        not_null(opt("-u", "--fast-io-fail-timeout-sec",
                     "Time to wait until ctrlr is reconnected before failing I/O to ctrlr. 0 "
                     "means no such timeout.",
                     kInt)),
        not_null(flag("-f", "--disable-auto-failback", "Disable automatic failback.")),
        not_null(flag("", "--generate-uuids",
                      "Enable generation of unique identifiers for NVMe bdevs only if they do "
                      "not provide UUID themselves.")),
        not_null(opt("", "--transport-tos",
                     "IPv4 Type of Service value. Only applicable for RDMA transports.", kInt)),
        not_null(flag("-m", "--nvme-error-stat", "Enable collecting NVMe error counts.")),
        not_null(opt("-q", "--rdma-srq-size",
                     "Set the size of a shared rdma receive queue. Default: 0 (disabled)", kInt)),
        not_null(flag("", "--io-path-stat", "Enable collecting I/O path stat of each io path.")),
        opt("", "--dhchap-digests", "Comma-separated list of allowed DH-HMAC-CHAP digests").never(),
        opt("", "--dhchap-dhgroups", "Comma-separated list of allowed DH-HMAC-CHAP DH groups")
            .never()},
       Output::kNone,
       nullptr,
       [](const Namespace& a, Json& p) {
         put_comma_list(a, "dhchap_digests", p, "dhchap_digests");
         put_comma_list(a, "dhchap_dhgroups", p, "dhchap_dhgroups");
       }},
      {"bdev_nvme_set_hotplug",
       "Set hotplug options for bdev nvme type.",
       {not_null(flag("-d", "--disable", "Disable hotplug (default)", true).dest("enable")),
        not_null(flag("-e", "--enable", "Enable hotplug").dest("enable")),
        opt("-r", "--period-us", "How often the hotplug is processed for insert and remove events",
            kInt)}},
      {"bdev_nvme_attach_controller",
       "Add bdevs with nvme backend",
       {opt("-b", "--name", "Name of the NVMe controller, prefix for each bdev name").required(),
        opt("-t", "--trtype", "NVMe-oF target trtype: e.g., rdma, pcie").required(),
        opt("-a", "--traddr", "NVMe-oF target address: e.g., an ip address or BDF").required(),
        opt("-f", "--adrfam", "NVMe-oF target adrfam: e.g., ipv4, ipv6, ib, fc, intra_host"),
        opt("-s", "--trsvcid", "NVMe-oF target trsvcid: e.g., a port number"),
        opt("-p", "--priority", "NVMe-oF connection priority: e.g., a priority number"),
        opt("-n", "--subnqn", "NVMe-oF target subnqn"),
        opt("-q", "--hostnqn", "NVMe-oF host subnqn"),
        opt("-i", "--hostaddr", "NVMe-oF host address: e.g., an ip address"),
        opt("-c", "--hostsvcid", "NVMe-oF host svcid: e.g., a port number"),
        flag("-r", "--prchk-reftag", "Enable checking of PI reference tag for I/O processing."),
        flag("-g", "--prchk-guard", "Enable checking of PI guard for I/O processing."),
        flag("-e", "--hdgst", "Enable TCP header digest."),
        flag("-d", "--ddgst", "Enable TCP data digest."),
        opt("", "--fabrics-timeout", "Fabrics connect timeout in microseconds", kInt)
            .to("fabrics_connect_timeout_us"),
        opt("-x", "--multipath", "Set multipath behavior (disable, failover, multipath)"),
        opt("", "--num-io-queues", "Set the number of IO queues to request during initialization.",
            kInt),
        not_null(opt("-l", "--ctrlr-loss-timeout-sec",
                     "Time to wait until ctrlr is reconnected before deleting ctrlr. -1 means "
                     "infinite reconnect retries. 0 means no reconnect retry.",
                     kInt)),
        not_null(opt("-o", "--reconnect-delay-sec", "Time to delay a reconnect retry.", kInt)),
        not_null(opt("-u", "--fast-io-fail-timeout-sec",
                     "Time to wait until ctrlr is reconnected before failing I/O to ctrlr. 0 "
                     "means no such timeout.",
                     kInt)),
        opt("-k", "--psk",
            "Set PSK and enable TCP SSL socket implementation: e.g., 1234567890ABCDEF"),
        opt("", "--dhchap-key", "DH-HMAC-CHAP key name (keyring)"),
        opt("", "--dhchap-ctrlr-key", "DH-HMAC-CHAP controller key name (keyring)")},
       Output::kArray},
      {"bdev_nvme_get_controllers",
       "Display current NVMe controllers list or required NVMe controller",
       {opt("-n", "--name", "Name of the NVMe controller. Example: Nvme0")},
       Output::kDict},
      {"bdev_nvme_detach_controller",
       "Detach an NVMe controller and delete any associated bdevs",
       {pos("name", "Name of the controller"),
        opt("-t", "--trtype", "NVMe-oF target trtype: e.g., rdma, pcie"),
        opt("-a", "--traddr", "NVMe-oF target address: e.g., an ip address or BDF"),
        opt("-f", "--adrfam", "NVMe-oF target adrfam: e.g., ipv4, ipv6, ib, fc, intra_host"),
        opt("-s", "--trsvcid", "NVMe-oF target trsvcid: e.g., a port number"),
        opt("-n", "--subnqn", "NVMe-oF target subnqn"),
        opt("-i", "--hostaddr", "NVMe-oF host address: e.g., an ip address"),
        opt("-c", "--hostsvcid", "NVMe-oF host svcid: e.g., a port number")}},
      {"bdev_nvme_reset_controller",
       "Reset an NVMe controller",
       {pos("name", "Name of the NVMe controller")}},
  };
}

}  // namespace nvemu::rpccli
