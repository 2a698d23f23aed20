// One JSON-RPC 2.0 call over a Unix socket, for asking a running target.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace nvemu::doctor {

// The reply object, or a null json with *error set when the call failed.
nlohmann::json rpc_call(const std::string& socket_path, const std::string& method,
                        const nlohmann::json& params, std::string* error);

}  // namespace nvemu::doctor
