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
// A job is bounded by those timeouts too; stopping the daemon while one runs
// is not waited for.
#pragma once

#include <functional>

namespace nvemu::bdev::rbd {

void offload(std::function<void()> job, std::function<void()> done);

}  // namespace nvemu::bdev::rbd
