#include "host/perf/transport_id.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace nvemu::host::perf {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
}  // namespace

uint16_t TransportId::port() const {
  if (trsvcid.empty()) return 4420;
  return static_cast<uint16_t>(std::stoul(trsvcid));
}

std::string TransportId::describe() const {
  if (trtype == TrType::kVfioUser) return fmt::format("VFIOUSER ({})", traddr);
  return fmt::format("TCP  (addr:{} subnqn:{})", traddr, subnqn);
}

std::string parse_transport_id(const std::string& s, TransportId* out) {
  TransportId t;
  bool have_type = false;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i >= s.size()) break;
    size_t end = i;
    while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end]))) ++end;
    std::string pair = s.substr(i, end - i);
    i = end;
    size_t sep = pair.find_first_of(":=");
    if (sep == std::string::npos || sep == 0 || sep + 1 == pair.size())
      return fmt::format("'{}' is not key:value (expected e.g. trtype:TCP traddr:127.0.0.1)", pair);
    std::string key = lower(pair.substr(0, sep));
    std::string val = pair.substr(sep + 1);
    if (key == "trtype") {
      std::string v = lower(val);
      if (v == "tcp") {
        t.trtype = TrType::kTcp;
      } else if (v == "vfiouser") {
        t.trtype = TrType::kVfioUser;
      } else {
        return fmt::format("trtype '{}' is not supported by nvemu-perf (TCP or VFIOUSER)", val);
      }
      have_type = true;
    } else if (key == "adrfam") {
      if (lower(val) != "ipv4" && lower(val) != "ipv6")
        return fmt::format("adrfam '{}' is not IPv4 or IPv6", val);
      t.adrfam = val;
    } else if (key == "traddr") {
      t.traddr = val;
    } else if (key == "trsvcid") {
      unsigned port = 0;
      auto r = std::from_chars(val.data(), val.data() + val.size(), port);
      if (r.ec != std::errc() || r.ptr != val.data() + val.size() || port == 0 || port > 65535)
        return fmt::format("trsvcid '{}' is not a TCP port (1-65535)", val);
      t.trsvcid = val;
    } else if (key == "subnqn") {
      t.subnqn = val;
    } else if (key == "hostnqn") {
      t.hostnqn = val;
    } else if (key == "ns") {
      unsigned ns = 0;
      auto r = std::from_chars(val.data(), val.data() + val.size(), ns);
      if (r.ec != std::errc() || r.ptr != val.data() + val.size() || ns == 0)
        return fmt::format("ns '{}' is not a namespace ID (1 or more)", val);
      t.ns = ns;
    } else if (key == "priority" || key == "alt_traddr") {
      // SPDK keys that do not apply here; accepted and ignored.
    } else {
      return fmt::format("unknown key '{}' (known: trtype adrfam traddr trsvcid subnqn hostnqn ns)",
                         key);
    }
  }
  if (!have_type) return "trtype is missing (trtype:TCP or trtype:VFIOUSER)";
  if (t.traddr.empty()) return "traddr is missing";
  if (t.trtype == TrType::kTcp && t.subnqn.empty())
    return "subnqn is missing (the NQN of the subsystem to measure)";
  *out = std::move(t);
  return "";
}

}  // namespace nvemu::host::perf
