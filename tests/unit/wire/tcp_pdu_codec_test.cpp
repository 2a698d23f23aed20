// NVMe/TCP PDU codec: one test group per PDU type, the length/offset rules,
// digests and each Fatal Error Status the validator can produce.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "wire/tcp/pdu_codec.h"

using namespace nvemu::wire::tcp;

namespace {

LinkParams ctrl_params(bool hd = false, bool dd = false) {
  LinkParams p;
  p.receiver = Receiver::kController;
  p.ic_done = true;
  p.hdgst = hd;
  p.ddgst = dd;
  p.max_icd = 4096;
  p.max_h2c_data = 131072;
  return p;
}

LinkParams host_params(bool hd = false, bool dd = false) {
  LinkParams p = ctrl_params(hd, dd);
  p.receiver = Receiver::kHost;
  return p;
}

CommonHeader ch_of(const uint8_t* buf) {
  CommonHeader ch;
  std::memcpy(&ch, buf, sizeof ch);
  return ch;
}

// Runs both validation steps on a built PDU.
PduError validate(const uint8_t* buf, const LinkParams& p, PduLayout* out = nullptr) {
  PduLayout l;
  PduError e = check_common(ch_of(buf), p, &l);
  if (!e.ok()) return e;
  if (out) *out = l;
  return check_header(buf, l, p);
}

}  // namespace

TEST(TcpCrc, Crc32cKnownVector) {
  // RFC 3720 B.4 / the standard CRC32C check value.
  const char* s = "123456789";
  EXPECT_EQ(digest(s, 9), 0xE3069283u);
  uint8_t zeros[32] = {};
  EXPECT_EQ(digest(zeros, 32), 0x8A9136AAu);
}

TEST(TcpCrc, IovDigestMatchesFlat) {
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  struct iovec iov[3] = {{data.data(), 100}, {data.data() + 100, 5000}, {data.data() + 5100, 4900}};
  EXPECT_EQ(digest_iov(iov, 3, 0, 10000), digest(data.data(), 10000));
  EXPECT_EQ(digest_iov(iov, 3, 50, 6000), digest(data.data() + 50, 6000));
}

TEST(TcpCodec, WireSizes) {
  EXPECT_EQ(expected_hlen(0x00), 128);
  EXPECT_EQ(expected_hlen(0x01), 128);
  EXPECT_EQ(expected_hlen(0x02), 24);
  EXPECT_EQ(expected_hlen(0x03), 24);
  EXPECT_EQ(expected_hlen(0x04), 72);
  EXPECT_EQ(expected_hlen(0x05), 24);
  EXPECT_EQ(expected_hlen(0x06), 24);
  EXPECT_EQ(expected_hlen(0x07), 24);
  EXPECT_EQ(expected_hlen(0x08), 0);
  EXPECT_EQ(expected_hlen(0x09), 24);
  EXPECT_EQ(expected_hlen(0x0a), 0);
}

TEST(TcpCodec, ICReqRoundTrip) {
  uint8_t buf[256];
  ASSERT_EQ(build_icreq(buf, 3, true, false, 0), 128u);
  LinkParams p;  // before IC
  ASSERT_TRUE(validate(buf, p).ok());
  ICReq r;
  std::memcpy(&r, buf, sizeof r);
  EXPECT_EQ(r.hpda, 3);
  EXPECT_EQ(r.dgst, dgst_flags::kHdgstEnable);
}

TEST(TcpCodec, ICReqErrors) {
  uint8_t buf[256];
  LinkParams p;
  build_icreq(buf, 0, false, false, 0);
  reinterpret_cast<ICReq*>(buf)->pfv = 1;
  PduError e = validate(buf, p);
  EXPECT_EQ(e.fes, Fes::kUnsupportedParameter);
  EXPECT_EQ(e.fei, 8u);

  build_icreq(buf, 32, false, false, 0);
  e = validate(buf, p);
  EXPECT_EQ(e.fes, Fes::kInvalidHeaderField);
  EXPECT_EQ(e.fei, 10u);

  build_icreq(buf, 0, false, false, 0);
  reinterpret_cast<CommonHeader*>(buf)->plen = 129;  // oversized ICReq
  e = validate(buf, p);
  EXPECT_EQ(e.fes, Fes::kInvalidHeaderField);
  EXPECT_EQ(e.fei, 4u);

  build_icreq(buf, 0, false, false, 0);
  reinterpret_cast<CommonHeader*>(buf)->hlen = 24;
  e = validate(buf, p);
  EXPECT_EQ(e.fes, Fes::kInvalidHeaderField);
  EXPECT_EQ(e.fei, 2u);

  // A second ICReq is a sequence error.
  build_icreq(buf, 0, false, false, 0);
  EXPECT_EQ(validate(buf, ctrl_params()).fes, Fes::kPduSequenceError);
}

