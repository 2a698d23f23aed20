// nvemu-tgt: the NVMe emulation target, started like the DOCA NVMe
// Emulation app it stands in for:
//   nvemu-tgt -m 0x3 --main-core 0 -s 1024 --no-pci --wait-for-rpc
#include <cstdio>

#include "app/app.h"

int main(int argc, char** argv) {
  nvemu::app::Options opts;
  std::string message;
  int code = 0;
  if (!nvemu::app::parse_options(argc, argv, &opts, &message, &code)) {
    std::fputs(message.c_str(), code ? stderr : stdout);
    if (!message.empty() && message.back() != '\n') std::fputc('\n', code ? stderr : stdout);
    return code;
  }
  return nvemu::app::run(opts);
}
