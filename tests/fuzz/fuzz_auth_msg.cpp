// libFuzzer entry for the DH-HMAC-CHAP message parser: any bytes an
// AUTH_Send (target) or AUTH_Receive (initiator) may carry. A parsed
// message is rebuilt and parsed again; both parses must agree on the kind.
#include <cstddef>
#include <cstdint>

#include "common/auth/messages.h"

using namespace nvemu::auth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Parsed p = parse_message(data, size);
  if (!p.ok) return 0;
  Bytes again = std::visit([](const auto& m) { return build(m); }, p.msg);
  Parsed q = parse_message(again.data(), again.size());
  if (q.ok && q.msg.index() != p.msg.index()) __builtin_trap();
  return 0;
}
