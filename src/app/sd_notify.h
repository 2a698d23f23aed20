// systemd's service readiness protocol (sd_notify(3)) without libsystemd:
// one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named by
// $NOTIFY_SOCKET ("/path" or "@abstract"). Outside systemd the variable is
// unset and every call is a no-op, so nvemu-tgt calls these unconditionally.
#pragma once

#include <string>

namespace nvemu::app {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. Returns
// "" when sent or when there is no NOTIFY_SOCKET, else why it failed (the
// caller logs it: a unit with Type=notify would time out).
std::string sd_notify(const std::string& state);

}  // namespace nvemu::app
