// Get / Set Features (NVMe Base 2.0, 5.27). No feature is saveable; SEL=2
// (saved) reports the default, SEL=3 the capabilities.
#include <algorithm>

#include "nvme/log.h"
#include "nvme/nvm.h"
#include "nvmf/controller.h"

namespace nvemu::nvmf {

using nvme::Status;
namespace fid = nvme::fid;

namespace {
const Status kInvalidFid = Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw10);
const Status kInvalidCdw11 = Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw11);

bool supported(uint8_t f, bool discovery, bool vwc) {
  if (discovery) return f == fid::kAsyncEventConfig || f == fid::kKeepAliveTimer;
  switch (f) {
    case fid::kArbitration:
    case fid::kPowerManagement:
    case fid::kTemperatureThreshold:
    case fid::kErrorRecovery:
    case fid::kNumberOfQueues:
    case fid::kInterruptCoalescing:
    case fid::kInterruptVectorConfig:
    case fid::kWriteAtomicity:
    case fid::kAsyncEventConfig:
    case fid::kKeepAliveTimer:
    case fid::kHostIdentifier:
    case fid::kHostBehaviorSupport:
      return true;
    case fid::kVolatileWriteCache:
      return vwc;
    default:
      return false;
  }
}

bool has_vwc(const Subsystem& s) {
  auto t = s.namespaces();
  return std::any_of(t->begin(), t->end(),
                     [](const auto& e) { return e.second->bdev->has_write_cache(); });
}
}  // namespace

Controller::Result Controller::get_features(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  uint8_t f = cmd.cdw10 & 0xff;
  uint8_t sel = (cmd.cdw10 >> 8) & 0x7;
  if (!supported(f, discovery_, has_vwc(*subsys_))) return kInvalidFid;
  if (sel == 3) {  // capabilities: changeable, not saveable, not namespace specific
    req->rsp.cdw0 = f == fid::kHostIdentifier && kind_ == Kind::kFabrics ? 0 : 0x4;
    return Status::success();
  }
  if (sel > 3) return kInvalidFid;
  static const Features kDefaults{};
  const Features& v = sel == 0 ? feat_ : kDefaults;
  uint32_t nq = max_io_qid() - 1u;
  uint32_t& cdw0 = req->rsp.cdw0;
  switch (f) {
    case fid::kArbitration:
      cdw0 = v.arbitration;
      break;
    case fid::kPowerManagement:
      cdw0 = v.power_mgmt;
      break;
    case fid::kTemperatureThreshold: {
      uint8_t tmpsel = (cmd.cdw11 >> 16) & 0xf, thsel = (cmd.cdw11 >> 20) & 0x3;
      if (tmpsel != 0 || thsel > 1) return kInvalidCdw11;
      cdw0 = thsel == 0 ? v.temp_over : v.temp_under;
      break;
    }
    case fid::kErrorRecovery:
      cdw0 = v.error_recovery;
      break;
    case fid::kVolatileWriteCache:
      cdw0 = v.write_cache ? 1 : 0;
      break;
    case fid::kNumberOfQueues:
      cdw0 = nq << 16 | nq;
      break;
    case fid::kInterruptCoalescing:
      cdw0 = v.irq_coalescing;
      break;
    case fid::kInterruptVectorConfig: {
      uint16_t iv = cmd.cdw11 & 0xffff;
      if (iv > max_io_qid()) return kInvalidCdw11;
      auto it = v.irq_vector_config.find(iv);
      cdw0 = it == v.irq_vector_config.end() ? iv : it->second;
      break;
    }
    case fid::kWriteAtomicity:
      cdw0 = v.write_atomicity;
      break;
    case fid::kAsyncEventConfig:
      cdw0 = v.async_event_config;
      break;
    case fid::kKeepAliveTimer:
      cdw0 = sel == 0 ? kato_ms_ : 0;
      break;
    case fid::kHostIdentifier:
      // Fabrics hosts use the 128-bit form (EXHID=1) that Connect supplied.
      if (!(cmd.cdw11 & 1)) return kInvalidCdw11;
      req->copy_to_iov(hostid_.data(), std::min<size_t>(16, req->length));
      break;
    case fid::kHostBehaviorSupport: {
      // Only ACRE (byte 0) is defined for this controller; the rest reads 0.
      uint8_t data[nvme::fid::kHostBehaviorSupportSize] = {};
      data[0] = sel == 0 ? host_behavior_acre_ : 0;
      req->copy_to_iov(data, std::min<size_t>(sizeof data, req->length));
      break;
    }
  }
  return Status::success();
}