TEST(TcpCodec, ICRespChecks) {
  uint8_t buf[256];
  LinkParams p;
  p.receiver = Receiver::kHost;
  build_icresp(buf, 0, false, false, 131072);
  EXPECT_TRUE(validate(buf, p).ok());
  build_icresp(buf, 0, false, false, 1024);  // below the 4 KiB floor
  EXPECT_EQ(validate(buf, p).fei, 12u);
  build_icresp(buf, 0, true, false, 131072);  // digest the host never asked for
  EXPECT_EQ(validate(buf, p).fei, 11u);
  p.hdgst = true;
  EXPECT_TRUE(validate(buf, p).ok());
}

TEST(TcpCodec, CommandBeforeICReqIsSequenceError) {
  uint8_t buf[256];
  nvemu::nvme::Sqe sqe{};
  build_capsule_cmd(buf, sqe, 0, false, false, 0);
  LinkParams p;
  EXPECT_EQ(validate(buf, p).fes, Fes::kPduSequenceError);
}

TEST(TcpCodec, WrongDirectionOrUnknownTypeIsInvalidType) {
  uint8_t buf[256];
  build_capsule_resp(buf, {}, false);
  PduError e = validate(buf, ctrl_params());
  EXPECT_EQ(e.fes, Fes::kInvalidHeaderField);
  EXPECT_EQ(e.fei, 0u);
  buf[0] = 0x08;
  EXPECT_EQ(validate(buf, ctrl_params()).fei, 0u);
  buf[0] = 0xff;
  EXPECT_EQ(validate(buf, ctrl_params()).fes, Fes::kInvalidHeaderField);
}

TEST(TcpCodec, CapsuleCmdLayout) {
  uint8_t buf[512];
  nvemu::nvme::Sqe sqe{};
  sqe.opc = 0x01;
  sqe.cid = 7;
  size_t n = build_capsule_cmd(buf, sqe, 512, true, true, 0);
  EXPECT_EQ(n, 76u);
  PduLayout l;
  ASSERT_TRUE(validate(buf, ctrl_params(true, true), &l).ok());
  EXPECT_EQ(l.header_len, 76u);
  EXPECT_EQ(l.pad_len, 0u);
  EXPECT_EQ(l.data_len, 512u);
  EXPECT_EQ(l.ddgst_len, 4u);
  EXPECT_EQ(ch_of(buf).plen, 76u + 512 + 4);

  // CPDA 7 (32-byte alignment) pads the data to offset 96.
  n = build_capsule_cmd(buf, sqe, 512, false, false, 7);
  EXPECT_EQ(n, 96u);
  ASSERT_TRUE(validate(buf, ctrl_params(), &l).ok());
  EXPECT_EQ(l.pad_len, 24u);
}

TEST(TcpCodec, CapsuleCmdLengthErrors) {
  uint8_t buf[512];
  nvemu::nvme::Sqe sqe{};
  build_capsule_cmd(buf, sqe, 8192, false, false, 0);
  EXPECT_EQ(validate(buf, ctrl_params()).fes, Fes::kDataLimitExceeded);

  build_capsule_cmd(buf, sqe, 0, false, false, 0);
  reinterpret_cast<CommonHeader*>(buf)->plen = 60;  // shorter than the header
  EXPECT_EQ(validate(buf, ctrl_params()).fei, 4u);

  build_capsule_cmd(buf, sqe, 100, false, false, 0);
  reinterpret_cast<CommonHeader*>(buf)->pdo = 40;  // data inside the header
  EXPECT_EQ(validate(buf, ctrl_params()).fei, 3u);

  build_capsule_cmd(buf, sqe, 100, false, false, 0);
  EXPECT_EQ(validate(buf, ctrl_params(false, true)).fei, 1u);  // DDGSTF missing
  build_capsule_cmd(buf, sqe, 100, false, true, 0);
  EXPECT_EQ(validate(buf, ctrl_params()).fei, 1u);  // DDGSTF not negotiated
}

TEST(TcpCodec, HeaderDigest) {
  uint8_t buf[512];
  nvemu::nvme::Sqe sqe{};
  build_capsule_cmd(buf, sqe, 0, true, false, 0);
  EXPECT_TRUE(validate(buf, ctrl_params(true)).ok());
  buf[20] ^= 1;  // corrupt the SQE
  EXPECT_EQ(validate(buf, ctrl_params(true)).fes, Fes::kHeaderDigestError);
  build_capsule_cmd(buf, sqe, 0, false, false, 0);
  EXPECT_EQ(validate(buf, ctrl_params(true)).fei, 1u);  // HDGSTF missing
}

