#include "args.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

namespace nvemu::rpccli {
namespace {

const ArgSpec kHelp{"-h", "--help", "help", ArgType::kStoreTrue, "show this help message and exit"};

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string dest_of(const ArgSpec& a) {
  return a.dest.empty() ? default_dest(a) : a.dest;
}

std::string metavar_of(const ArgSpec& a) {
  if (!a.metavar.empty()) return a.metavar;
  if (!a.choices.empty()) {
    std::string s = "{";
    for (size_t i = 0; i < a.choices.size(); ++i) s += (i ? "," : "") + a.choices[i];
    return s + "}";
  }
  return a.positional() ? dest_of(a) : upper(dest_of(a));
}

bool is_negative_number(const std::string& s) {
  static const std::regex re(R"(^-\d+$|^-\d*\.\d+$)");
  return std::regex_match(s, re);
}

int terminal_width() {
  int cols = 80;
  if (const char* c = std::getenv("COLUMNS")) {
    int v = std::atoi(c);
    if (v > 0) cols = v;
  }
  return cols - 2;
}

// Whitespace-collapsed words of a help text.
std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  for (const auto& w : words(text)) {
    if (!line.empty() && line.size() + 1 + w.size() > width) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// argparse's HelpFormatter._format_usage line filling.
std::vector<std::string> usage_lines(const std::vector<std::string>& parts,
                                     const std::string& indent, const std::string* prefix,
                                     size_t text_width) {
  std::vector<std::string> lines, line;
  size_t line_len = (prefix ? prefix->size() : indent.size()) - 1;
  auto flush = [&] {
    std::string s = indent;
    for (size_t i = 0; i < line.size(); ++i) s += (i ? " " : "") + line[i];
    lines.push_back(s);
    line.clear();
  };
  for (const auto& p : parts) {
    if (line_len + 1 + p.size() > text_width && !line.empty()) {
      flush();
      line_len = indent.size() - 1;
    }
    line.push_back(p);
    line_len += p.size() + 1;
  }
  if (!line.empty()) flush();
  if (prefix && !lines.empty()) lines[0] = lines[0].substr(indent.size());
  return lines;
}

}  // namespace

std::string default_dest(const ArgSpec& a) {
  if (a.positional()) return a.dest;
  std::string n = !a.long_opt.empty() ? a.long_opt.substr(2) : a.short_opt.substr(1);
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

std::string display_name(const ArgSpec& a) {
  if (a.positional()) return metavar_of(a);
  if (!a.short_opt.empty() && !a.long_opt.empty()) return a.short_opt + "/" + a.long_opt;
  return a.short_opt.empty() ? a.long_opt : a.short_opt;
}

// ---- Namespace ----

bool Namespace::has(const std::string& dest) const {
  auto it = values_.find(dest);
  return it != values_.end() && !std::holds_alternative<std::monostate>(it->second);
}

const Value& Namespace::get(const std::string& dest) const {
  static const Value kNone;
  auto it = values_.find(dest);
  return it == values_.end() ? kNone : it->second;
}

std::string Namespace::str(const std::string& dest) const {
  const Value& v = get(dest);
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  return "";
}

int64_t Namespace::integer(const std::string& dest) const {
  const Value& v = get(dest);
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return static_cast<int64_t>(*d);
  return 0;
}

double Namespace::real(const std::string& dest) const {
  const Value& v = get(dest);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return 0;
}

bool Namespace::flag(const std::string& dest) const {
  return truthy(get(dest));
}

bool truthy(const Value& v) {
  return std::visit(
      [](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          return false;
        else if constexpr (std::is_same_v<T, std::string> ||
                           std::is_same_v<T, std::vector<std::string>>)
          return !x.empty();
        else
          return x != 0;
      },
      v);
}

// ---- ArgParser ----

ArgParser::ArgParser(std::string prog, std::string description)
    : prog_(std::move(prog)), description_(std::move(description)) {
  args_.push_back(kHelp);
}

ArgParser& ArgParser::add(ArgSpec spec) {
  if (spec.dest.empty()) spec.dest = dest_of(spec);
  args_.push_back(std::move(spec));
  return *this;
}

const ArgSpec* ArgParser::find_short(const std::string& name) const {
  for (const auto& a : args_)
    if (!a.short_opt.empty() && a.short_opt == name) return &a;
  return nullptr;
}

const ArgSpec* ArgParser::find_long(const std::string& name) const {
  for (const auto& a : args_)
    if (!a.long_opt.empty() && a.long_opt == name) return &a;
  std::vector<const ArgSpec*> matches;
  for (const auto& a : args_)
    if (!a.long_opt.empty() && a.long_opt.compare(0, name.size(), name) == 0) matches.push_back(&a);
  if (matches.size() > 1) {
    std::string list;
    for (auto* m : matches) list += (list.empty() ? "" : ", ") + m->long_opt;
    error(fmt::format("ambiguous option: {} could match {}", name, list));
  }
  return matches.empty() ? nullptr : matches[0];
}

Value ArgParser::convert(const ArgSpec& a, const std::string& text) const {
  Value v;
  switch (a.type) {
    case ArgType::kInt: {
      std::string t = text;
      t.erase(0, t.find_first_not_of(" \t"));
      t.erase(t.find_last_not_of(" \t") + 1);
      static const std::regex re(R"(^[+-]?\d+$)");
      errno = 0;
      long long n = std::regex_match(t, re) ? std::strtoll(t.c_str(), nullptr, 10) : 0;
      if (!std::regex_match(t, re) || errno == ERANGE)
        error(fmt::format("argument {}: invalid int value: '{}'", display_name(a), text));
      v = static_cast<int64_t>(n);
      break;
    }
    case ArgType::kFloat: {
      char* end = nullptr;
      errno = 0;
      double d = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || text.find_first_of("xX") != std::string::npos)
        error(fmt::format("argument {}: invalid float value: '{}'", display_name(a), text));
      v = d;
      break;
    }
    case ArgType::kJson: {
      size_t first = text.find_first_not_of(" \t\r\n");
      if (first == std::string::npos || (text[first] != '{' && text[first] != '[') ||
          !nlohmann::json::accept(text))
        error(
            fmt::format("argument {}: invalid JSON object or array: '{}'", display_name(a), text));
      v = text;
      break;
    }
    default:
      v = text;
  }
  if (!a.choices.empty()) {
    std::string shown = a.type == ArgType::kStr ? "'" + text + "'" : text;
    bool ok = false;
    for (const auto& c : a.choices) {
      if (a.type == ArgType::kInt)
        ok |= std::to_string(std::get<int64_t>(v)) == c;
      else
        ok |= c == text;
    }
    if (!ok) {
      std::string list;
      for (const auto& c : a.choices)
        list += (list.empty() ? "" : ", ") + (a.type == ArgType::kStr ? "'" + c + "'" : c);
      error(fmt::format("argument {}: invalid choice: {} (choose from {})", display_name(a), shown,
                        list));
    }
  }
  return v;
}

Namespace ArgParser::parse(const std::vector<std::string>& argv) const {
  return parse_impl(argv, nullptr);
}

Namespace ArgParser::parse_prefix(const std::vector<std::string>& argv,
                                  std::vector<std::string>* rest) const {
  rest->clear();
  return parse_impl(argv, rest);
}

Namespace ArgParser::parse_impl(const std::vector<std::string>& argv,
                                std::vector<std::string>* rest) const {
  Namespace ns;
  std::vector<const ArgSpec*> positionals;
  for (const auto& a : args_) {
    if (a.positional())
      positionals.push_back(&a);
    else if (a.type == ArgType::kStoreTrue)
      ns.set(a.dest, false);
    else if (a.type == ArgType::kStoreFalse)
      ns.set(a.dest, true);
  }
  std::vector<const ArgSpec*> seen;
  std::vector<std::string> extras;
  size_t next_pos = 0;
  bool only_positional = false;

  auto looks_like_option = [&](const std::string& s) {
    if (s.size() < 2 || s[0] != '-' || is_negative_number(s)) return false;
    if (s.find(' ') != std::string::npos) {
      std::string head = s.substr(0, s.find('='));
      return find_short(head) != nullptr || (head.rfind("--", 0) == 0 && find_long(head));
    }
    return true;
  };

  auto store = [&](const ArgSpec& a, const std::string* value) {
    if (a.dest == "help") throw HelpRequested{help()};
    switch (a.type) {
      case ArgType::kStoreTrue:
        ns.set(a.dest, true);
        break;
      case ArgType::kStoreFalse:
        ns.set(a.dest, false);
        break;
      case ArgType::kAppend: {
        std::vector<std::string> list;
        if (auto* prev = std::get_if<std::vector<std::string>>(&ns.get(a.dest))) list = *prev;
        list.push_back(*value);
        ns.set(a.dest, std::move(list));
        break;
      }
      default:
        ns.set(a.dest, convert(a, *value));
    }
    seen.push_back(&a);
  };

  for (size_t i = 0; i < argv.size(); ++i) {
    std::string tok = argv[i];
    if (!only_positional && tok == "--") {
      only_positional = true;
      continue;
    }
    if (only_positional || !looks_like_option(tok)) {
      if (rest) {
        rest->assign(argv.begin() + static_cast<long>(i), argv.end());
        break;
      }
      if (next_pos < positionals.size()) {
        const ArgSpec& a = *positionals[next_pos++];
        ns.set(a.dest, convert(a, tok));
      } else {
        extras.push_back(tok);
      }
      continue;
    }

    // The value for an option that takes one: explicit, or the next token.
    auto take_value = [&](const ArgSpec& a, std::optional<std::string> explicit_value) {
      if (explicit_value) return *explicit_value;
      if (i + 1 < argv.size() && !looks_like_option(argv[i + 1]) && argv[i + 1] != "--")
        return argv[++i];
      error(fmt::format("argument {}: expected one argument", display_name(a)));
    };

    if (tok.rfind("--", 0) == 0) {
      std::string name = tok;
      std::optional<std::string> explicit_value;
      if (auto eq = tok.find('='); eq != std::string::npos) {
        name = tok.substr(0, eq);
        explicit_value = tok.substr(eq + 1);
      }
      std::replace(name.begin() + 2, name.end(), '_', '-');  // rpc.py: --tgt_name == --tgt-name
      const ArgSpec* a = find_long(name);
      if (!a) {
        extras.push_back(tok);
        continue;
      }
      if (a->takes_value()) {
        std::string v = take_value(*a, explicit_value);
        store(*a, &v);
      } else {
        if (explicit_value)
          error(fmt::format("argument {}: ignored explicit argument '{}'", display_name(*a),
                            *explicit_value));
        store(*a, nullptr);
      }
      continue;
    }

    // Short option(s): "-b", "-bVAL", "-b=VAL", "-ae" (flags), multi-char "-k2".
    if (const ArgSpec* whole = find_short(tok.substr(0, tok.find('=')))) {
      if (whole->short_opt.size() > 2 || tok.find('=') != std::string::npos) {
        std::optional<std::string> ev;
        if (auto eq = tok.find('='); eq != std::string::npos) ev = tok.substr(eq + 1);
        if (whole->takes_value()) {
          std::string v = take_value(*whole, ev);
          store(*whole, &v);
        } else {
          if (ev)
            error(fmt::format("argument {}: ignored explicit argument '{}'", display_name(*whole),
                              *ev));
          store(*whole, nullptr);
        }
        continue;
      }
    }
    const ArgSpec* a = find_short(tok.substr(0, 2));
    if (!a) {
      extras.push_back(tok);
      continue;
    }
    std::string tail = tok.substr(2);
    while (true) {
      if (a->takes_value()) {
        if (!tail.empty() && tail[0] == '=') tail.erase(0, 1);
        std::string v = take_value(*a, tail.empty() ? std::nullopt : std::optional(tail));
        store(*a, &v);
        break;
      }
      store(*a, nullptr);
      if (tail.empty()) break;
      const ArgSpec* next = find_short("-" + tail.substr(0, 1));
      if (!next)
        error(fmt::format("argument {}: ignored explicit argument '{}'", display_name(*a), tail));
      a = next;
      tail.erase(0, 1);
    }
  }

  std::vector<std::string> missing;
  for (const auto& a : args_) {
    if (a.positional()) {
      if (!a.optional && !ns.has(a.dest)) missing.push_back(display_name(a));
    } else if (a.required && std::find(seen.begin(), seen.end(), &a) == seen.end()) {
      missing.push_back(display_name(a));
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    error("the following arguments are required: " + list);
  }
  if (!extras.empty()) {
    std::string list;
    for (const auto& e : extras) list += (list.empty() ? "" : " ") + e;
    (parent_ ? parent_ : this)->error("unrecognized arguments: " + list);
  }
  return ns;
}

std::string ArgParser::usage() const {
  const std::string prefix = "usage: ";
  if (!usage_override_.empty()) return prefix + usage_override_ + "\n";
  std::vector<std::string> opt_parts, pos_parts;
  for (const auto& a : args_) {
    if (a.positional()) {
      pos_parts.push_back(a.optional ? "[" + metavar_of(a) + "]" : metavar_of(a));
      continue;
    }
    std::string s = a.short_opt.empty() ? a.long_opt : a.short_opt;
    if (a.takes_value()) s += " " + metavar_of(a);
    opt_parts.push_back(a.required ? s : "[" + s + "]");
  }
  size_t text_width = static_cast<size_t>(terminal_width());
  std::string all = prefix + prog_;
  for (const auto& p : opt_parts) all += " " + p;
  for (const auto& p : pos_parts) all += " " + p;
  if (all.size() <= text_width) return all + "\n";

  std::vector<std::string> lines;
  if (prefix.size() + prog_.size() <= 0.75 * static_cast<double>(text_width)) {
    std::string indent(prefix.size() + prog_.size() + 1, ' ');
    std::vector<std::string> first = {prog_};
    if (!opt_parts.empty()) {
      first.insert(first.end(), opt_parts.begin(), opt_parts.end());
      lines = usage_lines(first, indent, &prefix, text_width);
      auto more = usage_lines(pos_parts, indent, nullptr, text_width);
      lines.insert(lines.end(), more.begin(), more.end());
    } else {
      first.insert(first.end(), pos_parts.begin(), pos_parts.end());
      lines = usage_lines(first, indent, &prefix, text_width);
    }
  } else {
    std::string indent(prefix.size(), ' ');
    std::vector<std::string> parts = opt_parts;
    parts.insert(parts.end(), pos_parts.begin(), pos_parts.end());
    lines = usage_lines(parts, indent, nullptr, text_width);
    if (lines.size() > 1) {
      lines = usage_lines(opt_parts, indent, nullptr, text_width);
      auto more = usage_lines(pos_parts, indent, nullptr, text_width);
      lines.insert(lines.end(), more.begin(), more.end());
    }
    lines.insert(lines.begin(), prog_);
  }
  std::string out = prefix;
  for (size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" : "") + lines[i];
  return out + "\n";
}

std::string ArgParser::help() const {
  const int width = terminal_width();
  const int max_help_position = std::min(24, std::max(width - 20, 4));

  auto invocation = [](const ArgSpec& a) {
    if (a.positional()) return metavar_of(a);
    std::string s;
    for (const std::string* o : {&a.short_opt, &a.long_opt}) {
      if (o->empty()) continue;
      if (!s.empty()) s += ", ";
      s += *o + (a.takes_value() ? " " + metavar_of(a) : "");
    }
    return s;
  };
  size_t max_len = 0;
  for (const auto& a : args_) max_len = std::max(max_len, invocation(a).size() + 2);
  for (const auto& [name, h] : subcommands_) max_len = std::max(max_len, name.size() + 4);
  const int help_position = std::min(static_cast<int>(max_len) + 2, max_help_position);
  const size_t help_width = static_cast<size_t>(std::max(width - help_position, 11));

  auto entry = [&](int indent, const std::string& header, const std::string& text) {
    std::string out(static_cast<size_t>(indent), ' ');
    const int action_width = help_position - indent - 2;
    auto lines = wrap(text, help_width);
    if (lines.empty()) return out + header + "\n";
    if (static_cast<int>(header.size()) <= action_width) {
      out += fmt::format("{:<{}}  {}\n", header, action_width, lines[0]);
    } else {
      out += header + "\n" + std::string(static_cast<size_t>(help_position), ' ') + lines[0] + "\n";
    }
    for (size_t i = 1; i < lines.size(); ++i)
      out += std::string(static_cast<size_t>(help_position), ' ') + lines[i] + "\n";
    return out;
  };

  std::string out = usage();
  if (!description_.empty()) {
    out += "\n";
    for (const auto& l : wrap(description_, static_cast<size_t>(width))) out += l + "\n";
  }
  std::string pos;
  for (const auto& a : args_)
    if (a.positional()) pos += entry(2, invocation(a), a.help);
  if (!subcommands_.empty()) {
    pos += entry(2, "", sub_title_);
    for (const auto& [name, h] : subcommands_) pos += entry(4, name, h);
  }
  if (!pos.empty()) out += "\npositional arguments:\n" + pos;
  out += "\noptions:\n";
  for (const auto& a : args_)
    if (!a.positional()) out += entry(2, invocation(a), a.help);
  return out;
}

// ---- shell_split ----

std::vector<std::string> shell_split(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) out.push_back(cur), cur.clear(), in_word = false;
    } else if (c == '\'') {
      in_word = true;
      size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) throw std::runtime_error("No closing quotation");
      cur += line.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      in_word = true;
      for (++i;; ++i) {
        if (i >= line.size()) throw std::runtime_error("No closing quotation");
        if (line[i] == '"') break;
        if (line[i] == '\\' && i + 1 < line.size() &&
            std::string("\\\"$`\n").find(line[i + 1]) != std::string::npos)
          ++i;
        cur += line[i];
      }
    } else if (c == '\\') {
      in_word = true;
      if (i + 1 >= line.size()) throw std::runtime_error("No escaped character");
      cur += line[++i];
    } else {
      in_word = true;
      cur += c;
    }
  }
  if (in_word) out.push_back(cur);
  return out;
}

}  // namespace nvemu::rpccli
