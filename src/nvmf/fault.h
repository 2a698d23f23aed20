// NVMe-level fault injection (nvemu's own; nvmf_fault_inject/list/clear).
//
// A fault names a subsystem and, optionally, a controller, namespace,
// opcode and queue kind, and one action. Three actions sit in the
// controller's command path, as Linux's drivers/nvme/host/fault_inject.c
// sits in its completion path:
//   status         the command is not executed; it completes with the given
//                  SCT/SC/DNR/More (count times, or with a seeded probability)
//   no_completion  the command is not executed and never completes: it waits
//                  for an Abort (SC 07h) or its queue's end (SQ deletion)
//   delay          the command executes; its completion waits delay_us
// The others act once, at injection, on the controllers they match, through
// the transport-neutral interfaces (controller.h, transport.h): cfs raises
// CSTS.CFS, drop_connection drops every queue (the TCP connections, the
// vfio-user client socket), surprise_remove unplugs a DOCA function.
//
// Threading. The table of armed command faults is built on the main thread
// and reaches every reactor as a message (an immutable snapshot each holds);
// the command path reads only its reactor's snapshot, and only after one
// relaxed load of armed() says some fault exists. Hit counts are atomics
// touched only when a command matches. Held and delayed requests stay on
// their qpair's reactor.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nvme/sqe.h"

namespace nvemu::nvmf {

class Controller;
class Qpair;
struct Request;

struct Fault {
  enum class Action : uint8_t {
    kStatus,
    kNoCompletion,
    kDelay,
    kCfs,
    kDropConnection,
    kSurpriseRemove
  };
  enum class Queue : uint8_t { kAny, kAdmin, kIo };

  uint64_t id = 0;
  Action action = Action::kStatus;
  std::string nqn;
  std::optional<uint16_t> cntlid;
  std::optional<uint32_t> nsid;
  std::optional<uint8_t> opcode;
  Queue queue = Queue::kAny;
  nvme::Status status{};     // kStatus
  uint64_t count = 0;        // hits allowed; 0 = no limit
  double probability = 1.0;  // of a hit per matching command
  uint64_t seed = 0;         // with probability: the run repeats
  uint64_t delay_us = 0;     // kDelay
  std::string vuid;          // kSurpriseRemove: one function (all when empty)

  // Matching commands seen and hits (the action taken), any reactor.
  std::atomic<uint64_t> matched{0};
  std::atomic<uint64_t> hits{0};

  bool is_command_fault() const {
    return action == Action::kStatus || action == Action::kNoCompletion || action == Action::kDelay;
  }
  // Scope only (subsystem, controller, queue, opcode, namespace).
  bool matches(const std::string& subnqn, uint16_t cntlid, uint16_t qid,
               const nvme::Sqe& cmd) const;
  // A matching command: decides whether this one is hit (probability,
  // count) and counts it. Any reactor.
  bool take();
  nlohmann::json to_json() const;
  static const char* action_name(Action a);
};

using FaultList = std::vector<std::shared_ptr<Fault>>;

namespace fault {

// Some command fault exists somewhere: the one branch the command path pays.
extern std::atomic<bool> g_armed;
inline bool armed() {
  return g_armed.load(std::memory_order_relaxed);
}

// The controller's hooks, on the request's qpair's reactor, only when armed().
// Before execution: true when a status or no_completion fault took the
// request (it is completed or held; the caller does nothing more).
bool on_execute(Controller& c, Request* req);
// At completion: true when a delay fault holds the completion back; it is
// handed to Controller::complete_now() when the delay ends.
bool on_complete(Controller& c, Request* req);

// Transports, on qp's reactor, when they stop serving qp (socket closed, SQ
// deleted) and before they wait for its requests: the requests held for qp
// complete with Aborted - SQ Deletion. Cheap when nothing is held.
void qpair_closing(Qpair* qp);

// Abort (admin 08h), on qp's reactor: completes the held request (cid) of qp
// with Command Aborted by Request. False when qp holds no such request.
bool abort_held(Qpair* qp, uint16_t cid);

// Requests held on this reactor (tests, nvmf_fault_list).
size_t held_here();

// Main thread: publish the command faults to every reactor; `done` runs on
// the main reactor once all of them have the new table.
void publish(const FaultList& faults, std::function<void()> done);

}  // namespace fault

void register_fault_rpcs();

}  // namespace nvemu::nvmf
