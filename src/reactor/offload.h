// Blocking control-path work (a TCP connect and NVMe bring-up, a librados
// connect, an image open) off the reactors.
//
// offload() runs `job` on a new thread whose CPU affinity is every online
// core, then `done` on the main reactor, so an RPC answers later and no
// reactor waits meanwhile. Unpinned because libraries start threads of
// their own from it (librados does) and those inherit the affinity: pinned
// to a reactor's core they would compete with it (SPDK calls such work
// through spdk_call_unaffinitized for the same reason).
//
// Nothing of `job` stays on the worker once it ran, and `done` is destroyed
// on the main reactor, so what they hold (a controller, a cluster) is
// released where it lives. A configuration replay waits for the method's
// answer before its next entry (app/config_rpc.cpp), so callers need no
// special case for load_config or -c FILE.
//
// Before the reactors exist (unit tests) the job runs on a worker that is
// joined at once and `done` runs on the calling thread.
#pragma once

#include <chrono>
#include <functional>

namespace nvemu {

void offload(std::function<void()> job, std::function<void()> done);

// Daemon exit, on the main thread once the reactors stopped: results are no
// longer delivered to the main reactor; waits up to `wait` for running jobs
// and destroys the results of those that finished, here. A job still running
// after that is abandoned with the process.
void shutdown_offload(std::chrono::milliseconds wait);

}  // namespace nvemu
