// Splits a byte stream into complete JSON values. SPDK's clients (rpc.py)
// send requests without any delimiter and may put several on one write;
// the record's client ends each with '\n'. Both work: a value ends where
// its outermost object or array closes.
#pragma once

#include <cstddef>
#include <string_view>

namespace nvemu::rpc {

class JsonStreamScanner {
 public:
  enum class Result { kNeedMore, kComplete, kInvalid };
  // Scans data starting at the last scanned offset. On kComplete, *end is
  // one past the value's last byte (relative to data). Leading whitespace
  // before a value is allowed; anything else outside {} or [] is kInvalid.
  Result scan(std::string_view data, size_t* end);
  void reset();

 private:
  size_t pos_ = 0;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool started_ = false;
};

}  // namespace nvemu::rpc
