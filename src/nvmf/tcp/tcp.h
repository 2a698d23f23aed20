// The NVMe/TCP transport module's one public entry point.
#pragma once

namespace nvemu::nvmf::tcp {

// Registers transport type "TCP" (factory and SPDK v23.01 nvmf_tcp defaults)
// with Target::instance(). Call once at start-up, before any
// nvmf_create_transport -t TCP. Idempotent.
void register_transport();

}  // namespace nvemu::nvmf::tcp
