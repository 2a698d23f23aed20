// What nvemu-doctor found: one Finding per thing checked, printed for a
// person or as JSON, and the exit status scripts branch on.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvemu::doctor {

enum class Status { kOk, kWarn, kProblem, kUnknown };

struct Finding {
  std::string check;  // "hugepages", "rpc-socket", "cpumask", "ports", "doca", "explain"
  Status status;
  std::string message;  // what is so
  std::string fix;      // what to do; "" when nothing
  nlohmann::json detail = nlohmann::json::object();
};

using Findings = std::vector<Finding>;

const char* status_name(Status s);
std::string render_text(const Findings& f);
nlohmann::json render_json(const Findings& f);
// 0: all fine (warnings allowed), 1: a problem found, 2: something could not
// be checked (and no problem was found).
int exit_code(const Findings& f);

}  // namespace nvemu::doctor
