// The VFIOUSER transport: each listener is one emulated NVMe PCIe function
// (a vfio-user socket at <traddr>/cntrl) bound to the subsystem that adds
// it, as in SPDK (nvmf_subsystem_add_listener -t VFIOUSER -a DIR -s 0).
#pragma once

namespace nvemu::nvmf::vfio_user {

// Registers the "VFIOUSER" factory and its defaults (SPDK v23.01's
// vfio-user values) with nvmf::Target. Call once at start-up.
void register_transport();

}  // namespace nvemu::nvmf::vfio_user
