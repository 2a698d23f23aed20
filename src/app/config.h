#pragma once

#include <functional>
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
// framework_start_init (if not yet), then the rest in order, each entry
// after the one before it answered (some answer later: an attach connects
// first). `done` gets "" or why not, on the main reactor.
void apply_config(const nlohmann::json& cfg, std::function<void(const std::string&)> done);
void load_config_file(const std::string& path, std::function<void(const std::string&)> done);
void register_config_rpcs();
void register_app_rpcs();
void register_sock_rpcs();

}  // namespace nvemu::app
