#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "host_ctrl.h"

namespace nvemu::hosttool {

namespace {
std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

std::string parse_trid(const std::string& s, Trid* out) {
  *out = {};
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t sep = word.find_first_of(":=");
    if (sep == std::string::npos || sep == 0 || sep + 1 == word.size())
      return fmt::format("'{}' is not key:value", word);
    std::string key = lower(word.substr(0, sep)), val = word.substr(sep + 1);
    if (key == "trtype")
      out->trtype = upper(val);
    else if (key == "adrfam")
      out->adrfam = val;
    else if (key == "traddr")
      out->traddr = val;
    else if (key == "trsvcid")
      out->trsvcid = val;
    else if (key == "subnqn")
      out->subnqn = val;
    else
      return fmt::format("unknown key '{}' (trtype, adrfam, traddr, trsvcid, subnqn)", key);
  }
  if (out->trtype.empty()) return "trtype is missing (TCP or VFIOUSER)";
  if (out->traddr.empty()) return "traddr is missing";
  if (out->trtype == "TCP") {
    if (!out->adrfam.empty() && upper(out->adrfam) != "IPV4")
      return fmt::format("adrfam {} is not supported (IPv4)", out->adrfam);
    if (out->trsvcid.empty()) out->trsvcid = "4420";
    if (out->subnqn.empty()) return "subnqn is missing (the NVMe subsystem to connect to)";
  } else if (out->trtype != "VFIOUSER") {
    return fmt::format("trtype {} is not supported (TCP or VFIOUSER)", out->trtype);
  }
  return "";
}

std::unique_ptr<HostCtrl> HostCtrl::open(const Trid& t, const std::string& hostnqn,
                                         std::string* error) {
  if (t.trtype == "VFIOUSER") return open_vfio_user(t, error);
  return open_tcp(t, hostnqn, error);
}

}  // namespace nvemu::hosttool
