// The sub-command table. Each entry declares its arguments exactly as
// rpc.py's parser does (same names, letters, types), where each argument's
// value goes in the request's params, and how the result is printed. Adding
// a method is one entry in commands.cpp.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "args.h"
#include "client.h"
#include "pyjson.h"

namespace nvemu::rpccli {

// A command that cannot run as asked (e.g. rpc.py's "ERROR: --md-size must
// be > 0 ..."): message to stderr, exit with `status`.
struct CommandError : std::runtime_error {
  CommandError(const std::string& msg, int status) : std::runtime_error(msg), status(status) {}
  int status;
};

// When an argument lands in params (rpc.py's python/spdk/rpc/*.py each pick
// one of these per parameter).
enum class Emit {
  kTruthy,   // `if x: params[k] = x` (the usual case; 0, "" and false are left out)
  kNotNull,  // `if x is not None` / remove_null(): given values, and flags always
  kNever,    // read by a custom builder only
};

struct Arg {
  ArgSpec spec;
  std::string param;  // params key; "a.b" nests; empty = the argument's dest
  Emit emit = Emit::kTruthy;

  Arg& to(std::string key) {
    param = std::move(key);
    return *this;
  }
  Arg& when(Emit e) {
    emit = e;
    return *this;
  }
  Arg& never() {
    emit = Emit::kNever;
    return *this;
  }
  Arg& required() {
    spec.required = true;
    return *this;
  }
  Arg& choices(std::vector<std::string> c) {
    spec.choices = std::move(c);
    return *this;
  }
  Arg& dest(std::string d) {
    spec.dest = std::move(d);
    return *this;
  }
};

// Positional (required, or optional with nargs='?').
Arg pos(std::string name, std::string help, ArgType type = ArgType::kStr);
Arg pos_opt(std::string name, std::string help, ArgType type = ArgType::kStr);
// Option with a value. Either name may be empty.
Arg opt(std::string short_opt, std::string long_opt, std::string help,
        ArgType type = ArgType::kStr);
// store_true / store_false flag.
Arg flag(std::string short_opt, std::string long_opt, std::string help, bool store_false = false);

// How a result is printed (rpc.py: nothing, print_dict, print_json or
// print_array: the items joined by spaces).
enum class Output { kNone, kDict, kJson, kArray };

struct Context {
  Client& client;
  const Namespace& args;
};

struct Command {
  std::string name;
  std::string help;
  std::vector<Arg> args;
  Output out = Output::kNone;
  // Runs before the declarative mapping (to put computed keys first) ...
  std::function<void(const Namespace&, Json&)> pre = nullptr;
  // ... and after it (derived values, renames).
  std::function<void(const Namespace&, Json&)> post = nullptr;
  // A client-side command (save_config, load_config): replaces the call.
  std::function<int(Context&)> run = nullptr;
  std::string method = "";  // defaults to name
};

const std::vector<Command>& commands();
// Each module's parsers, in a file of its own (commands_<module>.cpp),
// appended to commands().
std::vector<Command> nvme_commands();
std::vector<Command> rbd_commands();
std::vector<Command> fault_commands();
std::vector<Command> fault_bdev_commands();
std::vector<Command> auth_commands();
// "a,b,c" in option dest -> params[key] = ["a","b","c"] (rpc.py's d.split(',')).
void put_comma_list(const Namespace& a, const char* dest, Json& p, const char* key);
const Command* find_command(const std::string& name);

// Builds a parser for `cmd` whose prog is `prog_prefix + " " + cmd.name`.
ArgParser make_parser(const Command& cmd, const std::string& prog_prefix,
                      const ArgParser* parent = nullptr);
// The params object rpc.py would send for these parsed arguments.
Json build_params(const Command& cmd, const Namespace& ns);
// Calls the method and prints the result; returns the exit status.
int run_command(const Command& cmd, Context& ctx);

// Client-side configuration commands (config.cpp).
int save_config(Context& ctx);
int load_config(Context& ctx);
int raw_call(Context& ctx);

}  // namespace nvemu::rpccli
