// In-process loopback transport: a Qpair that tests (and the nvemu host
// library, later) drive synchronously. Build a Request, point its iovecs at a
// buffer, submit it, poll the reactor until complete() arrives, inspect the
// CQE. The CQE is encoded exactly as a real transport would (cid, sqid,
// status field from req->status).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "nvme/fabrics.h"
#include "nvmf/fabrics.h"
#include "nvmf/transport.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

class LoopbackQpair : public Qpair {
 public:
  LoopbackQpair(Reactor& reactor, uint16_t qid, uint32_t sq_size = 128)
      : Qpair(reactor, qid, sq_size) {}
  ~LoopbackQpair() override;

  void disconnect() override { disconnect_requested = true; }
  std::string trtype() const override { return "LOOPBACK"; }
  nlohmann::json peer_json() const override {
    return {{"trtype", "LOOPBACK"}, {"adrfam", ""}, {"traddr", "loopback"}, {"trsvcid", ""}};
  }

  // Submits (submit_request) and polls the qpair's reactor on the calling
  // thread until req completes or timeout passes. True when it completed.
  // req is not left in `completed`.
  bool run(Request* req, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  // Polls until `pred` holds or timeout passes.
  template <typename Pred>
  bool poll_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  // Tells the controller layer the queue is gone (qpair_destroyed), once.
  void destroy();

  std::vector<Request*> completed;  // in completion order
  bool disconnect_requested = false;

 protected:
  void deliver(Request* req) override;

 private:
  bool destroyed_ = false;
};

// A request with one flat data buffer.
struct LoopbackRequest {
  Request req;
  std::vector<uint8_t> data;
  // Prepares req for submission on qp with a data buffer of `len` bytes.
  void prepare(Qpair& qp, const nvme::Sqe& cmd, size_t len);
};

// Builds a Connect command and its data.
nvme::Sqe make_connect(uint16_t qid, uint16_t sqsize_0based, uint32_t kato_ms, uint16_t cid = 0);
std::vector<uint8_t> make_connect_data(const std::string& subnqn, const std::string& hostnqn,
                                       uint16_t cntlid = nvme::kDynamicCntlid,
                                       const uint8_t* hostid = nullptr);
nvme::Sqe make_property_get(uint32_t offset, bool eight_bytes, uint16_t cid = 0);
nvme::Sqe make_property_set(uint32_t offset, uint64_t value, bool eight_bytes, uint16_t cid = 0);

template <typename Pred>
bool LoopbackQpair::poll_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    reactor().poll_once();
  }
  return true;
}

}  // namespace nvemu::nvmf
