// JSON-RPC errors. Codes are SPDK v23.01's: the JSON-RPC 2.0 ones, -1 for a
// method called in the wrong framework state, and negative errno values
// where SPDK uses them (-17 EEXIST, -19 ENODEV). Messages name the parameter
// or object and what to do about it.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace nvemu::rpc {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kInvalidState = -1;

struct RpcError : std::runtime_error {
  RpcError(int c, const std::string& message) : std::runtime_error(message), code(c) {}
  int code;
};

inline RpcError invalid_params(const std::string& message) {
  return RpcError(kInvalidParams, message);
}
inline RpcError internal_error(const std::string& message) {
  return RpcError(kInternalError, message);
}
// SPDK replies with -errno and strerror text for some failures; nvemu keeps
// the code and appends the cause after the standard text.
RpcError errno_error(int err, const std::string& detail);

}  // namespace nvemu::rpc
