#include "app/app.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "app/autosave.h"
#include "app/config.h"
#include "app/metrics_http.h"
#include "app/preflight.h"
#include "app/sd_notify.h"
#include "bdev/bdev.h"
#include "bdev/bdev_rpc.h"
#include "bdev/delay/delay_bdev.h"
#include "bdev/error/error_bdev.h"
#include "bdev/nvme/ctrlr.h"
#include "bdev/rbd/rbd_rpc.h"
#include "common/cpumask.h"
#include "common/log.h"
#include "keyring/keyring.h"
#include "nvmf/doca/manager.h"
#include "nvmf/fault.h"
#include "nvmf/nvmf_rpc.h"
#include "nvmf/target.h"
#include "reactor/offload.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"
#include "rpc/server.h"

namespace nvemu::app {
namespace {

std::atomic<bool> g_initialized{false};

std::vector<unsigned> online_cores() {
  cpu_set_t set;
  std::vector<unsigned> out;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (unsigned c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

void notify(const std::string& state) {
  std::string why = sd_notify(state);
  if (!why.empty()) LOG_WARN("app", "{}", why);
}

std::string describe(const std::vector<unsigned>& cores) {
  std::string s;
  for (unsigned c : cores) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

}  // namespace

bool framework_initialized() {
  return g_initialized;
}

void framework_start_init() {
  if (g_initialized.exchange(true)) return;
  rpc::Registry::instance().set_state(rpc::kRuntime);
  LOG_NOTICE("app", "framework initialized: bdev, nvmf subsystems ready");
}

void request_shutdown(int sig) {
  if (sig == SIGKILL) {
    kill(getpid(), SIGKILL);
    return;
  }
  auto& set = ReactorSet::instance();
  // Reply first: the RPC that asked must still get its answer.
  set.main().add_timer(std::chrono::milliseconds(20), [&set] { set.stop_all(); });
}

// Whether two paths name one file (the -c file is the autosave file).
static bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return !b.empty() && stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void register_all_rpcs() {
  register_app_rpcs();
  register_config_rpcs();
  register_sock_rpcs();
  keyring::register_rpcs();
  bdev::register_rpcs();
  bdev::rbd::register_rpcs();
  bdev::nvme::register_rpcs();
  bdev::error::register_rpcs();
  bdev::delay::register_rpcs();
  nvmf::register_subsystem_rpcs();
  nvmf::register_transport_rpcs();
  nvmf::doca::register_rpcs();
  nvmf::register_fault_rpcs();
}

int run(const Options& o) {
  for (const auto& f : o.log_flags) {
    if (!log::set_flag(f, true)) {
      fmt::print(stderr, "error: unknown log flag '{}' (known: {})\n", f, log::known_flags());
      return 1;
    }
  }
  LOG_NOTICE("app", "Starting nvemu v{} (SPDK v23.01 compatible) initialization...", NVEMU_VERSION);

  CpuMaskResult mask = parse_cpumask(o.cpumask);
  if (!mask.error.empty()) {
    LOG_ERROR("app", "invalid -m/--cpumask '{}': {}", o.cpumask, mask.error);
    return 1;
  }
  std::vector<unsigned> online = online_cores();
  for (unsigned c : mask.cores) {
    if (std::find(online.begin(), online.end(), c) == online.end()) {
      LOG_ERROR("app",
                "core {} in -m {} is not available to this process (available: {}); "
                "use a mask within them, e.g. -m {}",
                c, o.cpumask, describe(online), format_cpumask(online));
      return 1;
    }
  }
  unsigned main_core = o.main_core >= 0 ? static_cast<unsigned>(o.main_core) : mask.cores.front();
  if (std::find(mask.cores.begin(), mask.cores.end(), main_core) == mask.cores.end()) {
    LOG_ERROR("app", "--main-core {} is not in -m {} (cores {}); pick one of them", main_core,
              o.cpumask, describe(mask.cores));
    return 1;
  }

  if (o.mem_size_mb) {
    std::string warning;
    std::string err = check_hugepages(o.mem_size_mb, &warning);
    if (!err.empty()) {
      LOG_ERROR("app", "{}", err);
      return 1;
    }
    if (!warning.empty()) LOG_WARN("app", "{}", warning);
  }

  if (!o.config_autosave.empty()) {
    std::string why = check_autosave_path(o.config_autosave);
    if (why.empty() && access(o.config_autosave.c_str(), F_OK) == 0 &&
        !same_file(o.config_autosave, o.json_config))
      why = fmt::format(
          "--config-autosave {0}: the file exists and would be overwritten with an empty "
          "configuration; restore from it with -c {0}, or remove it to start afresh",
          o.config_autosave);
    if (!why.empty()) {
      LOG_ERROR("app", "{}", why);
      return 1;
    }
  }

  SocketGuard guard;
  std::string notice;
  std::string err = guard.acquire(o.rpc_socket, &notice);
  if (!err.empty()) {
    LOG_ERROR("app", "{}", err);
    return 1;
  }
  if (!notice.empty()) LOG_NOTICE("app", "{}", notice);

  // Signals are taken by the main reactor through a signalfd; block them in
  // every thread first (threads inherit the mask).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto& set = ReactorSet::instance();
  set.create(mask.cores, main_core);
  LOG_NOTICE("app", "Total cores available: {}", set.size());

  register_transports();
  register_all_rpcs();
  rpc::Registry::instance().set_state(rpc::kStartup);
  if (!o.wait_for_rpc && o.json_config.empty()) framework_start_init();

  rpc::ServerLimits limits;
  limits.max_request_bytes = static_cast<size_t>(o.rpc_max_request_bytes);
  limits.socket_group = o.rpc_socket_group;
  rpc::Server server(set.main(), limits);
  auto start_rpc = [&server, &o]() {
    std::string why = server.listen(o.rpc_socket);
    if (!why.empty()) {
      LOG_ERROR("app", "Unable to start RPC service at {}: {}", o.rpc_socket, why);
      return false;
    }
    bool waiting = rpc::Registry::instance().state() == rpc::kStartup;
    LOG_NOTICE("app", "RPC server listening on {}; {}", o.rpc_socket,
               waiting ? "waiting for framework_start_init" : "ready");
    // systemd's readiness: the socket is bound and the main reactor, which
    // sends this, is the one that answers it (after -c's replay when given).
    notify(fmt::format("READY=1\nMAINPID={}\nSTATUS=RPC on {}{}", getpid(), o.rpc_socket,
                       waiting ? ", waiting for framework_start_init" : ""));
    return true;
  };
  // With -c the socket opens once the replay is done, so a client's first
  // answer already sees the configuration (some entries finish later than
  // they start: attaching a remote controller, connecting to a cluster).
  if (o.json_config.empty() && !start_rpc()) {
    set.destroy();
    return 1;
  }
  if (o.json_config.empty() && !o.config_autosave.empty())
    set.main().send([&o] { start_autosave(o.config_autosave); });
  MetricsHttp metrics(set.main());
  if (!o.metrics_addr.empty()) {
    std::string why = metrics.listen(o.metrics_addr);
    if (!why.empty()) {
      LOG_ERROR("app", "--metrics {}: {}", o.metrics_addr, why);
      server.close_all();
      set.destroy();
      return 1;
    }
    LOG_NOTICE("app", "Prometheus metrics at http://{}/metrics", o.metrics_addr);
  }

  int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  set.main().add_fd(sfd, EPOLLIN, [sfd, &set](uint32_t) {
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
      LOG_NOTICE("app", "received {}, shutting down", strsignal(static_cast<int>(si.ssi_signo)));
      notify("STOPPING=1\nSTATUS=shutting down");
      set.stop_all();
    }
  });

  int exit_code = 0;
  if (!o.json_config.empty()) {
    set.main().send([&o, &set, &exit_code, &start_rpc] {
      load_config_file(o.json_config, [&o, &set, &exit_code, &start_rpc](const std::string& cerr) {
        if (cerr.empty() && start_rpc()) {
          if (!o.config_autosave.empty()) start_autosave(o.config_autosave);
          return;
        }
        if (!cerr.empty()) LOG_ERROR("app", "config replay failed: {}", cerr);
        exit_code = 1;
        set.stop_all();
      });
    });
  }

  set.start_others();
  set.run_main();

  LOG_NOTICE("app", "shutting down");
  notify("STOPPING=1\nSTATUS=shutting down");
  stop_autosave();  // teardown below must not be saved as the new state
  metrics.close();
  server.close_all();
  set.stop_all();
  set.join_others();
  // Connects still running end within their timeouts (bdev_nvme's 5 s
  // bring-up, librados' 10 s mount timeout); their results are dropped here.
  shutdown_offload(std::chrono::seconds(15));
  bdev::nvme::shutdown();
  // Tear down what reactors served, on this thread now that they stopped.
  nvmf::Target::instance().clear();
  nvmf::doca::Managers::instance().clear();
  bdev::Registry::instance().clear();
  bdev::rbd::shutdown();
  set.main().remove_fd(sfd);
  close(sfd);
  set.destroy();
  return exit_code;
}

}  // namespace nvemu::app
