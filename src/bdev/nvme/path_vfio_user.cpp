// The vfio-user path (PCIe NVMe over a vfio-user socket).
#include <fmt/format.h>

#include <cerrno>

#include "bdev/nvme/path.h"

namespace nvemu::bdev::nvme {

std::unique_ptr<AdminPath> connect_vfio_user(const Trid& trid, const PathOptions&,
                                             std::string* error, int* err_no) {
  *err_no = EOPNOTSUPP;
  *error = fmt::format("trtype vfiouser ({}) is not wired up yet; attach over tcp", trid.traddr);
  return nullptr;
}

}  // namespace nvemu::bdev::nvme
