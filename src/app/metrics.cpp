#include "app/metrics.h"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "bdev/bdev.h"
#include "nvmf/controller.h"
#include "nvmf/target.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::app {
namespace {

using nlohmann::json;

// "# HELP" and "# TYPE" once per family, then its samples.
class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, const std::string& labels, double v) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, v);
  }
  void sample(const std::string& name, const std::string& labels, uint64_t v) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Which subsystem namespace a bdev backs (from nvmf_get_subsystems), so a
// bdev's series carry the namespace that hosts see.
struct NsRef {
  std::string nqn;
  uint32_t nsid = 0;
};

json call(const std::string& method, const json& params) {
  json out;
  rpc::Registry::instance().dispatch(method, params,
                                     rpc::Responder(1, [&out](const json& reply) { out = reply; }));
  return out.contains("result") ? out["result"] : json();
}

std::map<std::string, NsRef> namespaces() {
  std::map<std::string, NsRef> out;
  json subs = call("nvmf_get_subsystems", json::object());
  if (!subs.is_array()) return out;
  for (const auto& s : subs)
    for (const auto& ns : s.value("namespaces", json::array()))
      out[ns.value("bdev_name", "")] = {s.value("nqn", ""), ns.value("nsid", 0u)};
  return out;
}

void bdev_metrics(Writer& w) {
  auto refs = namespaces();
  auto bdevs = bdev::Registry::instance().list();
  struct Counter {
    const char* name;
    const char* key;
    const char* help;
    double scale;
  };
  static const Counter kCounters[] = {
      {"nvemu_bdev_read_ops_total", "num_read_ops", "Reads completed successfully.", 1},
      {"nvemu_bdev_read_bytes_total", "bytes_read", "Bytes read.", 1},
      {"nvemu_bdev_write_ops_total", "num_write_ops", "Writes completed successfully.", 1},
      {"nvemu_bdev_write_bytes_total", "bytes_written", "Bytes written.", 1},
      {"nvemu_bdev_unmap_ops_total", "num_unmap_ops", "Deallocates completed.", 1},
      {"nvemu_bdev_unmap_bytes_total", "bytes_unmapped", "Bytes deallocated.", 1},
      {"nvemu_bdev_write_zeroes_ops_total", "num_write_zeroes_ops", "Write Zeroes completed.", 1},
      {"nvemu_bdev_flush_ops_total", "num_flush_ops", "Flushes completed.", 1},
      {"nvemu_bdev_io_errors_total", "io_error", "I/O that completed with an error.", 1},
  };
  std::vector<std::pair<std::string, json>> stats;
  for (const auto& b : bdevs) {
    const NsRef& ns = refs[b->name()];
    std::string labels =
        fmt::format(R"(bdev="{}",subsystem="{}",nsid="{}")", prom_escape(b->name()),
                    prom_escape(ns.nqn), ns.nsid ? std::to_string(ns.nsid) : "");
    stats.emplace_back(labels, b->iostat_json());
  }
  for (const Counter& c : kCounters) {
    w.family(c.name, "counter", c.help);
    for (const auto& [labels, st] : stats) w.sample(c.name, labels, st.value(c.key, uint64_t{0}));
  }
  w.family("nvemu_bdev_io_latency_seconds", "histogram",
           "Latency of successful reads and writes, submit to completion.");
  for (size_t i = 0; i < bdevs.size(); ++i) {
    uint64_t hist[2][bdev::kLatencyBuckets];
    bdevs[i]->latency_histograms(hist[0], hist[1]);
    const auto& [labels, st] = stats[i];
    const char* types[] = {"read", "write"};
    const char* sums[] = {"read_latency_ticks", "write_latency_ticks"};
    for (int t = 0; t < 2; ++t) {
      std::string base = fmt::format(R"({},type="{}")", labels, types[t]);
      uint64_t cum = 0;
      for (size_t b = 0; b + 1 < bdev::kLatencyBuckets; ++b) {
        cum += hist[t][b];
        w.sample("nvemu_bdev_io_latency_seconds_bucket",
                 fmt::format(R"({},le="{}")", base, static_cast<double>(1ull << b) / 1e6), cum);
      }
      cum += hist[t][bdev::kLatencyBuckets - 1];
      w.sample("nvemu_bdev_io_latency_seconds_bucket", base + R"(,le="+Inf")", cum);
      // nvemu's tick is a microsecond (bdev_get_iostat's tick_rate).
      w.sample("nvemu_bdev_io_latency_seconds_sum", base,
               static_cast<double>(st.value(sums[t], uint64_t{0})) / 1e6);
      w.sample("nvemu_bdev_io_latency_seconds_count", base, cum);
    }
  }
}

