// The JSON-RPC 2.0 client (rpc.py's JSONRPCClient): one connection to the
// target's Unix socket (or TCP address), numbered requests, replies read
// until one complete JSON value has arrived — a trailing newline is not
// needed — with a wall-clock timeout per reply.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "pyjson.h"

namespace nvemu::rpccli {

// Failure to reach the target, a timeout, a broken reply or a JSON-RPC
// error reply; message() is the text rpc.py prints for it.
class RpcException : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LogLevel { kError = 0, kInfo = 1, kDebug = 2 };

struct ClientOptions {
  std::string addr = "/var/tmp/spdk.sock";
  int port = 5260;        // when addr is an IP address
  double timeout = 60.0;  // seconds to wait for each reply
  int conn_retries = 0;   // extra connection attempts, 0.2 s apart
  LogLevel log_level = LogLevel::kError;
};

class Client {
 public:
  virtual ~Client() = default;
  // Sends `method` with `params` (omitted when empty, as rpc.py does, unless
  // `send_empty_params`) and returns the reply's "result". Throws
  // RpcException.
  virtual Json call(const std::string& method, const Json& params = Json::object(),
                    bool send_empty_params = false) = 0;
  virtual bool dry_run() const { return false; }
};

// Connects in the constructor (throws RpcException naming the socket).
std::unique_ptr<Client> make_socket_client(const ClientOptions& opts);
// --dry-run: prints each request and returns null without connecting.
std::unique_ptr<Client> make_dry_run_client();

}  // namespace nvemu::rpccli
