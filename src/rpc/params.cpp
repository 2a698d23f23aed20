#include "rpc/params.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

namespace nvemu::rpc {

Params::Params(const nlohmann::json& params, std::string method)
    : params_(params), method_(std::move(method)) {
  if (!params_.is_null() && !params_.is_object())
    throw invalid_params(fmt::format("{}: params must be a JSON object", method_));
}

const nlohmann::json* Params::lookup(const char* key, bool required) {
  seen_.insert(key);
  if (params_.is_object()) {
    auto it = params_.find(key);
    if (it != params_.end()) return &*it;
  }
  if (required)
    throw invalid_params(fmt::format("{}: missing required parameter '{}'", method_, key));
  return nullptr;
}

void Params::type_error(const char* key, const char* want) {
  const nlohmann::json* v = params_.is_object() ? &params_.at(key) : nullptr;
  throw invalid_params(
      fmt::format("{}: {} must be {} (got {})", method_, key, want, v ? v->dump() : "nothing"));
}

template <typename T>
T Params::narrow(const char* key, uint64_t v) {
  if (v > std::numeric_limits<T>::max())
    throw invalid_params(fmt::format("{}: {} = {} is too large (at most {})", method_, key, v,
                                     std::numeric_limits<T>::max()));
  return static_cast<T>(v);
}

std::string Params::str(const char* key) {
  const nlohmann::json* v = lookup(key, true);
  if (!v->is_string()) type_error(key, "a string");
  return v->get<std::string>();
}

std::optional<std::string> Params::opt_str(const char* key) {
  const nlohmann::json* v = lookup(key, false);
  if (!v) return std::nullopt;
  if (!v->is_string()) type_error(key, "a string");
  return v->get<std::string>();
}

uint64_t Params::u64(const char* key) {
  const nlohmann::json* v = lookup(key, true);
  if (!v->is_number_unsigned()) type_error(key, "an unsigned integer");
  return v->get<uint64_t>();
}

std::optional<uint64_t> Params::opt_u64(const char* key) {
  const nlohmann::json* v = lookup(key, false);
  if (!v) return std::nullopt;
  if (!v->is_number_unsigned()) type_error(key, "an unsigned integer");
  return v->get<uint64_t>();
}

uint32_t Params::u32(const char* key) {
  return narrow<uint32_t>(key, u64(key));
}

std::optional<uint32_t> Params::opt_u32(const char* key) {
  auto v = opt_u64(key);
  if (!v) return std::nullopt;
  return narrow<uint32_t>(key, *v);
}

std::optional<uint16_t> Params::opt_u16(const char* key) {
  auto v = opt_u64(key);
  if (!v) return std::nullopt;
  return narrow<uint16_t>(key, *v);
}

std::optional<int64_t> Params::opt_i64(const char* key) {
  const nlohmann::json* v = lookup(key, false);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) type_error(key, "an integer");
  return v->get<int64_t>();
}

bool Params::boolean(const char* key) {
  const nlohmann::json* v = lookup(key, true);
  if (!v->is_boolean()) type_error(key, "true or false");
  return v->get<bool>();
}

std::optional<bool> Params::opt_bool(const char* key) {
  const nlohmann::json* v = lookup(key, false);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) type_error(key, "true or false");
  return v->get<bool>();
}

const nlohmann::json& Params::object(const char* key) {
  const nlohmann::json* v = lookup(key, true);
  if (!v->is_object()) type_error(key, "a JSON object");
  return *v;
}

const nlohmann::json* Params::opt_value(const char* key) {
  return lookup(key, false);
}

void Params::done() {
  if (!params_.is_object()) return;
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    if (!seen_.count(it.key())) {
      throw invalid_params(fmt::format("{}: unknown parameter '{}' (known: {})", method_, it.key(),
                                       fmt::join(seen_, ", ")));
    }
  }
}

}  // namespace nvemu::rpc