// Every live queue of every controller, any transport, through the
// enumeration nvmf_subsystem_get_qpairs uses. The counters are the queue's
// own (Qpair::IoState: one writer, its reactor; relaxed loads here). Bytes
// come from the SMART data units (512 bytes each; every bdev's block size
// is a multiple of 512, so they are exact).
void qpair_metrics(Writer& w) {
  struct Row {
    std::string labels;
    uint64_t v[7];
  };
  std::vector<Row> rows;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  for (const auto& s : nvmf::Target::instance().subsystems()) {
    for (const auto& c : s->controllers()) {
      c->for_each_qpair([&](const nvmf::Qpair& qp) {
        const nvmf::Qpair::IoState& io = qp.io;
        rows.push_back(
            {fmt::format(R"(subnqn="{}",cntlid="{}",qid="{}",trtype="{}",hostnqn="{}")",
                         prom_escape(s->nqn()), c->cntlid(), qp.qid(), prom_escape(qp.trtype()),
                         prom_escape(c->hostnqn())),
             {get(io.read_cmds), get(io.write_cmds), get(io.units_read) * 512,
              get(io.units_written) * 512, get(io.errors), get(io.inflight), qp.sq_size()}});
      });
    }
  }
  struct Family {
    const char* name;
    const char* type;
    const char* help;
  };
  static const Family kFamilies[] = {
      {"nvemu_qpair_read_commands_total", "counter",
       "Read and Compare commands completed successfully on the queue."},
      {"nvemu_qpair_write_commands_total", "counter",
       "Write commands completed successfully on the queue."},
      {"nvemu_qpair_read_bytes_total", "counter", "Bytes read by the queue's successful commands."},
      {"nvemu_qpair_written_bytes_total", "counter",
       "Bytes written by the queue's successful commands."},
      {"nvemu_qpair_errors_total", "counter",
       "Commands completed with a non-zero status on the queue."},
      {"nvemu_qpair_queue_depth", "gauge", "Commands received on the queue and not yet completed."},
      {"nvemu_qpair_queue_size", "gauge", "Submission queue entries."},
  };
  for (size_t f = 0; f < std::size(kFamilies); ++f) {
    w.family(kFamilies[f].name, kFamilies[f].type, kFamilies[f].help);
    for (const Row& r : rows) w.sample(kFamilies[f].name, r.labels, r.v[f]);
  }
}

void reactor_metrics(Writer& w) {
  auto& set = ReactorSet::instance();
  w.family("nvemu_reactor_busy_seconds_total", "counter",
           "Time a reactor spent in passes that found work.");
  for (size_t i = 0; set.created() && i < set.size(); ++i)
    w.sample("nvemu_reactor_busy_seconds_total",
             fmt::format(R"(reactor="{}",core="{}")", i, set.at(i).core()),
             static_cast<double>(set.at(i).busy_us()) / 1e6);
  w.family("nvemu_reactor_idle_seconds_total", "counter",
           "Time a reactor spent idle: passes without work and sleep.");
  for (size_t i = 0; set.created() && i < set.size(); ++i)
    w.sample("nvemu_reactor_idle_seconds_total",
             fmt::format(R"(reactor="{}",core="{}")", i, set.at(i).core()),
             static_cast<double>(set.at(i).idle_us()) / 1e6);
}

// DOCA functions' states, each asked on the reactor that owns the function
// (nvmf_doca_list_functions); one 0/1 series per state (a state set).
void doca_metrics(std::function<void(std::string)> done) {
  json managers = call("nvmf_doca_get_managers", json::object());
  auto results = std::make_shared<std::vector<json>>();
  auto left = std::make_shared<size_t>(managers.is_array() ? managers.size() : 0);
  auto finish = [results, done]() {
    Writer w;
    static const char* kStates[] = {"created", "listening", "host attached", "enabled"};
    w.family("nvemu_doca_function_state", "gauge",
             "1 for the state a DOCA emulation function is in, 0 for the others.");
    for (const auto& list : *results) {
      for (const auto& f : list) {
        std::string state = f.value("state", "");
        for (const char* s : kStates)
          w.sample(
              "nvemu_doca_function_state",
              fmt::format(R"(manager="{}",vuid="{}",state="{}")",
                          prom_escape(f.value("manager", "")), prom_escape(f.value("vuid", "")), s),
              uint64_t{state == s});
      }
    }
    done(w.take());
  };
  if (*left == 0) {
    finish();
    return;
  }
  for (const auto& m : managers) {
    rpc::Registry::instance().dispatch(
        "nvmf_doca_list_functions", {{"dev_name", m.value("name", "")}},
        rpc::Responder(1, [results, left, finish](const json& reply) {
          if (reply.contains("result")) results->push_back(reply["result"]);
          if (--*left == 0) finish();
        }));
  }
}

}  // namespace

std::string prom_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"')
      out += {'\\', c};
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void collect_metrics(std::function<void(std::string)> done) {
  Writer w;
  w.family("nvemu_build_info", "gauge", "The running nvemu's version.");
  w.sample("nvemu_build_info", fmt::format(R"(version="{}")", NVEMU_VERSION), uint64_t{1});
  // Before framework_start_init the bdev and nvmf layers are not up.
  if (rpc::Registry::instance().state() == rpc::kRuntime) {
    bdev_metrics(w);
    qpair_metrics(w);
  }
  reactor_metrics(w);
  std::string head = w.take();
  if (rpc::Registry::instance().state() != rpc::kRuntime) {
    done(head);
    return;
  }
  doca_metrics([head, done](std::string doca) { done(head + doca); });
}

}  // namespace nvemu::app
