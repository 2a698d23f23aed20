// Transport "DOCA": plugging a function of an emulation manager as a
// listener. The function's vfio-user endpoint is created when the listener
// is added and destroyed when it is removed.
#include <fmt/format.h>

#include "nvmf/doca/manager.h"
#include "nvmf/target.h"
#include "nvmf/vfio_user/endpoint.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf::doca {
namespace {

class DocaTransport final : public Transport {
 public:
  explicit DocaTransport(TransportOpts opts) : Transport(std::move(opts)) {}
  ~DocaTransport() override {
    for (const auto& m : Managers::instance().managers())
      for (Function* f : Managers::instance().functions(m)) unplug(*f);
  }

  std::string listen(const ListenAddress& addr) override {
    return fmt::format(
        "DOCA function {} must be plugged for a subsystem: "
        "nvmf_subsystem_add_listener NQN -t DOCA -a {}",
        addr.traddr, addr.traddr);
  }

  std::string listen_for_subsystem(const ListenAddress& addr, const std::string& subnqn) override {
    Function* f = Managers::instance().find(addr.traddr);
    if (!f)
      return fmt::format(
          "no DOCA function with VUID '{}'; create one with "
          "nvmf_doca_create_function -d {} (nvmf_doca_list_functions lists them)",
          addr.traddr, Managers::kDefaultManager);
    if (f->endpoint)
      return fmt::format("function {} is already plugged for {}; remove that listener first",
                         f->vuid, f->subnqn);
    auto subsys = Target::instance().find_subsystem(subnqn);
    if (!subsys || subsys->type() != Subsystem::Type::kNvme)
      return fmt::format("{} is not an NVMe subsystem", subnqn);
    auto& set = ReactorSet::instance();
    if (!set.created()) return "no reactors are running";
    std::string error;
    auto ep = vfio_user::Endpoint::create(f->dir, subsys, set.next(), opts_, &error);
    if (!ep) return fmt::format("function {}: {}", f->vuid, error);
    f->endpoint = std::move(ep);
    f->subnqn = subnqn;
    return "";
  }

  void stop_listen(const ListenAddress& addr) override {
    if (Function* f = Managers::instance().find(addr.traddr)) unplug(*f);
  }

  void disconnect_subsystem(const std::string& nqn) override {
    for (const auto& m : Managers::instance().managers())
      for (Function* f : Managers::instance().functions(m))
        if (f->subnqn == nqn) unplug(*f);
  }

 private:
  static void unplug(Function& f) {
    if (!f.endpoint) return;
    f.endpoint->destroy();
    f.endpoint.reset();
    f.subnqn.clear();
  }
};

}  // namespace

void register_transport() {
  auto& t = Target::instance();
  t.register_defaults("DOCA", [](TransportOpts& o) {
    // DOCA NVMe Emulation's defaults.
    o.max_queue_depth = 512;
    o.max_aq_depth = 256;
    o.max_io_qpairs_per_ctrlr = 127;
    o.in_capsule_data_size = 4096;
    o.max_io_size = 131072;
    o.io_unit_size = 131072;
  });
  t.register_factory("DOCA", [](TransportOpts opts, std::string*) {
    return std::make_unique<DocaTransport>(std::move(opts));
  });
}

}  // namespace nvemu::nvmf::doca
