#include "rpc/error.h"

#include <cstring>

namespace nvemu::rpc {

RpcError errno_error(int err, const std::string& detail) {
  std::string msg = std::strerror(err);
  if (!detail.empty()) msg += ": " + detail;
  return RpcError(-err, msg);
}

}  // namespace nvemu::rpc
