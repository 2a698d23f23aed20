#include "bdev/nvme/options.h"

#include "common/auth/dhchap.h"

namespace nvemu::bdev::nvme {

std::string check_resiliency(const Resiliency& r) {
  const int32_t loss = r.ctrlr_loss_timeout_sec;
  const uint32_t delay = r.reconnect_delay_sec, fast = r.fast_io_fail_timeout_sec;
  if (loss < -1) return "ctrlr_loss_timeout_sec can't be less than -1 (-1 means reconnect forever)";
  if (loss == -1) {
    if (delay == 0)
      return "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0; give "
             "reconnect_delay_sec, e.g. 1";
    if (fast != 0 && fast < delay)
      return "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec";
    return "";
  }
  if (loss != 0) {
    if (delay == 0)
      return "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0; give "
             "reconnect_delay_sec, e.g. 1";
    if (delay > static_cast<uint32_t>(loss))
      return "reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec";
    if (fast != 0 && fast < delay)
      return "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec";
    if (fast != 0 && fast > static_cast<uint32_t>(loss))
      return "fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec";
    return "";
  }
  if (delay != 0 || fast != 0)
    return "Both reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if "
           "ctrlr_loss_timeout_sec is 0";
  return "";
}

nlohmann::json ModuleOptions::to_params() const {
  // bdev_nvme_opts_config_json's keys (v24.x).
  nlohmann::json p{
      {"action_on_timeout", action_on_timeout},
      {"timeout_us", timeout_us},
      {"timeout_admin_us", timeout_admin_us},
      {"keep_alive_timeout_ms", keep_alive_timeout_ms},
      {"transport_retry_count", transport_retry_count},
      {"arbitration_burst", arbitration_burst},
      {"low_priority_weight", low_priority_weight},
      {"medium_priority_weight", medium_priority_weight},
      {"high_priority_weight", high_priority_weight},
      {"nvme_adminq_poll_period_us", nvme_adminq_poll_period_us},
      {"nvme_ioq_poll_period_us", nvme_ioq_poll_period_us},
      {"io_queue_requests", io_queue_requests},
      {"delay_cmd_submit", delay_cmd_submit},
      {"bdev_retry_count", bdev_retry_count},
      {"transport_ack_timeout", transport_ack_timeout},
      {"ctrlr_loss_timeout_sec", resiliency.ctrlr_loss_timeout_sec},
      {"reconnect_delay_sec", resiliency.reconnect_delay_sec},
      {"fast_io_fail_timeout_sec", resiliency.fast_io_fail_timeout_sec},
      // SPDK 24.x writes these three as well (v23.01 takes them, writes none).
      {"disable_auto_failback", disable_auto_failback},
      {"nvme_error_stat", nvme_error_stat},
      {"rdma_srq_size", rdma_srq_size},
      {"generate_uuids", generate_uuids},
      {"transport_tos", transport_tos},
      {"io_path_stat", io_path_stat},
  };
  // SPDK 24.x writes both always, in identifier order.
  p["dhchap_digests"] = auth::hash_names(dhchap_digests);
  p["dhchap_dhgroups"] = auth::dhgroup_names(dhchap_dhgroups);
  for (const auto& [k, v] : unknown.items()) p[k] = v;
  return p;
}

ModuleOptions& options() {
  static ModuleOptions o;
  return o;
}

}  // namespace nvemu::bdev::nvme
