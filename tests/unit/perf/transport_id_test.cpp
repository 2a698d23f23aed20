#include "host/perf/transport_id.h"

#include <gtest/gtest.h>

namespace nvemu::host::perf {
namespace {

TEST(PerfTransportId, ParsesSpdkTcpString) {
  TransportId t;
  ASSERT_EQ(parse_transport_id("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4421 "
                               "subnqn:nqn.2016-06.io.spdk:cnode1",
                               &t),
            "");
  EXPECT_EQ(t.trtype, TrType::kTcp);
  EXPECT_EQ(t.traddr, "127.0.0.1");
  EXPECT_EQ(t.port(), 4421);
  EXPECT_EQ(t.subnqn, "nqn.2016-06.io.spdk:cnode1");
  EXPECT_EQ(t.describe(), "TCP  (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:cnode1)");
}

TEST(PerfTransportId, KeysAreCaseInsensitiveAndEqualsWorks) {
  TransportId t;
  ASSERT_EQ(parse_transport_id("  TRTYPE=tcp  TrAddr:10.0.0.1 subnqn:nqn.x:y ns:3 ", &t), "");
  EXPECT_EQ(t.traddr, "10.0.0.1");
  EXPECT_EQ(t.port(), 4420);
  EXPECT_EQ(t.ns, 3u);
}

TEST(PerfTransportId, ParsesVfioUser) {
  TransportId t;
  ASSERT_EQ(parse_transport_id("trtype:VFIOUSER traddr:/var/tmp/x/cnode1", &t), "");
  EXPECT_EQ(t.trtype, TrType::kVfioUser);
  EXPECT_EQ(t.traddr, "/var/tmp/x/cnode1");
  EXPECT_EQ(t.describe(), "VFIOUSER (/var/tmp/x/cnode1)");
}

TEST(PerfTransportId, RejectsBadInputWithReason) {
  TransportId t;
  EXPECT_NE(parse_transport_id("traddr:1.2.3.4 subnqn:n", &t).find("trtype is missing"),
            std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:RDMA traddr:1.2.3.4", &t).find("RDMA"), std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:TCP traddr:1.2.3.4", &t).find("subnqn"), std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:TCP traddr:1 subnqn:n trsvcid:99999", &t).find("trsvcid"),
            std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:TCP bogus", &t).find("key:value"), std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:TCP traddr:1 subnqn:n color:red", &t).find("unknown key"),
            std::string::npos);
  EXPECT_NE(parse_transport_id("trtype:VFIOUSER", &t).find("traddr"), std::string::npos);
}

}  // namespace
}  // namespace nvemu::host::perf
