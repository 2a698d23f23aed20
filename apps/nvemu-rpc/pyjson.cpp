#include "pyjson.h"

#include <fmt/format.h>

namespace nvemu::rpccli {
namespace {

// Decodes one UTF-8 sequence at s[i]; returns the code point (U+FFFD for a
// malformed sequence) and advances i past what it consumed.
uint32_t next_code_point(const std::string& s, size_t& i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

void dump_string(const std::string& s, std::string& out) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp >= 0x20 && cp < 0x7F) {
          out += static_cast<char>(cp);
        } else if (cp < 0x10000) {
          out += fmt::format("\\u{:04x}", cp);
        } else {  // a surrogate pair, as Python writes it
          uint32_t v = cp - 0x10000;
          out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        }
    }
  }
  out += '"';
}

void dump(const Json& j, int indent, int level, std::string& out) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (j.type()) {
    case Json::value_t::object: {
      if (j.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        dump_string(it.key(), out);
        out += ": ";
        dump(it.value(), indent, level + 1, out);
      }
      newline(level);
      out += '}';
      return;
    }
    case Json::value_t::array: {
      if (j.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& v : j) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        dump(v, indent, level + 1, out);
      }
      newline(level);
      out += ']';
      return;
    }
    case Json::value_t::string:
      dump_string(j.get_ref<const std::string&>(), out);
      return;
    default:  // numbers, booleans, null: nlohmann's text equals Python's
      out += j.dump();
      return;
  }
}

}  // namespace

std::string py_dumps(const Json& j, int indent) {
  std::string out;
  dump(j, indent, 0, out);
  return out;
}

std::string print_dict_text(const Json& j) {
  return py_dumps(j, 2);
}

std::string print_json_text(const Json& j) {
  std::string s = py_dumps(j, 2);
  size_t b = s.find_first_not_of('"');
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of('"');
  return s.substr(b, e - b + 1);
}

std::string wire_dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace nvemu::rpccli
