// Blocking librados/librbd calls (connect, open, resize) off the reactors.
//
// offload() runs `job` on a new thread whose CPU affinity is every online
// core (librados starts its own threads there and they inherit it: pinned
// to a reactor's core they would compete with it, which is why SPDK calls
// spdk_call_unaffinitized), then runs `done` on the main reactor, so an RPC
// answers later and the main reactor keeps serving meanwhile.
//
// While a configuration replays (load_config, -c FILE) each method must
// answer before it returns, so offload() then waits for the job and runs
// `done` itself; the wait is bounded by the client timeouts (cluster.h).
//
// A job is bounded by those timeouts too. shutdown_offload() (daemon exit,
// before the reactors go) stops delivering results and waits up to `wait`
// for running jobs.
#pragma once

#include <chrono>
#include <functional>

namespace nvemu::bdev::rbd {

void offload(std::function<void()> job, std::function<void()> done);
void shutdown_offload(std::chrono::seconds wait);

}  // namespace nvemu::bdev::rbd
