// A small argparse work-alike: the subset rpc.py's parsers use, with
// argparse's usage/help layout and error messages, so nvemu-rpc's command
// lines and diagnostics read like rpc.py's.
//
//  * positionals (required, or nargs='?'), in declaration order;
//  * options with a short and/or long name taking one value (str, int,
//    float, optional choices) or none (store_true / store_false);
//  * "-bVAL", "-b=VAL", "--name=VAL", combined short flags ("-ae"),
//    unambiguous long-option prefixes, "--" ending options, negative numbers
//    as values; "--some_opt" is read as "--some-opt" (rpc.py does the same).
//  * -h/--help on every parser.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace nvemu::rpccli {

// kJson: text that must be a JSON object or array (kept as text).
// kAppend: action='append' of strings; each use adds one (a list value).
enum class ArgType { kStr, kInt, kFloat, kJson, kStoreTrue, kStoreFalse, kAppend };

struct ArgSpec {
  std::string short_opt;  // "-b", or empty
  std::string long_opt;   // "--name", or empty; both empty = positional
  std::string dest;       // value name; derived from the long/short name if empty
  ArgType type = ArgType::kStr;
  std::string help;
  bool required = false;  // options only
  bool optional = false;  // positionals only: nargs='?'
  std::vector<std::string> choices;
  std::string metavar;

  bool positional() const { return short_opt.empty() && long_opt.empty(); }
  bool takes_value() const { return type != ArgType::kStoreTrue && type != ArgType::kStoreFalse; }
};

// None (not given, no default), text, integer, float, flag or list (append).
using Value =
    std::variant<std::monostate, std::string, int64_t, double, bool, std::vector<std::string>>;

class Namespace {
 public:
  bool has(const std::string& dest) const;  // given, or a flag
  const Value& get(const std::string& dest) const;
  std::string str(const std::string& dest) const;
  int64_t integer(const std::string& dest) const;
  double real(const std::string& dest) const;
  bool flag(const std::string& dest) const;
  void set(const std::string& dest, Value v) { values_[dest] = std::move(v); }

 private:
  std::map<std::string, Value> values_;
};

// Python truthiness of a value (None, "", 0, 0.0, false are false).
bool truthy(const Value& v);

// Bad command line: print usage + "PROG: error: MESSAGE", exit 2.
struct UsageError : std::runtime_error {
  UsageError(std::string prog, std::string usage, const std::string& msg)
      : std::runtime_error(msg), prog(std::move(prog)), usage_text(std::move(usage)) {}
  std::string prog;
  std::string usage_text;
};
// -h/--help was given: print help_text to stdout, exit 0.
struct HelpRequested {
  std::string help_text;
};

class ArgParser {
 public:
  ArgParser(std::string prog, std::string description = "");

  ArgParser& add(ArgSpec spec);
  // Extra help section listing sub-commands (top-level parser).
  void set_subcommands(std::string title, std::vector<std::pair<std::string, std::string>> cmds) {
    sub_title_ = std::move(title);
    subcommands_ = std::move(cmds);
  }
  void set_usage(std::string usage) { usage_override_ = std::move(usage); }
  // A sub-command parser: argparse reports unrecognized arguments through
  // the parent parser (its prog and usage).
  void set_parent(const ArgParser* parent) { parent_ = parent; }

  // Parses all of `argv`. Throws UsageError or HelpRequested.
  Namespace parse(const std::vector<std::string>& argv) const;
  // Parses options up to the first positional; that and what follows go to
  // *rest (a sub-command and its arguments).
  Namespace parse_prefix(const std::vector<std::string>& argv,
                         std::vector<std::string>* rest) const;

  std::string usage() const;  // "usage: ...\n"
  std::string help() const;
  [[noreturn]] void error(const std::string& msg) const { throw UsageError(prog_, usage(), msg); }
  const std::string& prog() const { return prog_; }

 private:
  Namespace parse_impl(const std::vector<std::string>& argv, std::vector<std::string>* rest) const;
  const ArgSpec* find_long(const std::string& name) const;
  const ArgSpec* find_short(const std::string& name) const;
  Value convert(const ArgSpec& a, const std::string& text) const;

  std::string prog_;
  std::string description_;
  std::string usage_override_;
  std::vector<ArgSpec> args_;
  std::string sub_title_;
  std::vector<std::pair<std::string, std::string>> subcommands_;
  const ArgParser* parent_ = nullptr;
};

// argparse's dest for an option: "--serial-number" -> "serial_number".
std::string default_dest(const ArgSpec& a);

// The name an argument is shown by in messages: "-b/--name" or "total_size".
std::string display_name(const ArgSpec& a);

// POSIX shell-like split (shlex.split): quotes, backslashes, whitespace.
// Throws std::runtime_error on an unterminated quote.
std::vector<std::string> shell_split(const std::string& line);

}  // namespace nvemu::rpccli
