// The Prometheus text exposition (format 0.0.4) of the target's counters:
// bdevs (the namespaces' backends) with I/O counts, bytes, errors and
// latency histograms, every controller's queues (commands, bytes, errors,
// depth, size), reactors' busy/idle time, DOCA functions' states.
// Everything is read from counters that already exist (a channel's IoStats,
// a queue's Qpair::IoState, a reactor's busy/idle time) or asked through the
// same RPC handlers an
// operator would call, so the numbers agree with bdev_get_iostat,
// framework_get_reactors and nvmf_doca_list_functions.
#pragma once

#include <functional>
#include <string>

namespace nvemu::app {

// Main reactor. Calls done(text) once every source answered (DOCA function
// states are read on the reactors that own them).
void collect_metrics(std::function<void(std::string text)> done);

// One sample line's label value, escaped as the exposition format wants.
std::string prom_escape(const std::string& value);

}  // namespace nvemu::app
