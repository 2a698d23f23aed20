// DH-HMAC-CHAP, controller side (NVMe Base 2.0, 8.13.5; the order of steps
// of Linux's nvmet and SPDK 24.x's lib/nvmf/auth.c): one transaction per
// queue pair, driven by the host's Authentication Send / Receive commands.
//
//   Connect (ATR set) -> Send Negotiate -> Receive Challenge -> Send Reply
//   -> Receive Success1 [-> Send Success2 when the host asked for the
//   controller's response]; any failure -> Receive Failure1, then the queue
//   is dropped.
//
// Until its transaction succeeds a queue runs nothing but these two
// commands (Authentication Required, SCT 1h SC 91h), and I/O queues of a
// controller whose admin queue has not authenticated cannot connect. A
// successful queue may start over (re-authentication on the host's
// request) and keeps running while it does. Each transaction has a
// timeout, as SPDK 24.x: the controller's KATO (120 s when the host set
// none), re-armed at each step; a first authentication that times out drops
// the queue, a re-authentication is abandoned and the queue stays
// authenticated. Everything runs on the queue's reactor.
#pragma once

#include <cstdint>

#include "nvme/sqe.h"

namespace nvemu::nvmf {

class Controller;
class Qpair;
struct Request;

namespace auth_target {

// At Connect of qp to ctrlr: when the host has a DH-HMAC-CHAP key on the
// subsystem, arms qp's transaction (and its timeout) and returns the Connect response's
// AUTHREQ bits to OR into DW0; else 0.
uint32_t on_connect(Qpair& qp, Controller& ctrlr);
// The queue may run commands other than Authentication Send / Receive.
bool may_run(const Qpair& qp);
// Authentication Send (fctype 05h) or Receive (06h). Returns the status to
// complete the command with; Receive fills the request's data.
nvme::Status execute(Request* req);

}  // namespace auth_target
}  // namespace nvemu::nvmf
