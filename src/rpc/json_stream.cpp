#include "rpc/json_stream.h"

namespace nvemu::rpc {

void JsonStreamScanner::reset() {
  *this = JsonStreamScanner();
}

JsonStreamScanner::Result JsonStreamScanner::scan(std::string_view data, size_t* end) {
  constexpr int kMaxDepth = 64;  // deeper nesting is never a valid request
  for (; pos_ < data.size(); ++pos_) {
    char c = data[pos_];
    if (!started_) {
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
      if (c != '{' && c != '[') return Result::kInvalid;
      started_ = true;
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escape_)
        escape_ = false;
      else if (c == '\\')
        escape_ = true;
      else if (c == '"')
        in_string_ = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        break;
      case '{':
      case '[':
        if (++depth_ > kMaxDepth) return Result::kInvalid;
        break;
      case '}':
      case ']':
        if (--depth_ == 0) {
          *end = pos_ + 1;
          reset();
          return Result::kComplete;
        }
        break;
      default:
        break;
    }
  }
  return Result::kNeedMore;
}

}  // namespace nvemu::rpc
