// DH-HMAC-CHAP, controller side: parse the host's message, check it against
// the transaction's state, then act. Failures are recorded and answered
// with Failure1 on the next Authentication Receive, as SPDK and Linux do;
// each failure is logged once with the subsystem, host, queue and step.
#include "nvmf/auth/target_auth.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "common/auth/dhchap.h"
#include "common/auth/messages.h"
#include "common/log.h"
#include "nvme/auth.h"
#include "nvme/fabrics.h"
#include "nvmf/controller.h"
#include "nvmf/target.h"
#include "nvmf/transport.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

namespace w = nvme::auth;
using nvme::Status;

// One queue's transaction.
struct QpairAuth {
  enum class State : uint8_t {
    kNegotiate,  // waiting for Send(Negotiate)
    kChallenge,  // waiting for Receive -> Challenge
    kReply,      // waiting for Send(Reply)
    kSuccess1,   // waiting for Receive -> Success1
    kSuccess2,   // waiting for Send(Success2) (controller authenticated to the host)
    kFailure1,   // waiting for Receive -> Failure1, then the queue goes
    kDone,
  };
  Qpair* qp = nullptr;
  std::string subnqn, hostnqn;
  std::shared_ptr<Subsystem> subsys;
  State state = State::kNegotiate;
  bool authenticated = false;
  uint16_t tid = 0;
  auth::Hash hash = auth::Hash::kSha256;
  auth::DhGroup group = auth::DhGroup::kNull;
  uint32_t seqnum = 0;
  auth::Bytes c1;
  std::unique_ptr<auth::DhKey> dh;
  bool cvalid = false;
  auth::Bytes r2;  // the controller's response, sent in Success1
  uint8_t fail_reason = 0;
  // The transaction's timeout (SPDK 24.x nvmf_auth_rearm_poller): a timer
  // on the queue's reactor, armed when a transaction starts and re-armed at
  // each step the host completes. Cancelled here when the queue goes, from
  // whatever thread drops the last reference.
  Reactor* reactor = nullptr;
  Reactor::TimerId timer = 0;

  QpairAuth() = default;
  QpairAuth(const QpairAuth&) = delete;
  QpairAuth& operator=(const QpairAuth&) = delete;
  ~QpairAuth() {
    if (!timer || !reactor) return;
    if (reactor->on_thread()) {
      reactor->cancel_timer(timer);
    } else {
      Reactor* r = reactor;
      Reactor::TimerId id = timer;
      r->send([r, id] { r->cancel_timer(id); });
    }
  }
};

