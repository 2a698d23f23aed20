// Fuzzes the JSON-RPC wire path: splitting a byte stream into JSON values,
// parsing each, and decoding params with the typed accessors every method
// uses. None of it may crash, whatever arrives on the socket.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rpc/json_stream.h"
#include "rpc/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  nvemu::rpc::JsonStreamScanner scanner;
  // Feed in two pieces, as a split request arrives.
  size_t cut = size ? data[0] % (size + 1) : 0;
  std::string buf = in.substr(0, cut);
  for (int round = 0; round < 2; ++round) {
    for (;;) {
      size_t end = 0;
      auto r = scanner.scan(buf, &end);
      if (r != nvemu::rpc::JsonStreamScanner::Result::kComplete) {
        if (r == nvemu::rpc::JsonStreamScanner::Result::kInvalid) return 0;
        break;
      }
      nlohmann::json req = nlohmann::json::parse(buf.substr(0, end), nullptr, false);
      buf.erase(0, end);
      if (req.is_discarded() || !req.is_object()) continue;
      nlohmann::json params = req.value("params", nlohmann::json());
      try {
        nvemu::rpc::Params p(params, "fuzz");
        p.opt_str("name");
        p.opt_u64("num_blocks");
        p.opt_u32("block_size");
        p.opt_u16("min_cntlid");
        p.opt_i64("dif_type");
        p.opt_bool("allow_any_host");
        if (p.opt_value("namespace")) p.object("namespace");
        p.done();
      } catch (const nvemu::rpc::RpcError&) {
      }
    }
    buf += in.substr(cut);
  }
  return 0;
}
