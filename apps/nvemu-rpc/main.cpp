// nvemu-rpc: nvemu's rpc.py. Global options, then a sub-command and its
// arguments (commands.cpp); with no sub-command and stdin not a terminal,
// each stdin line is one sub-command sent over a single connection.
//
// Exit status: 0 success, 1 error reply / no target / timeout, 2 bad command line.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string_view>

#include "args.h"
#include "client.h"
#include "commands.h"

using namespace nvemu::rpccli;

namespace {

const char* kProg = "nvemu-rpc";
const char* kSubProg = "nvemu-rpc [options]";

ArgParser global_parser() {
  ArgParser p(kProg, "nvemu RPC command line interface (SPDK rpc.py compatible)");
  p.set_usage(std::string(kProg) + " [options] COMMAND [ARGS]  (COMMAND -h shows its arguments)");
  p.add({"-s", "--server", "server_addr", ArgType::kStr,
         "RPC domain socket path or IP address (default /var/tmp/spdk.sock)"});
  p.add({"-p", "--port", "port", ArgType::kInt,
         "RPC port number (if server_addr is IP address, default 5260)"});
  p.add({"-t", "--timeout", "timeout", ArgType::kFloat,
         "Timeout as a floating point number expressed in seconds waiting for response. "
         "Default: 60.0"});
  p.add({"-r", "--conn-retries", "conn_retries", ArgType::kInt,
         "Retry connecting to the RPC server N times with 0.2s interval. Default: 0"});
  p.add({"-v", "", "v", ArgType::kStoreTrue,
         "Set verbose mode to INFO (print requests and responses)"});
  ArgSpec level{"", "--verbose", "verbose", ArgType::kStr, "Set verbose level."};
  level.choices = {"DEBUG", "INFO", "ERROR"};
  p.add(level);
  p.add({"", "--dry-run", "dry_run", ArgType::kStoreTrue, "Display request and exit"});
  std::vector<std::pair<std::string, std::string>> subs;
  for (const auto& c : commands()) subs.emplace_back(c.name, c.help);
  p.set_subcommands("RPC methods", subs);
  return p;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

[[noreturn]] void unknown_command(const ArgParser& top, const std::string& name) {
  std::vector<std::string> close;
  for (const auto& c : commands())
    if (edit_distance(name, c.name) <= 3 ||
        (name.size() >= 4 && c.name.find(name) != std::string::npos))
      close.push_back(c.name);
  std::string hint = "nvemu-rpc -h lists the commands";
  if (!close.empty()) {
    hint = "did you mean ";
    for (size_t i = 0; i < close.size() && i < 5; ++i) hint += (i ? ", " : "") + close[i];
    hint += "?";
  }
  top.error(fmt::format("argument : invalid choice: '{}' ({})", name, hint));
}

// One sub-command line: parse it and run it on `client`.
int run_line(const ArgParser& top, const std::vector<std::string>& words, Client& client) {
  const Command* cmd = find_command(words[0]);
  if (!cmd) unknown_command(top, words[0]);
  ArgParser parser = make_parser(*cmd, kSubProg, &top);
  Namespace ns = parser.parse(std::vector<std::string>(words.begin() + 1, words.end()));
  Context ctx{client, ns};
  return cmd->run ? cmd->run(ctx) : run_command(*cmd, ctx);
}

// rpc.py's execute_script: stdin lines over one connection; '#' comments.
int run_script(const ArgParser& top, Client& client) {
  std::string executed;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    executed += "\n" + line;
    std::vector<std::string> words;
    try {
      words = shell_split(line);
    } catch (const std::exception& e) {
      top.error(fmt::format("cannot split line '{}': {}", line, e.what()));
    }
    if (words.empty() || words[0][0] == '#') continue;
    std::vector<std::string> rest;
    top.parse_prefix(words, &rest);  // global options on a line are accepted and ignored
    if (rest.empty()) continue;
    try {
      run_line(top, rest, client);
    } catch (const RpcException& e) {
      std::cerr << "Exception:\n" << executed.substr(1) << " <<<\n" << e.what() << std::endl;
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // help2man reads the man page's name line from --version.
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf(
        "nvemu-rpc %s\nJSON-RPC client for nvemu-tgt and SPDK targets (rpc.py compatible)\n",
        NVEMU_VERSION);
    return 0;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgParser top = global_parser();
  try {
    std::vector<std::string> rest;
    Namespace g = top.parse_prefix(args, &rest);
    const bool script = rest.empty();
    if (script && isatty(STDIN_FILENO)) {  // nothing to do: rpc.py prints its help
      std::cout << top.help();
      return 1;
    }
    // Parse the sub-command before connecting, so usage errors need no target.
    if (!script) {
      const Command* cmd = find_command(rest[0]);
      if (!cmd) unknown_command(top, rest[0]);
      make_parser(*cmd, kSubProg, &top)
          .parse(std::vector<std::string>(rest.begin() + 1, rest.end()));
    }

    ClientOptions opts;
    if (g.has("server_addr")) opts.addr = g.str("server_addr");
    if (g.has("port")) opts.port = static_cast<int>(g.integer("port"));
    if (g.has("timeout")) opts.timeout = g.real("timeout");
    if (g.has("conn_retries")) opts.conn_retries = static_cast<int>(g.integer("conn_retries"));
    std::string level = g.has("verbose") ? g.str("verbose") : g.flag("v") ? "INFO" : "ERROR";
    opts.log_level = level == "DEBUG"  ? LogLevel::kDebug
                     : level == "INFO" ? LogLevel::kInfo
                                       : LogLevel::kError;

    std::unique_ptr<Client> client;
    try {
      client = g.flag("dry_run") ? make_dry_run_client() : make_socket_client(opts);
    } catch (const RpcException& e) {
      std::cerr << e.what() << std::endl;
      return 1;
    }
    if (script) return run_script(top, *client);
    return run_line(top, rest, *client);
  } catch (const HelpRequested& h) {
    std::cout << h.help_text;
    return 0;
  } catch (const UsageError& e) {
    std::cerr << e.usage_text << e.prog << ": error: " << e.what() << std::endl;
    return 2;
  } catch (const RpcException& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  } catch (const CommandError& e) {
    std::cerr << e.what() << std::endl;
    return e.status;
  } catch (const std::exception& e) {  // e.g. a reply of an unexpected shape
    std::cerr << kProg << ": error: " << e.what() << std::endl;
    return 1;
  }
}
