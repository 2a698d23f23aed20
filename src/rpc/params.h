// Typed access to a method's "params" object with SPDK's decoding rules
// (unknown keys and wrong types are invalid params) and messages that say
// which parameter is wrong and what it should be.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "rpc/error.h"

namespace nvemu::rpc {

class Params {
 public:
  // `params` may be null (no "params" member): every lookup is then absent.
  Params(const nlohmann::json& params, std::string method);

  std::string str(const char* key);
  std::optional<std::string> opt_str(const char* key);
  uint64_t u64(const char* key);
  std::optional<uint64_t> opt_u64(const char* key);
  uint32_t u32(const char* key);
  std::optional<uint32_t> opt_u32(const char* key);
  std::optional<uint16_t> opt_u16(const char* key);
  std::optional<int64_t> opt_i64(const char* key);
  bool boolean(const char* key);
  std::optional<bool> opt_bool(const char* key);
  const nlohmann::json& object(const char* key);
  const nlohmann::json* opt_value(const char* key);

  const nlohmann::json& raw() const { return params_; }
  bool seen(const std::string& key) const { return seen_.count(key) != 0; }

  // Call after the last lookup: rejects keys the method does not know.
  void done();
  const std::string& method() const { return method_; }

 private:
  const nlohmann::json* lookup(const char* key, bool required);
  [[noreturn]] void type_error(const char* key, const char* want);
  template <typename T>
  T narrow(const char* key, uint64_t v);

  const nlohmann::json& params_;
  std::string method_;
  std::set<std::string> seen_;
};

}  // namespace nvemu::rpc
