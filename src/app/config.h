#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace nvemu::app {

nlohmann::json full_config();
// framework_get_subsystems: each subsystem and what it depends on.
nlohmann::json subsystem_list();
// The "sock" and "scheduler" subsystems' entries of save_config.
nlohmann::json sock_config_json();
nlohmann::json scheduler_config_json();
// Replays a configuration: startup-state methods first, then
// framework_start_init (if not yet), then the rest in order. "" or why not.
std::string apply_config(const nlohmann::json& cfg);
std::string load_config_file(const std::string& path);
void register_config_rpcs();
void register_app_rpcs();
void register_sock_rpcs();

}  // namespace nvemu::app