Controller::Result Controller::set_features(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  uint8_t f = cmd.cdw10 & 0xff;
  uint32_t v = cmd.cdw11;
  if (!supported(f, discovery_, has_vwc(*subsys_))) return kInvalidFid;
  if (cmd.cdw10 & (1u << 31))
    return Status::command_specific(nvme::csc::kFeatureIdNotSaveable).at(nvme::loc::kCdw10);
  switch (f) {
    case fid::kArbitration:
      feat_.arbitration = v & 0xffffff07;
      break;
    case fid::kPowerManagement:
      if ((v & 0x1f) != 0) return kInvalidCdw11;  // NPSS = 0: power state 0 only
      feat_.power_mgmt = v & 0xff;
      break;
    case fid::kTemperatureThreshold: {
      uint8_t tmpsel = (v >> 16) & 0xf, thsel = (v >> 20) & 0x3;
      if (tmpsel != 0 || thsel > 1) return kInvalidCdw11;
      (thsel == 0 ? feat_.temp_over : feat_.temp_under) = v & 0xffff;
      break;
    }
    case fid::kErrorRecovery:
      if (v & (1u << 16)) return kInvalidCdw11;  // DULBE needs deallocated-block errors
      feat_.error_recovery = v & 0xffff;
      break;
    case fid::kVolatileWriteCache:
      feat_.write_cache = v & 1;
      break;
    case fid::kNumberOfQueues: {
      if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff) return kInvalidCdw11;
      if (num_io_qpairs() > 0) return Status::generic(nvme::sc::kCommandSequenceError);
      feat_.num_queues_set = v;
      uint32_t nq = max_io_qid() - 1u;
      req->rsp.cdw0 = nq << 16 | nq;
      break;
    }
    case fid::kInterruptCoalescing:
      feat_.irq_coalescing = v & 0xffff;
      break;
    case fid::kInterruptVectorConfig: {
      uint16_t iv = v & 0xffff;
      if (iv > max_io_qid()) return kInvalidCdw11;
      feat_.irq_vector_config[iv] = v & 0x1ffff;
      break;
    }
    case fid::kWriteAtomicity:
      feat_.write_atomicity = v & 1;
      break;
    case fid::kAsyncEventConfig: {
      uint32_t supported_bits =
          0xff | (discovery_ ? nvme::aen::kCfgDiscovery : nvme::aen::kCfgNsAttr);
      feat_.async_event_config = v & supported_bits;
      break;
    }
    case fid::kKeepAliveTimer: {
      if (v == 0) return Status::generic(nvme::sc::kKeepAliveInvalid).at(nvme::loc::kCdw11);
      constexpr uint32_t kGranularityMs = 1000;  // Identify KAS = 10 x 100 ms
      uint32_t kato = (v + kGranularityMs - 1) / kGranularityMs * kGranularityMs;
      stop_keep_alive_timer();
      kato_ms_ = kato;
      start_keep_alive_timer();
      req->rsp.cdw0 = kato;
      break;
    }
    case fid::kHostIdentifier:
      // Over fabrics the host identifier comes from Connect (NVMe-oF 1.1, 3.3).
      if (kind_ == Kind::kFabrics) return Status::generic(nvme::sc::kCommandSequenceError);
      if (!(v & 1)) return kInvalidCdw11;
      req->copy_from_iov(hostid_.data(), 16);
      break;
    case fid::kHostBehaviorSupport: {
      if (req->length < nvme::fid::kHostBehaviorSupportSize)
        return Status::generic(nvme::sc::kDataSglLengthInvalid).at(nvme::loc::kDptr);
      uint8_t data[nvme::fid::kHostBehaviorSupportSize];
      req->copy_from_iov(data, sizeof data);
      if (data[0] > 1) return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kDptr);
      host_behavior_acre_ = data[0];
      break;
    }
  }
  return Status::success();
}

}  // namespace nvemu::nvmf
