#include "nvmf/vfio_user/transport.h"

#include <fmt/format.h>

#include <map>
#include <memory>

#include "common/log.h"
#include "nvmf/target.h"
#include "nvmf/transport.h"
#include "nvmf/vfio_user/endpoint.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf::vfio_user {

namespace {

using nvemu::vfio_user::Endpoint;

class VfioUserTransport final : public Transport {
 public:
  explicit VfioUserTransport(TransportOpts opts) : Transport(std::move(opts)) {}
  ~VfioUserTransport() override {
    for (auto& [_, ep] : endpoints_) ep->destroy();
  }

  std::string listen(const ListenAddress& addr) override {
    return fmt::format(
        "a VFIOUSER listener ({}) is a PCIe function of one subsystem: add it with "
        "nvmf_subsystem_add_listener",
        addr.traddr);
  }

  std::string listen_for_subsystem(const ListenAddress& addr, const std::string& subnqn) override {
    if (addr.traddr.empty()) return "VFIOUSER needs traddr: the directory for the cntrl socket";
    if (endpoints_.count(addr.traddr))
      return fmt::format("{} already serves a vfio-user function", addr.traddr);
    auto subsys = Target::instance().find_subsystem(subnqn);
    if (!subsys) return fmt::format("subsystem {} does not exist", subnqn);
    if (subsys->type() != Subsystem::Type::kNvme)
      return "the discovery subsystem cannot be a PCIe function";
    auto& set = ReactorSet::instance();
    if (!set.created()) return "no reactors are running";
    std::string error;
    auto ep = Endpoint::create(addr.traddr, subsys, set.next(), opts_, &error);
    if (!ep) return error;
    endpoints_[addr.traddr] = std::move(ep);
    return "";
  }

  void stop_listen(const ListenAddress& addr) override {
    auto it = endpoints_.find(addr.traddr);
    if (it == endpoints_.end()) return;
    it->second->destroy();
    endpoints_.erase(it);
  }

  void disconnect_subsystem(const std::string& nqn) override {
    for (auto it = endpoints_.begin(); it != endpoints_.end();) {
      if (it->second->subnqn() == nqn) {
        it->second->destroy();
        it = endpoints_.erase(it);
      } else {
        ++it;
      }
    }
  }

  nlohmann::json stats_json() const override {
    nlohmann::json eps = nlohmann::json::array();
    for (auto& [traddr, ep] : endpoints_)
      eps.push_back({{"traddr", traddr}, {"socket", ep->socket_path()}, {"subnqn", ep->subnqn()}});
    return {{"trtype", "VFIOUSER"}, {"endpoints", eps}};
  }

 private:
  std::map<std::string, std::shared_ptr<Endpoint>> endpoints_;  // by traddr
};

}  // namespace

void register_transport() {
  Target& t = Target::instance();
  t.register_defaults("VFIOUSER", [](TransportOpts& o) {
    o.max_queue_depth = 256;
    o.max_aq_depth = 32;
    o.max_io_qpairs_per_ctrlr = 127;
    o.in_capsule_data_size = 0;
    o.max_io_size = 131072;
    o.io_unit_size = 131072;
  });
  t.register_factory("VFIOUSER", [](TransportOpts opts, std::string* error) {
    (void)error;
    return std::unique_ptr<Transport>(new VfioUserTransport(std::move(opts)));
  });
}

}  // namespace nvemu::nvmf::vfio_user
