// Transport modules register their factories here at start-up. A static
// library drops self-registering objects nobody references, so the list is
// explicit.
#include "app/app.h"
#include "nvmf/doca/manager.h"
#include "nvmf/tcp/tcp.h"
#include "nvmf/vfio_user/transport.h"

namespace nvemu::app {

void register_transports() {
  nvmf::tcp::register_transport();
  nvmf::vfio_user::register_transport();
  nvmf::doca::register_transport();
}

}  // namespace nvemu::app
