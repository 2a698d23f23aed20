// Interrupts of the emulated function: the eventfds the client passes with
// DEVICE_SET_IRQS (MSI-X one per vector, INTx one, ERR and REQ one each),
// the MSI-X table and PBA (BAR4/BAR5) with per-vector masking, and
// signalling. QEMU emulates the MSI-X table itself and (un)assigns the
// vector eventfds instead; other clients may program the table through
// REGION_WRITE and rely on the mask bits here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nvmf/vfio_user/pci_config.h"
#include "wire/vfio_user/msg_socket.h"
#include "wire/vfio_user/protocol.h"

namespace nvemu::vfio_user {

class Irqs {
 public:
  explicit Irqs(const PciConfig& config);

  // DEVICE_GET_IRQ_INFO for `index`; false for an unknown index.
  bool info(uint32_t index, IrqInfo* out) const;
  // DEVICE_SET_IRQS. fds are consumed. Returns 0 or an errno (*why set).
  int set(const IrqSet& s, const uint8_t* data, size_t data_len, std::vector<UniqueFd>* fds,
          std::string* why);
  void reset();  // drop every eventfd and mask, clear the table

  // Signals MSI-X vector `vector` (when MSI-X is enabled in config space) or
  // INTx (when it is not, for vector 0). Masked vectors set their PBA bit
  // and fire when unmasked.
  void trigger(uint16_t vector);
  // Asks the client to release the device (REQ irq), e.g. before removal.
  bool request_release();

  // BAR4/BAR5 access (16-byte table entries, PBA bits). false = out of range.
  bool table_access(bool write, uint64_t offset, void* buf, uint32_t len);
  bool pba_access(bool write, uint64_t offset, void* buf, uint32_t len);

  uint64_t triggers() const { return triggers_; }
  // Signals vectors whose PBA bit is set and that are no longer masked
  // (after a table or MSI-X function-mask change).
  void fire_pending();

 private:
  static void signal(int fd);
  bool vector_masked(uint16_t v) const;

  const PciConfig& config_;
  std::vector<UniqueFd> msix_;  // kMsixVectors
  UniqueFd intx_, intx_unmask_, err_, req_;
  bool intx_masked_ = false;
  bool intx_pending_ = false;
  std::vector<uint8_t> table_;  // kMsixVectors * 16
  std::vector<uint64_t> pba_;   // bit per vector
  uint64_t triggers_ = 0;
};

}  // namespace nvemu::vfio_user
