// The sub-commands: SPDK v23.01 rpc.py's parsers for the methods nvemu
// serves (same names, letters, types and params), plus the DOCA SNAP
// nvmf_doca_* methods and the client-side save_config / load_config / call.
#include "commands.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

namespace nvemu::rpccli {

Arg pos(std::string name, std::string help, ArgType type) {
  ArgSpec s;
  s.dest = std::move(name);
  s.help = std::move(help);
  s.type = type;
  return Arg{s};
}

Arg pos_opt(std::string name, std::string help, ArgType type) {
  Arg a = pos(std::move(name), std::move(help), type);
  a.spec.optional = true;
  return a;
}

Arg opt(std::string short_opt, std::string long_opt, std::string help, ArgType type) {
  ArgSpec s;
  s.short_opt = std::move(short_opt);
  s.long_opt = std::move(long_opt);
  s.help = std::move(help);
  s.type = type;
  s.dest = default_dest(s);
  return Arg{s};
}

Arg flag(std::string short_opt, std::string long_opt, std::string help, bool store_false) {
  return opt(std::move(short_opt), std::move(long_opt), std::move(help),
             store_false ? ArgType::kStoreFalse : ArgType::kStoreTrue);
}

namespace {

constexpr ArgType kInt = ArgType::kInt;
constexpr ArgType kFloat = ArgType::kFloat;

Arg tgt_name(const char* letter = "-t") {
  return opt(letter, "--tgt-name", "The name of the parent NVMe-oF target (optional)");
}

Arg nqn_arg() {
  return pos("nqn", "NVMe-oF subsystem NQN");
}

// Puts the listed keys ("a" or "a.b") first, in that order, so requests
// read exactly as rpc.py builds them (the order is only cosmetic).
void reorder(Json& params, const std::vector<std::string>& order) {
  std::map<std::string, std::vector<std::string>> by_parent;
  for (const auto& k : order) {
    size_t dot = k.rfind('.');
    by_parent[dot == std::string::npos ? "" : k.substr(0, dot)].push_back(
        dot == std::string::npos ? k : k.substr(dot + 1));
  }
  for (const auto& [parent, keys] : by_parent) {
    Json* node = &params;
    if (!parent.empty()) {
      if (!params.contains(parent)) continue;
      node = &params[parent];
    }
    if (!node->is_object()) continue;
    Json sorted = Json::object();
    for (const auto& k : keys)
      if (node->contains(k)) sorted[k] = (*node)[k];
    for (auto it = node->begin(); it != node->end(); ++it)
      if (!sorted.contains(it.key())) sorted[it.key()] = it.value();
    *node = std::move(sorted);
  }
}

std::function<void(const Namespace&, Json&)> key_order(std::vector<std::string> order) {
  return [order](const Namespace&, Json& p) { reorder(p, order); };
}

// Every argument lands in params when given, flags always (rpc.py's
// **vars(args) + remove_null()).
std::vector<Arg> all_given(std::vector<Arg> args) {
  for (auto& a : args)
    if (a.emit != Emit::kNever) a.emit = Emit::kNotNull;
  return args;
}

// nvmf_subsystem_add_listener / remove_listener: the address is grouped as
// params.listen_address, 'discovery' is short for the discovery NQN.
std::vector<Arg> listener_args(Emit optional_fields) {
  return {
      pos("nqn", "NVMe-oF subsystem NQN ('discovery' can be used as shortcut for discovery NQN)"),
      opt("-t", "--trtype", "NVMe-oF transport type: e.g., tcp, vfiouser")
          .required()
          .to("listen_address.trtype")
          .when(Emit::kNotNull),
      opt("-a", "--traddr", "NVMe-oF transport address: e.g., an ip address or a directory")
          .required()
          .to("listen_address.traddr")
          .when(Emit::kNotNull),
      opt("-p", "--tgt-name", "The name of the parent NVMe-oF target (optional)")
          .when(optional_fields),
      opt("-f", "--adrfam", "NVMe-oF transport adrfam: e.g., ipv4, ipv6, ib, fc, intra_host")
          .to("listen_address.adrfam")
          .when(optional_fields),
      opt("-s", "--trsvcid", "NVMe-oF transport service id: e.g., a port number (required for TCP)")
          .to("listen_address.trsvcid")
          .when(optional_fields),
  };
}

std::function<void(const Namespace&, Json&)> listener_post(std::vector<std::string> order) {
  return [order](const Namespace&, Json& p) {
    if (p.value("nqn", "") == "discovery") p["nqn"] = "nqn.2014-08.org.nvmexpress.discovery";
    reorder(p, order);
  };
}

// rpc.py's --enable-X / --disable-X pairs sharing dest X with a None
// default: the key is sent only when one of the two was given.
std::string dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

const std::vector<std::string> kSockOnOff = {"recv_pipe", "quickack", "zerocopy_send_server",
                                             "zerocopy_send_client", "ktls"};

std::vector<Arg> sock_impl_set_options_args() {
  std::vector<Arg> args = {
      opt("-i", "--impl", "Socket implementation name, e.g. posix").required().to("impl_name"),
      opt("-r", "--recv-buf-size", "Size of receive buffer on socket in bytes", kInt),
      opt("-s", "--send-buf-size", "Size of send buffer on socket in bytes", kInt),
      opt("-p", "--enable-placement-id",
          "Option for placement-id. 0:disable,1:incoming_napi,2:incoming_cpu", kInt)
          .when(Emit::kNotNull)};
  for (const std::string& name : kSockOnOff) {
    args.push_back(flag("", "--enable-" + dashed(name), "Enable " + dashed(name)).never());
    args.push_back(flag("", "--disable-" + dashed(name), "Disable " + dashed(name)).never());
  }
  args.push_back(opt("", "--zerocopy-threshold", "Set zerocopy_threshold in bytes", kInt)
                     .when(Emit::kNotNull));
  args.push_back(opt("", "--tls-version", "TLS protocol version", kInt).when(Emit::kNotNull));
  args.push_back(opt("", "--psk-key", "Set default PSK KEY"));
  args.push_back(opt("", "--psk-identity", "Set default PSK ID"));
  return args;
}

std::function<void(const Namespace&, Json&)> on_off_params(std::vector<std::string> names) {
  return [names](const Namespace& a, Json& p) {
    for (const std::string& n : names) {
      if (a.flag("enable_" + n) && a.flag("disable_" + n))
        throw CommandError("--enable-" + dashed(n) + " and --disable-" + dashed(n) +
                               " contradict each other: give one",
                           1);
      if (a.flag("enable_" + n)) p["enable_" + n] = true;
      if (a.flag("disable_" + n)) p["enable_" + n] = false;
    }
  };
}

std::vector<std::string> dif_types() {
  return {"0", "1", "2", "3"};
}

std::vector<Command> make_table() {
  return {
      // ---- framework / app ----
      {"framework_start_init", "Start initialization of subsystems", {}},
      {"framework_wait_init", "Block until subsystems have been initialized", {}},
      {"rpc_get_methods",
       "Get list of supported RPC methods",
       {flag("-c", "--current", "Get list of RPC methods only callable in the current state."),
        flag("-i", "--include-aliases", "include RPC aliases")},
       Output::kDict},
      {"spdk_get_version", "Get SPDK version", {}, Output::kJson},
      {"save_config",
       "Write current (live) configuration of SPDK subsystems and targets to stdout.",
       {opt("-i", "--indent",
            "Indent level. Value less than 0 mean compact mode. Default indent level is 2.", kInt),
        opt("-o", "--output", "Write the configuration to this file instead of stdout (nvemu)")},
       Output::kNone,
       nullptr,
       nullptr,
       save_config},
      {"load_config",
       "Configure SPDK subsystems and targets using JSON RPC.",
       {flag("-i", "--include-aliases", "include RPC aliases"),
        opt("-j", "--json-conf",
            "Valid JSON configuration: a file, or the JSON text itself (default: stdin)")},
       Output::kNone,
       nullptr,
       nullptr,
       load_config},
      {"spdk_kill_instance",
       "Send signal to instance",
       {pos("sig_name", "signal will be sent to server.")}},
      {"framework_get_reactors", "Display list of all reactors", {}, Output::kDict},
      {"framework_set_scheduler",
       "Select thread scheduler that will be activated and its period (experimental)",
       {pos("name", "Name of a scheduler"),
        opt("-p", "--period", "Scheduler period in microseconds", kInt).when(Emit::kNotNull),
        opt("", "--load-limit", "Scheduler load limit. Reserved for dynamic scheduler", kInt)
            .when(Emit::kNotNull),
        opt("", "--core-limit", "Scheduler core limit. Reserved for dynamic scheduler", kInt)
            .when(Emit::kNotNull),
        opt("", "--core-busy", "Scheduler core busy limit. Reserved for dynamic schedler", kInt)
            .when(Emit::kNotNull)}},
      {"framework_get_scheduler",
       "Display currently set scheduler and its properties.",
       {},
       Output::kDict},
      {"iobuf_set_options", "Set iobuf pool options",
       all_given({opt("", "--small-pool-count", "number of small buffers in the global pool", kInt),
                  opt("", "--large-pool-count", "number of large buffers in the global pool", kInt),
                  opt("", "--small-bufsize", "size of a small buffer", kInt),
                  opt("", "--large-bufsize", "size of a large buffer", kInt)})},
      {"framework_get_subsystems",
       "Print subsystems array in initialization order. Each subsystem entry contain (unsorted) "
       "array of subsystems it depends on.",
       {},
       Output::kDict},
      {"framework_get_config",
       "Print subsystem configuration",
       {pos("name", "Name of subsystem to query")},
       Output::kDict},

      // ---- sock ----
      {"sock_set_default_impl",
       "Set the default sock implementation",
       {opt("-i", "--impl", "Socket implementation name, e.g. posix").required().to("impl_name")},
       Output::kJson},
      {"sock_impl_get_options",
       "Get options of socket layer implementation",
       {opt("-i", "--impl", "Socket implementation name, e.g. posix").required().to("impl_name")},
       Output::kJson},
      {"sock_impl_set_options", "Set options of socket layer implementation",
       sock_impl_set_options_args(), Output::kNone, nullptr, on_off_params(kSockOnOff)},

      // ---- log ----
      {"log_set_flag",
       "set log flag",
       {pos("flag", "log flag we want to set. (for example \"nvme\").")}},
      {"log_clear_flag",
       "clear log flag",
       {pos("flag", "log flag we want to clear. (for example \"nvme\").")}},
      {"log_get_flags", "get log flags", {}, Output::kDict},
      {"log_set_level",
       "set log level",
       {pos("level", "log level we want to set. (for example \"DEBUG\").")}},
      {"log_get_level", "get log level", {}, Output::kDict},
      {"log_set_print_level",
       "set log print level",
       {pos("level", "log print level we want to set. (for example \"DEBUG\").")}},
      {"log_get_print_level", "get log print level", {}, Output::kDict},

      // ---- bdev ----
      {"bdev_malloc_create",
       "Create a bdev with malloc backend",
       {opt("-b", "--name", "Name of the bdev"), opt("-u", "--uuid", "UUID of the bdev"),
        pos("total_size", "Size of malloc bdev in MB (float > 0)", kFloat).never(),
        pos("block_size", "Data block size for this bdev", kInt).never(),
        opt("-o", "--optimal-io-boundary",
            "Split on optimal IO boundary, in number of blocks, default 0 (disabled)", kInt),
        opt("-m", "--md-size",
            "Metadata size for this bdev (0, 8, 16, 32, 64, or 128). Default is 0.", kInt),
        flag("-i", "--md-interleave",
             "Metadata location, interleaved if set, and separated if omitted."),
        opt("-t", "--dif-type",
            "Protection information type. Parameter --md-size needs to be set along --dif-type. "
            "Default=0 - no protection.",
            kInt)
            .choices(dif_types()),
        flag("-d", "--dif-is-head-of-md",
             "Protection information is in the first 8 bytes of metadata. Default=false.")},
       Output::kJson,
       [](const Namespace& a, Json& p) {
         const int64_t bs = a.integer("block_size");
         if (bs <= 0) throw CommandError("ERROR: block_size must be > 0", 1);
         p["num_blocks"] = static_cast<int64_t>(
             std::floor(a.real("total_size") * 1024 * 1024 / static_cast<double>(bs)));
         p["block_size"] = bs;
       }},
      {"bdev_malloc_delete", "Delete a malloc disk", {pos("name", "malloc bdev name")}},
      {"bdev_null_create",
       "Add a bdev with null backend",
       {pos("name", "Block device name").never(), opt("-u", "--uuid", "UUID of the bdev"),
        pos("total_size", "Size of null bdev in MB (int > 0). Includes only data blocks.", kInt)
            .never(),
        pos("block_size",
            "Block size for this bdev.Should be a sum of block size and metadata size if "
            "--md-size is used.",
            kInt)
            .never(),
        opt("-m", "--md-size", "Metadata size for this bdev. Default=0.", kInt),
        opt("-t", "--dif-type",
            "Protection information type. Parameter --md-size needs to be set along --dif-type. "
            "Default=0 - no protection.",
            kInt)
            .choices(dif_types()),
        flag("-d", "--dif-is-head-of-md",
             "Protection information is in the first 8 bytes of metadata. Default=false.")},
       Output::kJson,
       [](const Namespace& a, Json& p) {
         if (a.flag("dif_type") && !a.flag("md_size"))
           throw CommandError("ERROR: --md-size must be > 0 when --dif-type is > 0", 1);
         const int64_t bs = a.integer("block_size");
         if (bs <= 0) throw CommandError("ERROR: block_size must be > 0", 1);
         const int64_t bytes = a.integer("total_size") * 1024 * 1024;
         p["name"] = a.str("name");
         p["num_blocks"] = bytes / bs - ((bytes % bs != 0 && bytes < 0) ? 1 : 0);  // floor
         p["block_size"] = bs;
       }},
      {"bdev_null_delete", "Delete a null bdev", {pos("name", "null bdev name")}},
      {"bdev_uring_create",
       "Create a bdev with io_uring backend",
       {pos("filename", "Path to device or file (ex: /dev/nvme0n1)").never(),
        pos("name", "bdev name").never(), pos_opt("block_size", "Block size for this bdev", kInt),
        opt("-u", "--uuid",
            "UUID of the bdev (later SPDK's; default: derived from name and path)")},
       Output::kJson,
       [](const Namespace& a, Json& p) {
         p["name"] = a.str("name");
         p["filename"] = a.str("filename");
       }},
      {"bdev_uring_delete", "Delete a uring bdev", {pos("name", "uring bdev name")}},
      {"bdev_get_bdevs",
       "Display current blockdev list or required blockdev",
       {opt("-b", "--name", "Name of the Blockdev. Example: Nvme0n1"),
        opt("-t", "--timeout-ms",
            "Time in ms to wait for the bdev to appear (only used with the -b|--name option). "
            "The default timeout is 0, meaning the RPC returns immediately whether the bdev "
            "exists or not.",
            kInt)
            .to("timeout")},
       Output::kDict},
      {"bdev_get_iostat",
       "Display current I/O statistics of all the blockdevs or specified blockdev.",
       {opt("-b", "--name", "Name of the Blockdev. Example: Nvme0n1"),
        flag("-c", "--per-channel", "Display per channel IO stats for specified device")},
       Output::kDict},

      // ---- NVMe-oF ----
      {"nvmf_set_max_subsystems",
       "Set the maximum number of NVMf target subsystems",
       {opt("-x", "--max-subsystems", "Max number of NVMf subsystems", kInt).required()}},
      {"nvmf_set_crdt",
       "Set the 3 crdt (Command Retry Delay Time) values for NVMf subsystem. All values are in "
       "units of 100 milliseconds (same as the NVM Express specification).",
       {opt("-t1", "--crdt1", "Command Retry Delay Time 1, in units of 100 milliseconds", kInt)
            .when(Emit::kNotNull),
        opt("-t2", "--crdt2", "Command Retry Delay Time 2, in units of 100 milliseconds", kInt)
            .when(Emit::kNotNull),
        opt("-t3", "--crdt3", "Command Retry Delay Time 3, in units of 100 milliseconds", kInt)
            .when(Emit::kNotNull)},
       Output::kDict},
      {"nvmf_set_config",
       "Set NVMf target config",
       {flag("-i", "--passthru-identify-ctrlr",
             "Passthrough fields like serial number and model number when the controller has a "
             "single namespace that is an NVMe bdev")
            .to("admin_cmd_passthru.identify_ctrlr"),
        opt("-m", "--poll-groups-mask", "Set cpumask for NVMf poll groups (optional)"),
        opt("-d", "--discovery-filter",
            "Set discovery filter (optional), possible values are: `match_any` (default) or "
            "comma separated values: `transport`, `address`, `svcid`"),
        opt("", "--dhchap-digests", "Comma-separated list of allowed DH-HMAC-CHAP digests").never(),
        opt("", "--dhchap-dhgroups", "Comma-separated list of allowed DH-HMAC-CHAP DH groups")
            .never()},
       Output::kNone,
       nullptr,
       [](const Namespace& a, Json& p) {
         put_comma_list(a, "dhchap_digests", p, "dhchap_digests");
         put_comma_list(a, "dhchap_dhgroups", p, "dhchap_dhgroups");
       }},
      {"nvmf_create_transport", "Create NVMf transport",
       all_given(
           {opt("-t", "--trtype", "Transport type (ex. TCP, VFIOUSER, DOCA)").required(),
            opt("-g", "--tgt-name", "The name of the parent NVMe-oF target (optional)"),
            opt("-q", "--max-queue-depth", "Max number of outstanding I/O per queue", kInt),
            opt("-p", "--max-qpairs-per-ctrlr",
                "Max number of SQ and CQ per controller. Deprecated (SPDK v22.01), use "
                "--max-io-qpairs-per-ctrlr",
                kInt),
            opt("-m", "--max-io-qpairs-per-ctrlr", "Max number of IO qpairs per controller", kInt),
            opt("-c", "--in-capsule-data-size", "Max number of in-capsule data size", kInt),
            opt("-i", "--max-io-size", "Max I/O size (bytes)", kInt),
            opt("-u", "--io-unit-size", "I/O unit size (bytes)", kInt),
            opt("-a", "--max-aq-depth", "Max number of admin cmds per AQ", kInt),
            opt("-n", "--num-shared-buffers",
                "The number of pooled data buffers available to the transport", kInt),
            opt("-b", "--buf-cache-size",
                "The number of shared buffers to reserve for each poll group", kInt),
            flag("-z", "--zcopy", "Use zero-copy operations if the underlying bdev supports them"),
            opt("-d", "--num-cqe",
                "The number of CQ entries. Only used when no_srq=true. Relevant only for RDMA "
                "transport",
                kInt),
            opt("-s", "--max-srq-depth",
                "Max number of outstanding I/O per SRQ. Relevant only for RDMA transport", kInt),
            flag("-r", "--no-srq",
                 "Disable per-thread shared receive queue. Relevant only for RDMA transport"),
            flag("-o", "--c2h-success",
                 "Disable C2H success optimization. Relevant only for TCP transport", true),
            flag("-f", "--dif-insert-or-strip",
                 "Enable DIF insert/strip. Relevant only for TCP transport"),
            opt("-y", "--sock-priority",
                "The sock priority of the tcp connection. Relevant only for TCP transport", kInt),
            opt("-l", "--acceptor-backlog",
                "Pending connections allowed at one time. Relevant only for RDMA transport", kInt),
            opt("-x", "--abort-timeout-sec", "Abort execution timeout value, in seconds", kInt),
            flag("-w", "--no-wr-batching",
                 "Disable work requests batching. Relevant only for RDMA transport"),
            opt("-e", "--control-msg-num",
                "The number of control messages per poll group. Relevant only for TCP transport",
                kInt),
            flag("-M", "--disable-mappable-bar0",
                 "Disable mmap() of BAR0. Relevant only for VFIO-USER transport"),
            flag("-I", "--disable-adaptive-irq",
                 "Disable adaptive interrupt feature. Relevant only for VFIO-USER transport"),
            flag("-S", "--disable-shadow-doorbells",
                 "Disable shadow doorbell support. Relevant only for VFIO-USER transport"),
            opt("", "--acceptor-poll-rate",
                "Polling interval of the acceptor for incoming connections (usec)", kInt)}),
       Output::kNone, nullptr,
       [](const Namespace& a, Json&) {
         if (a.has("max_qpairs_per_ctrlr"))
           std::cerr << "WARNING: max_qpairs_per_ctrlr is deprecated, please use "
                        "max_io_qpairs_per_ctrlr."
                     << std::endl;
       }},
      {"nvmf_get_transports",
       "Display nvmf transports or required transport",
       {opt("", "--trtype", "Transport type (optional)"), tgt_name()},
       Output::kDict,
       nullptr,
       key_order({"tgt_name"})},
      {"nvmf_get_subsystems",
       "Display nvmf subsystems or required subsystem",
       {pos_opt("nqn", "Subsystem NQN (optional)"), tgt_name()},
       Output::kDict},
      {"nvmf_create_subsystem",
       "Create an NVMe-oF subsystem",
       {pos("nqn", "Subsystem NQN (ASCII)"), tgt_name(),
        opt("-s", "--serial-number", "Format: 'sn' etc Example: 'SPDK00000000000001'"),
        opt("-d", "--model-number", "Format: 'mn' etc Example: 'SPDK Controller'"),
        flag("-a", "--allow-any-host",
             "Allow any host to connect (don't enforce allowed host NQN list)"),
        opt("-m", "--max-namespaces", "Maximum number of namespaces allowed", kInt)
            .when(Emit::kNotNull),
        flag("-r", "--ana-reporting", "Enable ANA reporting feature"),
        opt("-i", "--min-cntlid", "Minimum controller ID", kInt).when(Emit::kNotNull),
        opt("-I", "--max-cntlid", "Maximum controller ID", kInt).when(Emit::kNotNull)},
       Output::kNone,
       nullptr,
       key_order({"nqn", "serial_number", "model_number", "allow_any_host", "max_namespaces",
                  "tgt_name", "ana_reporting", "min_cntlid", "max_cntlid"})},
      {"nvmf_delete_subsystem",
       "Delete a nvmf subsystem",
       {pos("subsystem_nqn", "subsystem nqn to be deleted. Example: nqn.2016-06.io.spdk:cnode1.")
            .to("nqn"),
        tgt_name()}},
      {"nvmf_subsystem_add_listener", "Add a listener to an NVMe-oF subsystem",
       listener_args(Emit::kNotNull), Output::kNone, nullptr,
       listener_post({"nqn", "tgt_name", "listen_address", "listen_address.trtype",
                      "listen_address.traddr", "listen_address.trsvcid"})},
      {"nvmf_subsystem_remove_listener", "Remove a listener from an NVMe-oF subsystem",
       listener_args(Emit::kTruthy), Output::kNone, nullptr,
       listener_post({"nqn", "listen_address", "listen_address.trtype", "listen_address.traddr",
                      "listen_address.trsvcid"})},
      // rpc.py prints nothing here; nvemu-rpc prints the namespace ID the
      // target assigned (what scripts want to capture).
      {"nvmf_subsystem_add_ns",
       "Add a namespace to an NVMe-oF subsystem",
       {nqn_arg(),
        pos("bdev_name", "The name of the bdev that will back this namespace")
            .to("namespace.bdev_name"),
        tgt_name(),
        opt("-p", "--ptpl-file", "The persistent reservation storage location (optional)")
            .to("namespace.ptpl_file"),
        opt("-n", "--nsid", "The requested NSID (optional)", kInt).to("namespace.nsid"),
        opt("-g", "--nguid", "Namespace globally unique identifier (optional)")
            .to("namespace.nguid"),
        opt("-e", "--eui64", "Namespace EUI-64 identifier (optional)").to("namespace.eui64"),
        opt("-u", "--uuid", "Namespace UUID (optional)").to("namespace.uuid"),
        opt("-a", "--anagrpid", "ANA group ID (optional)", kInt).to("namespace.anagrpid")},
       Output::kJson},
      {"nvmf_subsystem_remove_ns",
       "Remove a namespace to an NVMe-oF subsystem",
       {nqn_arg(), pos("nsid", "The requested NSID", kInt).when(Emit::kNotNull), tgt_name()}},
      {"nvmf_subsystem_add_host",
       "Add a host to an NVMe-oF subsystem",
       {nqn_arg(), pos("host", "Host NQN to allow"), tgt_name(),
        opt("", "--dhchap-key", "DH-HMAC-CHAP key name (keyring)"),
        opt("", "--dhchap-ctrlr-key", "DH-HMAC-CHAP controller key name (keyring)")}},
      {"nvmf_subsystem_remove_host",
       "Remove a host from an NVMe-oF subsystem",
       {nqn_arg(), pos("host", "Host NQN to remove"), tgt_name()}},
      {"nvmf_subsystem_allow_any_host",
       "Allow any host to connect to the subsystem",
       {nqn_arg().never(), flag("-e", "--enable", "Enable allowing any host").never(),
        flag("-d", "--disable", "Disable allowing any host").never(), tgt_name()},
       Output::kNone,
       [](const Namespace& a, Json& p) {
         p["nqn"] = a.str("nqn");
         p["allow_any_host"] = !a.flag("disable");
       }},
      {"nvmf_subsystem_get_controllers",
       "Display controllers of an NVMe-oF subsystem.",
       {nqn_arg(), tgt_name()},
       Output::kDict},
      {"nvmf_subsystem_get_qpairs",
       "Display queue pairs of an NVMe-oF subsystem.",
       {nqn_arg(), tgt_name()},
       Output::kDict},
      {"nvmf_subsystem_get_listeners",
       "Display listeners of an NVMe-oF subsystem.",
       {nqn_arg(), tgt_name()},
       Output::kDict},
      {"nvmf_get_stats",
       "Display current statistics for NVMf subsystem",
       {tgt_name()},
       Output::kDict},

      // ---- DOCA (NVIDIA DOCA SNAP's nvmf_doca_* shapes) ----
      {"nvmf_doca_get_managers", "Display DOCA device emulation managers", {}, Output::kDict},
      {"nvmf_doca_create_manager",
       "Create an emulation manager (nvemu only; DOCA finds devices)",
       {pos("name", "Emulation manager (device) name, e.g. mlx5_0")}},
      {"nvmf_doca_create_function",
       "Create an emulated NVMe PCIe function (hot-plug PF/VF)",
       {opt("-d", "--dev-name", "Emulation manager (device) name, e.g. mlx5_0").required(),
        opt("-v", "--vuid", "VUID to give it (nvemu only; save_config writes it)")},
       Output::kJson},
      {"nvmf_doca_destroy_function",
       "Destroy an emulated NVMe PCIe function",
       {opt("-d", "--dev-name", "Emulation manager (device) name, e.g. mlx5_0").required(),
        opt("-v", "--vuid", "VUID of the function to destroy").required()}},
      {"nvmf_doca_list_functions",
       "List the emulated NVMe PCIe functions of a manager",
       {opt("-d", "--dev-name", "Emulation manager (device) name, e.g. mlx5_0").required()},
       Output::kDict},

      // ---- raw ----
      {"call",
       "Send any method with the given JSON params as-is and print the result (nvemu)",
       {pos("method", "JSON-RPC method name"),
        pos_opt("params", "JSON params (object or array), sent exactly as given", ArgType::kJson)},
       Output::kDict,
       nullptr,
       nullptr,
       raw_call},
  };
}

Json to_json(const Value& v) {
  return std::visit(
      [](const auto& x) -> Json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          return Json();
        else
          return Json(x);
      },
      v);
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> table = [] {
    std::vector<Command> t = make_table();
    for (auto module :
         {nvme_commands, rbd_commands, fault_commands, fault_bdev_commands, auth_commands})
      std::ranges::move(module(), std::back_inserter(t));
    return t;
  }();
  return table;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

ArgParser make_parser(const Command& cmd, const std::string& prog_prefix, const ArgParser* parent) {
  ArgParser p(prog_prefix + " " + cmd.name, cmd.help);
  p.set_parent(parent);
  for (const auto& a : cmd.args) p.add(a.spec);
  return p;
}

Json build_params(const Command& cmd, const Namespace& ns) {
  Json params = Json::object();
  if (cmd.pre) cmd.pre(ns, params);
  for (const auto& a : cmd.args) {
    if (a.emit == Emit::kNever) continue;
    const std::string& dest = a.spec.dest;
    const Value& v = ns.get(dest);
    if (a.emit == Emit::kTruthy ? !truthy(v) : std::holds_alternative<std::monostate>(v)) continue;
    // Walk/create the nested objects of "a.b.c".
    std::string key = a.param.empty() ? dest : a.param;
    Json* node = &params;
    for (size_t dot; (dot = key.find('.')) != std::string::npos; key.erase(0, dot + 1)) {
      Json& child = (*node)[key.substr(0, dot)];
      if (!child.is_object()) child = Json::object();
      node = &child;
    }
    (*node)[key] = to_json(v);
  }
  if (cmd.post) cmd.post(ns, params);
  return params;
}

int run_command(const Command& cmd, Context& ctx) {
  Json params = build_params(cmd, ctx.args);
  Json result = ctx.client.call(cmd.method.empty() ? cmd.name : cmd.method, params);
  if (ctx.client.dry_run()) return 0;
  switch (cmd.out) {
    case Output::kDict:
      std::cout << print_dict_text(result) << std::endl;
      break;
    case Output::kJson:
      std::cout << print_json_text(result) << std::endl;
      break;
    case Output::kArray: {
      std::string line;
      if (result.is_array())
        for (const auto& item : result)
          line += (line.empty() ? "" : " ") +
                  (item.is_string() ? item.get<std::string>() : item.dump());
      std::cout << line << std::endl;
      break;
    }
    case Output::kNone:
      break;
  }
  return 0;
}

}  // namespace nvemu::rpccli