namespace auth_target {

namespace {

// SPDK 24.x's NVMF_AUTH_DEFAULT_KATO_US: the step timeout of a host that set
// no KATO.
constexpr uint32_t kDefaultTimeoutMs = 120'000;

const char* state_name(QpairAuth::State s) {
  switch (s) {
    case QpairAuth::State::kNegotiate:
      return "negotiate";
    case QpairAuth::State::kChallenge:
      return "challenge";
    case QpairAuth::State::kReply:
      return "reply";
    case QpairAuth::State::kSuccess1:
      return "success1";
    case QpairAuth::State::kSuccess2:
      return "success2";
    case QpairAuth::State::kFailure1:
      return "failure1";
    case QpairAuth::State::kDone:
      return "done";
  }
  return "?";
}

// One S1 per transaction, never 0 (0 means "none" in a Reply's S2).
uint32_t next_seqnum() {
  static std::atomic<uint32_t> counter{[] {
    uint32_t seed = 0;
    auth::random_bytes(&seed, sizeof seed);
    return seed;
  }()};
  uint32_t v;
  do v = counter.fetch_add(1) + 1;
  while (v == 0);
  return v;
}

// The step failed: log it (host, step, why) and answer the next Receive
// with Failure1.
void fail(QpairAuth& a, uint8_t reason, const std::string& why) {
  LOG_ERROR_LIMITED("auth", "DH-HMAC-CHAP of host {} on {} (qid {}) failed at {}: {} ({})",
                    a.hostnqn, a.subnqn, a.qp->qid(), state_name(a.state), why,
                    auth::failure_name(reason));
  a.fail_reason = reason;
  a.state = QpairAuth::State::kFailure1;
}

void cancel_timeout(QpairAuth& a) {
  if (a.timer) a.reactor->cancel_timer(a.timer);
  a.timer = 0;
}

// Drops the queue a little after Failure1 is sent, so the host reads the
// reason before the connection goes (SPDK waits likewise).
void disconnect_soon(const std::shared_ptr<QpairAuth>& a) {
  cancel_timeout(*a);
  std::weak_ptr<QpairAuth> weak = a;
  a->qp->reactor().add_timer(std::chrono::milliseconds(100), [weak] {
    if (auto self = weak.lock()) self->qp->disconnect();
  });
}

uint32_t timeout_ms(const QpairAuth& a) {
  const auto& ctrlr = a.qp->controller();
  uint32_t kato = ctrlr ? ctrlr->kato_ms() : 0;
  return kato ? kato : kDefaultTimeoutMs;
}

// The host let the step time out. A first authentication ends with the
// queue; a re-authentication of an authenticated queue is abandoned and the
// queue carries on as authenticated (SPDK 24.x nvmf_auth_timeout_poller).
void on_timeout(QpairAuth& a) {
  a.timer = 0;
  LOG_ERROR_LIMITED("auth",
                    "DH-HMAC-CHAP of host {} on {} (qid {}) timed out at {}: no message from the "
                    "host for {} ms (the host's KATO, 120 s without one); {}",
                    a.hostnqn, a.subnqn, a.qp->qid(), state_name(a.state), timeout_ms(a),
                    a.authenticated ? "re-authentication abandoned, the queue stays authenticated"
                                    : "disconnecting the queue");
  a.dh.reset();
  if (a.authenticated) {
    a.state = QpairAuth::State::kDone;
    return;
  }
  a.state = QpairAuth::State::kFailure1;
  a.qp->disconnect();
}

// (Re)starts the step timeout: at Connect, at a re-authentication's first
// command, and after each step that leaves the controller waiting for the
// host. Runs on the queue's reactor.
void arm_timeout(const std::shared_ptr<QpairAuth>& a) {
  cancel_timeout(*a);
  std::weak_ptr<QpairAuth> weak = a;
  a->timer = a->reactor->add_timer(std::chrono::milliseconds(timeout_ms(*a)), [weak] {
    if (auto self = weak.lock()) on_timeout(*self);
  });
}

// Strongest hash and group that both the host offers and the target allows.
void negotiate(QpairAuth& a, const auth::Negotiate& m) {
  if (a.state != QpairAuth::State::kNegotiate && a.state != QpairAuth::State::kDone)
    return fail(a, w::why::kIncorrectProtocol, "negotiate in the middle of a transaction");
  if (m.sc_c != 0)
    return fail(a, w::why::kConcatMismatch,
                "the host asks for a secure channel (TLS); nvemu has none on this queue");
  a.state = QpairAuth::State::kNegotiate;
  a.tid = m.tid;
  const Target& tgt = Target::instance();
  uint32_t digests = tgt.dhchap_digests.load(), groups = tgt.dhchap_dhgroups.load();
  bool have_hash = false, have_group = false;
  for (auth::Hash h : {auth::Hash::kSha512, auth::Hash::kSha384, auth::Hash::kSha256}) {
    if (!(digests & (1u << static_cast<unsigned>(h)))) continue;
    for (auth::Hash o : m.hashes)
      if (o == h && !have_hash) a.hash = h, have_hash = true;
  }
  if (!have_hash)
    return fail(a, w::why::kHashUnusable,
                "no hash the host offers is allowed (nvmf_set_config dhchap_digests)");
  for (auth::DhGroup g :
       {auth::DhGroup::kFfdhe8192, auth::DhGroup::kFfdhe6144, auth::DhGroup::kFfdhe4096,
        auth::DhGroup::kFfdhe3072, auth::DhGroup::kFfdhe2048, auth::DhGroup::kNull}) {
    if (!(groups & (1u << static_cast<unsigned>(g)))) continue;
    for (auth::DhGroup o : m.groups)
      if (o == g && !have_group) a.group = g, have_group = true;
  }
  if (!have_group)
    return fail(a, w::why::kDhgroupUnusable,
                "no DH group the host offers is allowed (nvmf_set_config dhchap_dhgroups)");
  LOG_DEBUG("auth", "host {} on {} qid {}: {} with {}", a.hostnqn, a.subnqn, a.qp->qid(),
            auth::hash_name(a.hash), auth::dhgroup_name(a.group));
  a.state = QpairAuth::State::kChallenge;
}

void reply(QpairAuth& a, const auth::Reply& m) {
  if (a.state != QpairAuth::State::kReply)
    return fail(a, w::why::kIncorrectProtocol, "a reply before the challenge was read");
  if (m.tid != a.tid)
    return fail(a, w::why::kIncorrectPayload, "the reply's T_ID differs from the negotiate's");
  if (m.hl != auth::hash_len(a.hash))
    return fail(a, w::why::kIncorrectPayload, "the reply's hash length differs from the hash's");
  if (m.cvalid && m.seqnum == 0)
    return fail(a, w::why::kIncorrectPayload, "controller authentication asked with S2 = 0");
  auth::Bytes challenge = a.c1;
  auth::Bytes session;
  if (a.group != auth::DhGroup::kNull) {
    std::string err;
    session = a.dh->derive(m.dhv.data(), m.dhv.size(), &err);
    if (session.empty()) return fail(a, w::why::kIncorrectPayload, err);
    challenge = auth::augmented_challenge(a.hash, session, a.c1);
  } else if (!m.dhv.empty()) {
    return fail(a, w::why::kIncorrectPayload, "a DH value with the null group");
  }
  // The host's keys as the subsystem holds them now (SPDK looks them up at
  // each reply too): a queue holds no key between transactions.
  Subsystem::HostKeys keys = a.subsys->host_keys(a.hostnqn);
  if (!keys.key)
    return fail(a, w::why::kFailed,
                "the host has no DH-HMAC-CHAP key on the subsystem any more "
                "(nvmf_subsystem_add_host dhchap_key)");
  auth::Bytes kh = auth::transform_key(keys.key->secret, a.hostnqn);
  auth::Bytes expect =
      auth::host_response(a.hash, kh, challenge, a.seqnum, a.tid, 0, a.hostnqn, a.subnqn);
  if (!auth::equal(expect, m.r.data(), m.r.size()))
    return fail(a, w::why::kFailed,
                "the host's response does not match its key '" + keys.key->name + "'");
  a.cvalid = m.cvalid;
  if (m.cvalid) {
    if (!keys.ctrlr_key)
      return fail(a, w::why::kFailed,
                  "the host asks the controller to authenticate but has no dhchap_ctrlr_key");
    auth::Bytes c2 = m.c;
    if (a.group != auth::DhGroup::kNull) c2 = auth::augmented_challenge(a.hash, session, m.c);
    auth::Bytes kc = auth::transform_key(keys.ctrlr_key->secret, a.subnqn);
    a.r2 = auth::ctrl_response(a.hash, kc, c2, m.seqnum, a.tid, 0, a.subnqn, a.hostnqn);
  }
  a.state = QpairAuth::State::kSuccess1;
}

void done(QpairAuth& a) {
  a.state = QpairAuth::State::kDone;
  cancel_timeout(a);
  a.dh.reset();
  if (!a.authenticated)
    LOG_NOTICE("auth", "host {} authenticated on {} qid {} ({}, {}{})", a.hostnqn, a.subnqn,
               a.qp->qid(), auth::hash_name(a.hash), auth::dhgroup_name(a.group),
               a.cvalid ? ", bidirectional" : "");
  a.authenticated = true;
  auto& ctrlr = a.qp->controller();
  if (a.qp->qid() == 0 && ctrlr) ctrlr->host_authenticated = true;
}

Status send(const std::shared_ptr<QpairAuth>& ap, Request* req, uint32_t tl) {
  QpairAuth& a = *ap;
  std::vector<uint8_t> buf(tl);
  if (req->copy_from_iov(buf.data(), tl) < tl) {
    fail(a, w::why::kIncorrectPayload, "the message is shorter than TL");
    return Status::success();
  }
  auth::Parsed p = auth::parse_message(buf.data(), buf.size());
  if (!p.ok) {
    fail(a, p.reason, p.error);
    return Status::success();
  }
  if (auto* m = std::get_if<auth::Negotiate>(&p.msg)) {
    negotiate(a, *m);
    if (a.state == QpairAuth::State::kChallenge) arm_timeout(ap);
  } else if (auto* m = std::get_if<auth::Reply>(&p.msg)) {
    reply(a, *m);
  } else if (auto* m = std::get_if<auth::Success2>(&p.msg)) {
    if (a.state != QpairAuth::State::kSuccess2)
      fail(a, w::why::kIncorrectProtocol, "success2 out of turn");
    else if (m->tid != a.tid)
      fail(a, w::why::kIncorrectPayload, "the success2's T_ID differs from the negotiate's");
    else
      done(a);
  } else if (auto* m = std::get_if<auth::Failure>(&p.msg); m && !m->failure1) {
    // The host rejected the controller's response (or gave up).
    LOG_ERROR_LIMITED("auth", "host {} on {} (qid {}) rejected the controller at {}: {}", a.hostnqn,
                      a.subnqn, a.qp->qid(), state_name(a.state),
                      auth::failure_name(m->explanation));
    a.state = QpairAuth::State::kFailure1;
    a.authenticated = false;
    disconnect_soon(ap);
  } else {
    fail(a, w::why::kIncorrectProtocol, "a message only the controller sends");
  }
  return Status::success();
}

Status receive(const std::shared_ptr<QpairAuth>& ap, Request* req, uint32_t al) {
  QpairAuth& a = *ap;
  auth::Bytes out;
  switch (a.state) {
    case QpairAuth::State::kChallenge: {
      size_t hl = auth::hash_len(a.hash);
      a.c1.resize(hl);
      a.seqnum = next_seqnum();
      auth::Challenge c;
      c.tid = a.tid;
      c.hash = a.hash;
      c.group = a.group;
      c.seqnum = a.seqnum;
      if (!auth::random_bytes(a.c1.data(), hl)) {
        fail(a, w::why::kFailed, "no random bytes for the challenge");
        break;
      }
      c.c = a.c1;
      if (a.group != auth::DhGroup::kNull) {
        std::string err;
        a.dh = auth::DhKey::generate(a.group, &err);
        if (!a.dh) {
          fail(a, w::why::kFailed, err);
          break;
        }
        c.dhv = a.dh->public_value();
      }
      out = auth::build(c);
      a.state = QpairAuth::State::kReply;
      arm_timeout(ap);
      break;
    }
    case QpairAuth::State::kSuccess1: {
      auth::Success1 s;
      s.tid = a.tid;
      s.hl = static_cast<uint8_t>(auth::hash_len(a.hash));
      s.rvalid = a.cvalid;
      if (a.cvalid) s.r = a.r2;
      out = auth::build(s);
      if (a.cvalid) {
        a.state = QpairAuth::State::kSuccess2;
        arm_timeout(ap);
      } else
        done(a);
      break;
    }
    case QpairAuth::State::kFailure1:
      break;
    default:
      fail(a, w::why::kIncorrectProtocol,
           std::string("a receive while the controller waits for the host's message"));
      break;
  }
  if (a.state == QpairAuth::State::kFailure1) {
    out = auth::build(auth::Failure{a.tid, true, w::kRescodeFailed, a.fail_reason});
    a.authenticated = false;
    disconnect_soon(ap);
  }
  if (out.size() > al) {
    LOG_ERROR_LIMITED("auth", "host {} on {} (qid {}): AL {} is shorter than the {}-byte message",
                      a.hostnqn, a.subnqn, a.qp->qid(), al, out.size());
    a.authenticated = false;
    disconnect_soon(ap);
    return Status::generic(nvme::sc::kInvalidField).at(offsetof(w::AuthCmd, len));
  }
  out.resize(al, 0);
  req->copy_to_iov(out.data(), out.size());
  return Status::success();
}

}  // namespace

uint32_t on_connect(Qpair& qp, Controller& ctrlr) {
  if (!ctrlr.subsystem()->host_keys(ctrlr.hostnqn()).key) return 0;
  auto a = std::make_shared<QpairAuth>();
  a->qp = &qp;
  a->subnqn = ctrlr.subsystem()->nqn();
  a->hostnqn = ctrlr.hostnqn();
  a->subsys = ctrlr.subsystem();
  a->reactor = &qp.reactor();
  arm_timeout(a);
  qp.auth = std::move(a);
  return w::kConnectAuthreqAtr;
}

bool may_run(const Qpair& qp) {
  return !qp.auth || qp.auth->authenticated;
}

Status execute(Request* req) {
  auto cmd = nvme::as<w::AuthCmd>(req->cmd);
  std::shared_ptr<QpairAuth> a = req->qpair->auth;
  if (!a) {
    // SPDK: authentication not armed for this queue.
    return Status::generic(nvme::sc::kCommandSequenceError);
  }
  if (cmd.secp != w::kSecpNvme || cmd.spsp0 != w::kSpsp || cmd.spsp1 != w::kSpsp) {
    LOG_ERROR_LIMITED("auth", "host {}: SECP {:#x} SPSP {:#x}/{:#x}, not DH-HMAC-CHAP's",
                      a->hostnqn, cmd.secp, cmd.spsp0, cmd.spsp1);
    return Status::generic(nvme::sc::kInvalidField).at(offsetof(w::AuthCmd, secp));
  }
  if (cmd.len == 0 || cmd.len > 8192 || cmd.len > req->length) {
    LOG_ERROR_LIMITED("auth", "host {}: TL/AL {} with {} data bytes", a->hostnqn, cmd.len,
                      req->length);
    return Status::generic(nvme::sc::kInvalidField).at(offsetof(w::AuthCmd, len));
  }
  if (a->state == QpairAuth::State::kDone) {
    // A re-authentication starts (SPDK: nvmf_qpair_auth_init on an enabled
    // queue): it has its own timeout.
    a->state = QpairAuth::State::kNegotiate;
    arm_timeout(a);
  }
  if (cmd.fctype == nvme::fctype::kAuthSend) return send(a, req, cmd.len);
  return receive(a, req, cmd.len);
}

}  // namespace auth_target
}  // namespace nvemu::nvmf
