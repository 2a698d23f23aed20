#include "report.h"

#include <fmt/format.h>

namespace nvemu::doctor {

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kWarn:
      return "warning";
    case Status::kProblem:
      return "problem";
    case Status::kUnknown:
      return "unknown";
  }
  return "?";
}

std::string render_text(const Findings& fs) {
  std::string out;
  for (const Finding& f : fs) {
    out += fmt::format("[{:>7}] {}: {}\n", status_name(f.status), f.check, f.message);
    if (!f.fix.empty()) {
      // Indent every line of a multi-line fix under its finding.
      std::string fix = f.fix;
      size_t pos = 0;
      while ((pos = fix.find('\n', pos)) != std::string::npos) {
        fix.replace(pos, 1, "\n          ");
        pos += 11;
      }
      out += fmt::format("          fix: {}\n", fix);
    }
  }
  int code = exit_code(fs);
  out += code == 0   ? "nvemu-doctor: no problems found\n"
         : code == 1 ? "nvemu-doctor: problems found\n"
                     : "nvemu-doctor: some checks could not run\n";
  return out;
}

nlohmann::json render_json(const Findings& fs) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Finding& f : fs) {
    nlohmann::json j = {{"check", f.check},
                        {"status", status_name(f.status)},
                        {"message", f.message},
                        {"detail", f.detail}};
    if (!f.fix.empty()) j["fix"] = f.fix;
    arr.push_back(j);
  }
  return {{"findings", arr}, {"exit_code", exit_code(fs)}};
}

int exit_code(const Findings& fs) {
  bool unknown = false;
  for (const Finding& f : fs) {
    if (f.status == Status::kProblem) return 1;
    unknown |= f.status == Status::kUnknown;
  }
  return unknown ? 2 : 0;
}

}  // namespace nvemu::doctor
