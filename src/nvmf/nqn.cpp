#include <fmt/format.h>

#include <cctype>
#include <string>

#include "bdev/bdev.h"
#include "nvmf/subsystem.h"

namespace nvemu::nvmf {
namespace {

constexpr std::string_view kUuidPrefix = "nqn.2014-08.org.nvmexpress:uuid:";

bool valid_domain_label_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
}

}  // namespace

std::string validate_nqn(const std::string& nqn) {
  if (nqn.size() > kMaxNqnLength)
    return fmt::format("NQN is {} bytes; the NVMe spec allows at most {}", nqn.size(),
                       kMaxNqnLength);
  if (nqn == kDiscoveryNqn) return "";
  if (nqn.rfind(kUuidPrefix, 0) == 0) {
    std::string uuid = nqn.substr(kUuidPrefix.size());
    if (!bdev::is_valid_uuid(uuid))
      return fmt::format(
          "'{}' after '{}' is not a UUID like "
          "11111111-2222-3333-4444-555555555555",
          uuid, kUuidPrefix);
    return "";
  }
  if (nqn.rfind("nqn.", 0) != 0)
    return "an NQN must begin with \"nqn.\", e.g. nqn.2016-06.io.spdk:cnode1";
  auto digit = [&](size_t i) {
    return i < nqn.size() && std::isdigit(static_cast<unsigned char>(nqn[i]));
  };
  bool date_ok = digit(4) && digit(5) && digit(6) && digit(7) && nqn.size() > 11 && nqn[8] == '-' &&
                 digit(9) && digit(10) && nqn[11] == '.';
  if (date_ok) {
    int month = (nqn[9] - '0') * 10 + (nqn[10] - '0');
    date_ok = month >= 1 && month <= 12;
  }
  if (!date_ok)
    return "the date code after \"nqn.\" must be yyyy-mm followed by '.', e.g. nqn.2016-06.";
  size_t colon = nqn.find(':');
  if (colon == std::string::npos || colon + 1 >= nqn.size())
    return "an NQN needs a user-specified name after the reverse domain, prefixed by ':' "
           "(nqn.2016-06.io.spdk:cnode1)";
  // Reverse domain: labels of letters, digits and '-', starting with a
  // letter and ending with a letter or digit, separated by '.'.
  std::string domain = nqn.substr(12, colon - 12);
  if (domain.empty()) return "the reverse domain after the date code is empty";
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    std::string label =
        domain.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || !std::isalpha(static_cast<unsigned char>(label.front())) ||
        !std::isalnum(static_cast<unsigned char>(label.back())))
      return fmt::format(
          "domain label '{}' must start with a letter and end with a letter or "
          "digit",
          label);
    for (char c : label)
      if (!valid_domain_label_char(c))
        return fmt::format("domain label '{}' may hold only letters, digits and '-'", label);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return "";
}

}  // namespace nvemu::nvmf
