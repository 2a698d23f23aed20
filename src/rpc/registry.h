// JSON-RPC methods by name, each allowed in some framework states, as SPDK's
// SPDK_RPC_STARTUP / SPDK_RPC_RUNTIME masks: with --wait-for-rpc the app
// starts in kStartup and framework_start_init moves it to kRuntime.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rpc/error.h"
#include "rpc/params.h"

namespace nvemu::rpc {

enum StateMask : unsigned { kStartup = 1, kRuntime = 2, kAnyState = 3 };

// What a method does, returns and fails with: docs/rpc.md is generated from
// these (nvemu-tgt --dump-rpc-methods), and tests/system/test_rpc_docs.py
// fails when a method has none or its listed codes are not the ones it
// returns. Each method lists the codes its own handler throws; the ones every
// method shares (-32601 unknown method, -1 wrong framework state, -32602 for
// a param that does not decode, -32603 an unexpected exception) are stated
// once in the doc's preamble.
struct ErrorDoc {
  int code;          // the JSON-RPC error code, e.g. -19 (-ENODEV)
  std::string when;  // the cause, e.g. "no bdev with that name"
};
struct MethodDoc {
  std::string description;  // one sentence: what it does
  std::string result;       // the shape of "result", e.g. "true", "array of {name, ...}"
  std::vector<ErrorDoc> errors;
};

// Completes one request: exactly one of result()/error(); a notification
// (no id) completes silently. Copyable; safe to call on the main thread later.
class Responder {
 public:
  using SendFn = std::function<void(const nlohmann::json& reply)>;
  Responder(nlohmann::json id, SendFn send) : id_(std::move(id)), send_(std::move(send)) {}
  void result(const nlohmann::json& value) const;
  void error(int code, const std::string& message) const;
  void error(const RpcError& e) const { error(e.code, e.what()); }
  // The same request, with `on_result` run just before a result is sent
  // (only when the request has an id: notifications answer nothing).
  Responder on_result(std::function<void()> on_result) const;

 private:
  nlohmann::json id_;  // null for a notification
  SendFn send_;
};

class Registry {
 public:
  static Registry& instance();

  // A synchronous method: returns the result or throws RpcError.
  using SyncFn = std::function<nlohmann::json(Params& params)>;
  // An asynchronous one: calls r.result()/r.error() when done (it may throw
  // RpcError before starting, which is sent as the reply).
  using AsyncFn = std::function<void(Params& params, const Responder& r)>;

  void add(const std::string& name, unsigned states, SyncFn fn, MethodDoc doc = {});
  void add_async(const std::string& name, unsigned states, AsyncFn fn, MethodDoc doc = {});
  void add_alias(const std::string& alias, const std::string& name);

  unsigned state() const { return state_; }
  void set_state(unsigned s) { state_ = s; }

  // Runs method `name` with params as a request would; used by the server,
  // load_config and -c FILE.
  void dispatch(const std::string& name, const nlohmann::json& params, const Responder& r);
  // A client's request (the RPC server): dispatch(), with the success hook
  // run just before a result is sent. Internal dispatches (load_config's
  // steps, a metrics scrape) do not run it: one request, one hook.
  void dispatch_request(const std::string& name, const nlohmann::json& params, const Responder& r);
  std::vector<std::string> names(unsigned states) const;
  bool has(const std::string& name) const { return methods_.count(name) != 0; }
  // The method's doc (empty when registered without one); null if unknown.
  const MethodDoc* doc(const std::string& name) const;
  // Runs on the main thread before the reply of each client request
  // (dispatch_request) that succeeded (config autosave); the hook may not
  // dispatch. One hook; empty removes it.
  using SuccessHook = std::function<void(const std::string& method)>;
  void set_success_hook(SuccessHook hook) { success_hook_ = std::move(hook); }
  void clear() { methods_.clear(); }

 private:
  struct Method {
    unsigned states;
    AsyncFn fn;
    MethodDoc doc;
  };
  std::map<std::string, Method> methods_;
  std::map<std::string, std::string> aliases_;
  unsigned state_ = kStartup;
  SuccessHook success_hook_;
};

}  // namespace nvemu::rpc
