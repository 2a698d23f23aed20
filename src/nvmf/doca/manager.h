// The DOCA flow on software emulation managers. On a BlueField, an
// emulation manager (mlx5_0) owns emulated PCIe functions identified by a
// VUID; `nvmf_subsystem_add_listener -t DOCA -a VUID` hot-plugs one to the
// host. nvemu's manager is a software object and each function is a
// vfio-user endpoint whose socket appears when it is plugged. A hardware
// DevEmu backend would implement the same objects.
//
// A function's life: created -> listening (socket up, no host) -> host
// attached (a vfio-user client holds it) -> enabled (the host driver set
// CC.EN) -> back. The record's firmware error (BAD_RES_STATE_ERR: changing a
// function a host driver held) becomes a refusal that names the function,
// its state, its holder and the way out.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvemu::vfio_user {
class Endpoint;
}

namespace nvemu::nvmf::doca {

struct Function {
  std::string vuid;
  std::string manager;
  std::string dir;     // the vfio-user socket lives at dir/cntrl when listening
  std::string subnqn;  // set while listening
  std::shared_ptr<vfio_user::Endpoint> endpoint;
};

class Managers {
 public:
  static Managers& instance();

  // The default manager exists from start-up; more can be added.
  static constexpr const char* kDefaultManager = "nvemu0";
  bool add_manager(const std::string& name);
  bool has_manager(const std::string& name) const;
  std::vector<std::string> managers() const;

  // Main thread.
  std::string create_function(const std::string& manager);  // the VUID
  // A function with a given VUID (save_config replay: a restarted target
  // must offer the same VUID and socket path). False if it exists.
  bool create_function(const std::string& manager, const std::string& vuid);
  Function* find(const std::string& vuid);
  std::vector<Function*> functions(const std::string& manager);
  bool erase(const std::string& vuid);
  void clear();

  // save_config entries that recreate the managers and functions, in the
  // "nvmf" subsystem ahead of the listeners that plug them.
  std::vector<nlohmann::json> config_entries() const;

  // Where functions' sockets go: $NVEMU_DOCA_DIR or /var/tmp/nvemu-doca.
  static std::string base_dir();

 private:
  Managers();
  std::vector<std::string> managers_;
  std::map<std::string, Function> functions_;
  std::map<std::string, unsigned> next_index_;
};

void register_rpcs();
void register_transport();

}  // namespace nvemu::nvmf::doca
