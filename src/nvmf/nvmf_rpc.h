#pragma once

#include <nlohmann/json.hpp>

#include "nvmf/subsystem.h"

namespace nvemu::nvmf {
// nvmf_* RPCs for subsystems, namespaces and hosts (nvmf_rpc.cpp) and for
// transports, listeners and stats (transport_rpc.cpp).
void register_subsystem_rpcs();
void register_transport_rpcs();
// {"subsystem":"nvmf","config":[...]} for save_config.
nlohmann::json config_json();
// The listener entries of every subsystem, used by config_json().
nlohmann::json listener_config(const std::string& nqn);
// Removes a listener from a subsystem and stops the transport listening on
// it when no other subsystem uses the address.
void release_listener(Subsystem& s, const ListenAddress& a);
}  // namespace nvemu::nvmf
