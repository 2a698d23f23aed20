// Fault matching and hit decisions (nvmf/fault.h): scope, count, seeded
// probability. The command path around them runs in
// tests/system/test_faults.py over NVMe/TCP.
#include "nvmf/fault.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace nvemu::nvmf {
namespace {

constexpr const char* kNqn = "nqn.2016-06.io.nvemu:f";

nvme::Sqe cmd(uint8_t opc, uint32_t nsid = 1, uint8_t fuse = 0) {
  nvme::Sqe s{};
  s.opc = opc;
  s.nsid = nsid;
  s.flags = fuse;
  return s;
}

TEST(Fault, ScopeNarrowsBySubsystemQueueOpcodeNamespaceAndController) {
  Fault f;
  f.nqn = kNqn;
  EXPECT_TRUE(f.matches(kNqn, 1, 0, cmd(6)));
  EXPECT_TRUE(f.matches(kNqn, 1, 3, cmd(2)));
  EXPECT_FALSE(f.matches("nqn.2016-06.io.nvemu:other", 1, 3, cmd(2)));
  f.queue = Fault::Queue::kIo;
  f.opcode = 2;
  EXPECT_FALSE(f.matches(kNqn, 1, 0, cmd(2))) << "02h on the admin queue is Get Log Page";
  EXPECT_TRUE(f.matches(kNqn, 1, 1, cmd(2)));
  EXPECT_FALSE(f.matches(kNqn, 1, 1, cmd(1)));
  f.nsid = 2;
  EXPECT_FALSE(f.matches(kNqn, 1, 1, cmd(2, 1)));
  EXPECT_TRUE(f.matches(kNqn, 1, 1, cmd(2, 2)));
  f.cntlid = 5;
  EXPECT_FALSE(f.matches(kNqn, 1, 1, cmd(2, 2)));
  EXPECT_TRUE(f.matches(kNqn, 5, 1, cmd(2, 2)));
  EXPECT_FALSE(f.matches(kNqn, 5, 1, cmd(2, 2, nvme::kFuseFirst))) << "fused halves must meet";
}

TEST(Fault, CountLimitsHits) {
  Fault f;
  f.count = 2;
  EXPECT_TRUE(f.take());
  EXPECT_TRUE(f.take());
  EXPECT_FALSE(f.take());
  EXPECT_EQ(f.hits.load(), 2u);
  EXPECT_EQ(f.matched.load(), 3u);
}

std::vector<bool> draws(uint64_t seed, double p, int n) {
  Fault f;
  f.probability = p;
  f.seed = seed;
  std::vector<bool> out;
  for (int i = 0; i < n; ++i) out.push_back(f.take());
  return out;
}

TEST(Fault, SeededProbabilityRepeatsAndHasTheRightRate) {
  auto a = draws(42, 0.25, 4000), b = draws(42, 0.25, 4000), c = draws(43, 0.25, 4000);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  auto hits = std::count(a.begin(), a.end(), true);
  EXPECT_GT(hits, 850);
  EXPECT_LT(hits, 1150);
  auto none = draws(1, 0.0, 100);
  EXPECT_EQ(std::count(none.begin(), none.end(), true), 0);
}

TEST(Fault, JsonNamesTheActionAndStatus) {
  Fault f;
  f.id = 7;
  f.nqn = kNqn;
  f.status = nvme::Status::media(0x81, true);
  auto j = f.to_json();
  EXPECT_EQ(j["action"], "status");
  EXPECT_EQ(j["sct"], 2);
  EXPECT_EQ(j["sc"], 0x81);
  EXPECT_EQ(j["dnr"], true);
  EXPECT_EQ(j["hits"], 0);
}

}  // namespace
}  // namespace nvemu::nvmf
