// DH-HMAC-CHAP, host side (Base 2.0, 8.13.5; the order of steps of Linux's
// drivers/nvme/host/auth.c): Negotiate -> Challenge -> Reply -> Success1
// [-> Success2 after checking the controller's response], synchronously on
// the queue that was just connected.
#include "nvme/auth.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>

#include "common/auth/messages.h"
#include "host/tcp/host.h"

namespace nvemu::host::tcp {

namespace {

namespace w = nvme::auth;
constexpr uint32_t kRecvLen = 4096;  // as Linux's CHAP buffer

nvme::Sqe auth_sqe(uint8_t fctype, uint32_t len) {
  nvme::Sqe s{};
  s.opc = 0x7f;
  s.nsid = fctype;  // FCTYPE is byte 4
  // Bytes 41..43: SPSP0, SPSP1, SECP; bytes 44..47: TL / AL.
  s.cdw10 = uint32_t{w::kSpsp} << 8 | uint32_t{w::kSpsp} << 16 | uint32_t{w::kSecpNvme} << 24;
  s.cdw11 = len;
  return s;
}

std::string send(Queue& q, const auth::Bytes& msg, int timeout_ms, const char* step) {
  nvme::Cqe c{};
  auth::Bytes buf = msg;
  std::string err = q.exec(auth_sqe(0x05, static_cast<uint32_t>(buf.size())), buf.data(),
                           static_cast<uint32_t>(buf.size()), Dir::kToController, &c, timeout_ms);
  if (!err.empty()) return fmt::format("DH-HMAC-CHAP {}: {}", step, err);
  if (!cqe_ok(c))
    return fmt::format("DH-HMAC-CHAP {}: Authentication Send failed: {}", step,
                       cqe_status_string(c));
  return "";
}

std::string receive(Queue& q, int timeout_ms, const char* step, auth::Parsed* out) {
  nvme::Cqe c{};
  static thread_local uint8_t buf[kRecvLen];
  std::memset(buf, 0, sizeof buf);
  std::string err =
      q.exec(auth_sqe(0x06, kRecvLen), buf, kRecvLen, Dir::kFromController, &c, timeout_ms);
  if (!err.empty()) return fmt::format("DH-HMAC-CHAP {}: {}", step, err);
  if (!cqe_ok(c))
    return fmt::format("DH-HMAC-CHAP {}: Authentication Receive failed: {}", step,
                       cqe_status_string(c));
  *out = auth::parse_message(buf, kRecvLen);
  if (!out->ok) return fmt::format("DH-HMAC-CHAP {}: the controller sent {}", step, out->error);
  if (auto* f = std::get_if<auth::Failure>(&out->msg))
    return fmt::format("DH-HMAC-CHAP {}: the controller refused: {} (explanation {:#x})", step,
                       auth::failure_name(f->explanation), f->explanation);
  return "";
}

uint16_t next_tid() {
  static std::atomic<uint16_t> tid{1};
  return tid.fetch_add(1);
}

}  // namespace

std::string Host::authenticate(Queue& q, uint16_t qid) {
  const ConnectParams& p = params_;
  if (!p.dhchap_key)
    return fmt::format(
        "the controller requires DH-HMAC-CHAP authentication on queue {}: give a dhchap_key "
        "(a keyring key holding this host's secret)",
        qid);
  int to = p.timeout_ms;
  auth::Negotiate neg;
  neg.tid = next_tid();
  for (auth::Hash h : {auth::Hash::kSha256, auth::Hash::kSha384, auth::Hash::kSha512})
    if (p.dhchap_digests & (1u << static_cast<unsigned>(h))) neg.hashes.push_back(h);
  for (unsigned g = 0; g <= 5; ++g)
    if (p.dhchap_dhgroups & (1u << g)) neg.groups.push_back(static_cast<auth::DhGroup>(g));
  std::string err = send(q, auth::build(neg), to, "negotiate");
  if (!err.empty()) return err;

  auth::Parsed msg;
  if (!(err = receive(q, to, "challenge", &msg)).empty()) return err;
  auto* got = std::get_if<auth::Challenge>(&msg.msg);
  if (!got || got->tid != neg.tid)
    return "DH-HMAC-CHAP challenge: the controller sent another message or T_ID";
  const auth::Challenge challenge = *got;  // msg is reused for Success1
  const auth::Challenge* ch = &challenge;

  auth::Reply rep;
  rep.tid = neg.tid;
  rep.hl = static_cast<uint8_t>(auth::hash_len(ch->hash));
  auth::Bytes c1 = ch->c, session;
  if (ch->group != auth::DhGroup::kNull) {
    auto dh = auth::DhKey::generate(ch->group, &err);
    if (!dh) return "DH-HMAC-CHAP reply: " + err;
    session = dh->derive(ch->dhv.data(), ch->dhv.size(), &err);
    if (session.empty()) return "DH-HMAC-CHAP reply: " + err;
    rep.dhv = dh->public_value();
    c1 = auth::augmented_challenge(ch->hash, session, ch->c);
  }
  rep.r = auth::host_response(ch->hash, auth::transform_key(*p.dhchap_key, p.hostnqn), c1,
                              ch->seqnum, neg.tid, 0, p.hostnqn, p.subnqn);
  auth::Bytes c2;
  if (p.dhchap_ctrlr_key) {
    c2.resize(rep.hl);
    uint32_t s2 = 0;
    while (s2 == 0) auth::random_bytes(&s2, sizeof s2);
    auth::random_bytes(c2.data(), c2.size());
    rep.cvalid = true;
    rep.seqnum = s2;
    rep.c = c2;
  }
  if (!(err = send(q, auth::build(rep), to, "reply")).empty()) return err;

  if (!(err = receive(q, to, "success1", &msg)).empty()) return err;
  auto* s1 = std::get_if<auth::Success1>(&msg.msg);
  if (!s1 || s1->tid != neg.tid)
    return "DH-HMAC-CHAP success1: the controller sent another message or T_ID";
  if (!p.dhchap_ctrlr_key) return "";

  auth::Bytes aug2 = c2;
  if (ch->group != auth::DhGroup::kNull) aug2 = auth::augmented_challenge(ch->hash, session, c2);
  auth::Bytes expect =
      auth::ctrl_response(ch->hash, auth::transform_key(*p.dhchap_ctrlr_key, p.subnqn), aug2,
                          rep.seqnum, neg.tid, 0, p.subnqn, p.hostnqn);
  if (!s1->rvalid || !auth::equal(expect, s1->r.data(), s1->r.size())) {
    send(q, auth::build(auth::Failure{neg.tid, false, w::kRescodeFailed, w::why::kFailed}), to,
         "failure2");
    return "DH-HMAC-CHAP success1: the controller's response does not match dhchap_ctrlr_key "
           "(the target is not who it claims, or the keys differ)";
  }
  return send(q, auth::build(auth::Success2{neg.tid}), to, "success2");
}

}  // namespace nvemu::host::tcp
