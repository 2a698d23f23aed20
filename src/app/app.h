// The nvemu-tgt application: options as SPDK's app framework takes them,
// start-up (preflight, reactors, RPC), framework init and shutdown.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nvemu::app {

struct Options {
  std::string cpumask = "0x1";
  int main_core = -1;        // -1: the lowest core of the mask
  uint64_t mem_size_mb = 0;  // 0: not given
  bool no_pci = false;
  bool wait_for_rpc = false;
  std::string rpc_socket = "/var/tmp/spdk.sock";
  std::string rpc_socket_group;                 // "" = socket mode 0600
  uint64_t rpc_max_request_bytes = 4ull << 20;  // larger requests are refused
  std::string json_config;
  std::string config_autosave;  // --config-autosave FILE (autosave.h)
  std::vector<std::string> log_flags;
  std::string app_name = "nvemu-tgt";
  std::string metrics_addr;  // --metrics IP:PORT; "" = no metrics endpoint
};

// Parses argv; on error or -h returns false and sets *message (exit code in
// *exit_code: 0 for -h, 1 for bad usage).
bool parse_options(int argc, char** argv, Options* opts, std::string* message, int* exit_code);

// Runs the target until spdk_kill_instance or SIGINT/SIGTERM. Returns the
// process exit code.
int run(const Options& opts);

// Framework state and lifecycle, for the framework_* RPCs.
bool framework_initialized();
// Moves the RPC state to runtime and runs deferred init (idempotent).
void framework_start_init();
void request_shutdown(int signal);
// Registers every RPC method of the process (also used by unit tests).
void register_all_rpcs();
// Modules' init at start-up: transports register their factories.
void register_transports();

}  // namespace nvemu::app