TEST(TcpCodec, CapsuleResp) {
  uint8_t buf[64];
  nvemu::nvme::Cqe cqe{};
  cqe.cid = 9;
  EXPECT_EQ(build_capsule_resp(buf, cqe, true), 28u);
  EXPECT_TRUE(validate(buf, host_params(true)).ok());
  reinterpret_cast<CommonHeader*>(buf)->plen = 100;
  EXPECT_EQ(validate(buf, host_params(true)).fei, 4u);
}

TEST(TcpCodec, R2T) {
  uint8_t buf[64];
  build_r2t(buf, 3, 4, 0, 65536, false);
  EXPECT_TRUE(validate(buf, host_params()).ok());
  build_r2t(buf, 3, 4, 0, 0, false);
  EXPECT_EQ(validate(buf, host_params()).fei, 16u);
}

TEST(TcpCodec, DataPdus) {
  uint8_t buf[256];
  size_t n = build_data(buf, PduType::kH2CData, 1, 2, 0, 4096, pdu_flags::kLastPdu, true, true, 0);
  EXPECT_EQ(n, 28u);
  EXPECT_TRUE(validate(buf, ctrl_params(true, true)).ok());
  // DATAL disagreeing with PLEN.
  build_data(buf, PduType::kH2CData, 1, 2, 0, 4096, 0, false, false, 0);
  reinterpret_cast<H2CData*>(buf)->datal = 4000;
  EXPECT_EQ(validate(buf, ctrl_params()).fei, 4u);
  // More than MAXH2CDATA.
  build_data(buf, PduType::kH2CData, 1, 2, 0, 262144, 0, false, false, 0);
  EXPECT_EQ(validate(buf, ctrl_params()).fes, Fes::kDataLimitExceeded);
  // C2HData: SUCCESS needs LAST_PDU; HPDA pads.
  n = build_data(buf, PduType::kC2HData, 1, 0, 0, 512, pdu_flags::kSuccess, false, false, 0);
  EXPECT_EQ(validate(buf, host_params()).fei, 1u);
  n = build_data(buf, PduType::kC2HData, 1, 0, 0, 512, pdu_flags::kLastPdu | pdu_flags::kSuccess,
                 false, false, 15);
  EXPECT_EQ(n, 64u);
  PduLayout l;
  EXPECT_TRUE(validate(buf, host_params(), &l).ok());
  EXPECT_EQ(l.pad_len, 40u);
  EXPECT_EQ(l.data_len, 512u);
}

TEST(TcpCodec, TermReq) {
  uint8_t buf[256];
  uint8_t bad[200];
  std::memset(bad, 0xab, sizeof bad);
  size_t n = build_term_req(buf, PduType::kC2HTermReq, Fes::kInvalidHeaderField, 4, bad, 200);
  EXPECT_EQ(n, 152u);  // the offending header is cut at 128 bytes
  PduLayout l;
  ASSERT_TRUE(validate(buf, host_params(), &l).ok());
  EXPECT_EQ(l.data_len, 128u);
  TermReq t;
  std::memcpy(&t, buf, sizeof t);
  uint32_t fei;
  std::memcpy(&fei, t.fei, 4);
  EXPECT_EQ(t.fes, 1);
  EXPECT_EQ(fei, 4u);
  // TermReq before IC is fine; too long is not.
  LinkParams pre;
  pre.receiver = Receiver::kHost;
  EXPECT_TRUE(validate(buf, pre).ok());
  reinterpret_cast<CommonHeader*>(buf)->plen = 153;
  EXPECT_EQ(validate(buf, host_params()).fei, 4u);
  build_term_req(buf, PduType::kH2CTermReq, Fes::kHeaderDigestError, 0, nullptr, 0);
  EXPECT_TRUE(validate(buf, ctrl_params()).ok());
}

TEST(TcpCodec, FesNames) {
  EXPECT_STREQ(fes_name(Fes::kInvalidHeaderField), "Invalid PDU Header Field");
  EXPECT_STREQ(fes_name(Fes::kPduSequenceError), "PDU Sequence Error");
  EXPECT_STREQ(fes_name(Fes::kHeaderDigestError), "Header Digest Error");
  EXPECT_STREQ(fes_name(Fes::kDataOutOfRange), "Data Transfer Out of Range");
  EXPECT_STREQ(fes_name(Fes::kDataLimitExceeded), "Data Transfer Limit Exceeded");
  EXPECT_STREQ(fes_name(Fes::kUnsupportedParameter), "Unsupported Parameter");
}
