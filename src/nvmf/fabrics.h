// The entry points every transport uses to hand commands to the controller
// layer (NVMe over Fabrics 1.1, section 3). A transport never interprets a
// command: it builds a Request, makes its data reachable through iovecs and
// calls submit_request() on the qpair's reactor. The controller answers with
// exactly one Qpair::complete(req) on that same reactor.
#pragma once

#include "nvmf/request.h"

namespace nvemu::nvmf {

class Qpair;

// Entry for every command a transport receives, on the qpair's reactor.
// Fabrics commands (opcode 7Fh: Connect, Property Get/Set) are handled here;
// every other command goes to req->qpair->controller()->execute(req).
// A qpair with no controller accepts only Connect (anything else completes
// with Command Sequence Error). req->qpair must be set.
//
// Connect needs the 1024-byte Connect data in req->iov (req->length >= 1024).
// On success the qpair's controller is set (Qpair::set_controller) before the
// completion, and rsp.cdw0 bits 15:0 carry the CNTLID.
void submit_request(Request* req);

// The transport says a qpair is gone (socket closed, queue deleted). Call it
// on the qpair's reactor, once, after every request handed in has completed
// or before the transport frees the Qpair. The controller completes (with
// Aborted - SQ Deletion) the requests it parks itself (Asynchronous Event
// Requests) before returning, forgets the qpair and clears
// qpair->controller(). When the admin qpair of a fabrics controller goes, the
// controller disconnects its I/O qpairs and is unregistered from its
// subsystem once they are all gone.
void qpair_destroyed(Qpair* qp);

}  // namespace nvemu::nvmf
