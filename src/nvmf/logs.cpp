// Get Log Page (NVMe Base 2.0, 5.16): each page is built whole, then the
// requested window (LPO offset, NUMD length) is copied out; bytes past the
// page's end read as zero.
#include <algorithm>
#include <cstring>
#include <vector>

#include "nvme/log.h"
#include "nvme/nvm.h"
#include "nvmf/controller.h"
#include "nvmf/opcodes.h"
#include "reactor/reactor.h"

#ifndef NVEMU_VERSION
#define NVEMU_VERSION "0.0.0"
#endif

namespace nvemu::nvmf {

using nvme::Status;

namespace {
template <typename T>
void put(std::vector<uint8_t>& out, const T& v) {
  out.resize(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
}
constexpr uint16_t kCompositeTempK = 308;  // 35 C: an idle, well-cooled device
}  // namespace

Controller::Result Controller::get_log_page(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  uint8_t lid = cmd.cdw10 & 0xff;
  bool rae = cmd.cdw10 & (1u << 15);
  uint64_t len = (((cmd.cdw10 >> 16) | (uint64_t{cmd.cdw11 & 0xffff} << 16)) + 1) * 4;
  uint64_t offset = uint64_t{cmd.cdw12} | uint64_t{cmd.cdw13} << 32;
  if (offset & 3) return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw12);

  bool allowed = discovery_ ? (lid == nvme::lid::kDiscovery || lid == nvme::lid::kErrorInfo ||
                               lid == nvme::lid::kCommandsEffects)
                            : (lid >= nvme::lid::kErrorInfo && lid <= nvme::lid::kCommandsEffects);
  if (!allowed) return Status::command_specific(nvme::csc::kInvalidLogPage).at(nvme::loc::kCdw10);

  std::vector<uint8_t> page;
  switch (lid) {
    case nvme::lid::kErrorInfo: {
      std::lock_guard lk(err_mu_);
      page.assign(64 * sizeof(nvme::ErrorLogEntry), 0);
      size_t i = 0;
      for (const auto& e : errors_) std::memcpy(page.data() + sizeof e * i++, &e, sizeof e);
      break;
    }
    case nvme::lid::kSmartHealth: {
      // LPA bit 0 is clear: only the controller-wide page exists.
      if (cmd.nsid != 0 && cmd.nsid != 0xffffffff)
        return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kNsid);
      nvme::SmartLog s{};
      s.temperature[0] = kCompositeTempK & 0xff;
      s.temperature[1] = kCompositeTempK >> 8;
      s.available_spare = 100;
      s.available_spare_threshold = 10;
      // Data units are thousands of 512-byte units, rounded up.
      SmartCounts c = smart_counts();
      s.data_units_read[0] = (c.units_read + 999) / 1000;
      s.data_units_written[0] = (c.units_written + 999) / 1000;
      s.host_read_commands[0] = c.read_cmds;
      s.host_write_commands[0] = c.write_cmds;
      s.power_cycles[0] = 1;
      s.power_on_hours[0] = (now_us() - created_us_) / 3600000000ull;
      s.media_errors[0] = c.media_errors;
      {
        std::lock_guard lk(err_mu_);
        s.num_error_log_entries[0] = error_count_;
      }
      put(page, s);
      break;
    }
    case nvme::lid::kFirmwareSlot: {
      nvme::FirmwareSlotLog f{};
      f.afi = 1;
      std::memset(f.frs[0], ' ', 8);
      std::memcpy(f.frs[0], NVEMU_VERSION, std::min<size_t>(8, strlen(NVEMU_VERSION)));
      put(page, f);
      break;
    }
    case nvme::lid::kChangedNsList: {
      nvme::ChangedNsList l{};
      if (changed_ns_overflow_)
        l.nsid[0] = 0xffffffff;
      else
        std::copy(changed_ns_.begin(), changed_ns_.end(), l.nsid);
      changed_ns_.clear();  // reading the page clears it
      changed_ns_overflow_ = false;
      put(page, l);
      break;
    }
    case nvme::lid::kCommandsEffects: {
      nvme::CommandsEffectsLog e;
      fill_effects_log(e, kind_ == Kind::kPcie, discovery_);
      put(page, e);
      break;
    }
    case nvme::lid::kDiscovery:
      build_discovery_log(page);
      break;
  }
  if (offset > page.size()) return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw12);
  if (!rae) aer_clear(lid);
  size_t n = std::min<uint64_t>(len, page.size() - offset);
  n = std::min<size_t>(n, req->length);
  req->copy_to_iov(page.data() + offset, n);
  if (len > n && req->length > n) {
    std::vector<uint8_t> zeros(std::min<uint64_t>(len, req->length) - n, 0);
    req->copy_to_iov(zeros.data(), zeros.size(), n);
  }
  return Status::success();
}

}  // namespace nvemu::nvmf
