#include "rpc/registry.h"

#include <fmt/format.h>

#include "common/log.h"

namespace nvemu::rpc {

void Responder::result(const nlohmann::json& value) const {
  if (id_.is_null() || !send_) return;
  send_({{"jsonrpc", "2.0"}, {"id", id_}, {"result", value}});
}

void Responder::error(int code, const std::string& message) const {
  if (id_.is_null() || !send_) return;
  send_({{"jsonrpc", "2.0"}, {"id", id_}, {"error", {{"code", code}, {"message", message}}}});
}

Responder Responder::on_result(std::function<void()> on_result) const {
  return Responder(id_, [send = send_, hook = std::move(on_result)](const nlohmann::json& reply) {
    if (reply.contains("result")) hook();
    if (send) send(reply);
  });
}

Registry& Registry::instance() {
  static Registry r;
  return r;
}

void Registry::add(const std::string& name, unsigned states, SyncFn fn, MethodDoc doc) {
  add_async(
      name, states, [fn = std::move(fn)](Params& p, const Responder& r) { r.result(fn(p)); },
      std::move(doc));
}

void Registry::add_async(const std::string& name, unsigned states, AsyncFn fn, MethodDoc doc) {
  methods_[name] = Method{states, std::move(fn), std::move(doc)};
}

const MethodDoc* Registry::doc(const std::string& name) const {
  auto alias = aliases_.find(name);
  auto it = methods_.find(alias != aliases_.end() ? alias->second : name);
  return it == methods_.end() ? nullptr : &it->second.doc;
}

void Registry::add_alias(const std::string& alias, const std::string& name) {
  aliases_[alias] = name;
}

void Registry::dispatch(const std::string& name, const nlohmann::json& params, const Responder& r) {
  auto alias = aliases_.find(name);
  auto it = methods_.find(alias != aliases_.end() ? alias->second : name);
  if (it == methods_.end()) {
    r.error(kMethodNotFound, "Method not found");
    return;
  }
  if ((it->second.states & state_) != state_) {
    if (state_ == kStartup)
      r.error(kInvalidState,
              "Method may only be called after framework is initialized using "
              "framework_start_init RPC.");
    else
      r.error(kInvalidState,
              "Method may only be called before framework is initialized. Use --wait-for-rpc "
              "command line parameter and then issue this RPC before the framework_start_init "
              "RPC.");
    return;
  }
  try {
    Params p(params, name);
    it->second.fn(p, r);
  } catch (const RpcError& e) {
    LOG_ERROR("rpc", "{}: {}", name, e.what());
    r.error(e);
  } catch (const std::exception& e) {
    LOG_ERROR("rpc", "{}: internal error: {}", name, e.what());
    r.error(kInternalError, fmt::format("{}: internal error: {}", name, e.what()));
  }
}

void Registry::dispatch_request(const std::string& name, const nlohmann::json& params,
                                const Responder& r) {
  if (!success_hook_) return dispatch(name, params, r);
  dispatch(name, params, r.on_result([this, name] {
    if (success_hook_) success_hook_(name);
  }));
}

std::vector<std::string> Registry::names(unsigned states) const {
  std::vector<std::string> out;
  for (const auto& [name, m] : methods_)
    if (m.states & states) out.push_back(name);
  for (const auto& [alias, target] : aliases_) {
    auto it = methods_.find(target);
    if (it != methods_.end() && (it->second.states & states)) out.push_back(alias);
  }
  return out;
}

}  // namespace nvemu::rpc
