// bdev_nvme's module options (bdev_nvme_set_options) and the timeout rules
// SPDK applies to them and to each attach.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace nvemu::bdev::nvme {

// The I/O error resiliency triple (ctrlr_loss_timeout_sec,
// reconnect_delay_sec, fast_io_fail_timeout_sec).
struct Resiliency {
  int32_t ctrlr_loss_timeout_sec = 0;  // -1: reconnect forever; 0: no retry
  uint32_t reconnect_delay_sec = 0;
  uint32_t fast_io_fail_timeout_sec = 0;  // 0: queued I/O waits for the loss timeout
};

// "" when SPDK's bdev_nvme_check_io_error_resiliency_params accepts it, else
// which rule it breaks and how to fix it.
std::string check_resiliency(const Resiliency& r);

struct ModuleOptions {
  // Applied: keep-alive on each attached controller, the defaults of
  // attach's timeouts, the admin queue poll period, I/O queue depth.
  uint32_t keep_alive_timeout_ms = 10000;
  uint32_t transport_retry_count = 4;
  uint64_t nvme_adminq_poll_period_us = 10000;
  uint32_t io_queue_requests = 0;  // 0: the controller's limit, at most 128
  Resiliency resiliency;
  // SPDK 24.x: the DH-HMAC-CHAP digests and DH groups a host offers (bit =
  // identifier; save_config writes the names). All by default.
  uint32_t dhchap_digests = 0xe, dhchap_dhgroups = 0x3f;
  // Kept and written back by save_config, no effect in nvemu (no timeout
  // tracking, arbitration, RDMA or error statistics).
  std::string action_on_timeout = "none";
  uint64_t timeout_us = 0, timeout_admin_us = 0, nvme_ioq_poll_period_us = 0;
  uint32_t arbitration_burst = 0, low_priority_weight = 0, medium_priority_weight = 0,
           high_priority_weight = 0;
  bool delay_cmd_submit = true;
  int32_t bdev_retry_count = 3;
  uint8_t transport_ack_timeout = 0, transport_tos = 0;
  bool disable_auto_failback = false, generate_uuids = false, nvme_error_stat = false,
       io_path_stat = false;
  uint32_t rdma_srq_size = 0;
  // Keys newer SPDK versions add: kept as given and written back.
  nlohmann::json unknown = nlohmann::json::object();

  nlohmann::json to_params() const;
};

ModuleOptions& options();  // main thread

}  // namespace nvemu::bdev::nvme
