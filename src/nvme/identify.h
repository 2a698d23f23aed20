// Identify data structures (NVMe Base 2.0, 5.17.2; NVM Command Set 1.0, 4.1.5).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nvemu::nvme {

namespace cns {
constexpr uint8_t kNamespace = 0x00;
constexpr uint8_t kController = 0x01;
constexpr uint8_t kActiveNsList = 0x02;
constexpr uint8_t kNsIdDescriptors = 0x03;
constexpr uint8_t kIoCsNamespace = 0x05;
constexpr uint8_t kIoCsController = 0x06;
constexpr uint8_t kIoCsActiveNsList = 0x07;
constexpr uint8_t kIoCommandSets = 0x1c;
}  // namespace cns

constexpr uint8_t kCsiNvm = 0x00;

struct PowerStateDescriptor {
  uint16_t mp;  // centiwatts
  uint8_t reserved2;
  uint8_t flags;  // bit 0 MXPS, bit 1 NOPS
  uint32_t enlat;
  uint32_t exlat;
  uint8_t rrt, rrl, rwt, rwl;
  uint16_t idlp;
  uint8_t ips;
  uint8_t reserved19;
  uint16_t actp;
  uint8_t apw_aps;
  uint8_t reserved23[9];
};
static_assert(sizeof(PowerStateDescriptor) == 32);

// Identify Controller, Figure 275.
struct IdentifyController {
  uint16_t vid;
  uint16_t ssvid;
  char sn[20];
  char mn[40];
  char fr[8];
  uint8_t rab;
  uint8_t ieee[3];
  uint8_t cmic;
  uint8_t mdts;
  uint16_t cntlid;
  uint32_t ver;
  uint32_t rtd3r;
  uint32_t rtd3e;
  uint32_t oaes;
  uint32_t ctratt;
  uint16_t rrls;
  uint8_t reserved102[9];
  uint8_t cntrltype;
  uint8_t fguid[16];
  uint16_t crdt[3];
  uint8_t reserved134[119];
  uint8_t nvmsr;
  uint8_t vwci;
  uint8_t mec;
  uint16_t oacs;
  uint8_t acl;
  uint8_t aerl;
  uint8_t frmw;
  uint8_t lpa;
  uint8_t elpe;
  uint8_t npss;
  uint8_t avscc;
  uint8_t apsta;
  uint16_t wctemp;
  uint16_t cctemp;
  uint16_t mtfa;
  uint32_t hmpre;
  uint32_t hmmin;
  uint64_t tnvmcap[2];
  uint64_t unvmcap[2];
  uint32_t rpmbs;
  uint16_t edstt;
  uint8_t dsto;
  uint8_t fwug;
  uint16_t kas;
  uint16_t hctma;
  uint16_t mntmt;
  uint16_t mxtmt;
  uint32_t sanicap;
  uint32_t hmminds;
  uint16_t hmmaxd;
  uint16_t nsetidmax;
  uint16_t endgidmax;
  uint8_t anatt;
  uint8_t anacap;
  uint32_t anagrpmax;
  uint32_t nanagrpid;
  uint32_t pels;
  uint16_t domainid;
  uint8_t reserved358[10];
  uint64_t megcap[2];
  uint8_t reserved384[128];
  uint8_t sqes;
  uint8_t cqes;
  uint16_t maxcmd;
  uint32_t nn;
  uint16_t oncs;
  uint16_t fuses;
  uint8_t fna;
  uint8_t vwc;
  uint16_t awun;
  uint16_t awupf;
  uint8_t icsvscc;
  uint8_t nwpc;
  uint16_t acwu;
  uint16_t ocfs;
  uint32_t sgls;
  uint32_t mnan;
  uint64_t maxdna[2];
  uint32_t maxcna;
  uint8_t reserved564[204];
  char subnqn[256];
  uint8_t reserved1024[768];
  uint32_t ioccsz;
  uint32_t iorcsz;
  uint16_t icdoff;
  uint8_t fcatt;
  uint8_t msdbd;
  uint16_t ofcs;
  uint8_t reserved1806[242];
  PowerStateDescriptor psd[32];
  uint8_t vs[1024];
};
static_assert(sizeof(IdentifyController) == 4096);
static_assert(offsetof(IdentifyController, sn) == 4);
static_assert(offsetof(IdentifyController, mn) == 24);
static_assert(offsetof(IdentifyController, fr) == 64);
static_assert(offsetof(IdentifyController, ieee) == 73);
static_assert(offsetof(IdentifyController, mdts) == 77);
static_assert(offsetof(IdentifyController, cntlid) == 78);
static_assert(offsetof(IdentifyController, ver) == 80);
static_assert(offsetof(IdentifyController, oaes) == 92);
static_assert(offsetof(IdentifyController, cntrltype) == 111);
static_assert(offsetof(IdentifyController, oacs) == 256);
static_assert(offsetof(IdentifyController, aerl) == 259);
static_assert(offsetof(IdentifyController, lpa) == 261);
static_assert(offsetof(IdentifyController, wctemp) == 266);
static_assert(offsetof(IdentifyController, tnvmcap) == 280);
static_assert(offsetof(IdentifyController, kas) == 320);
static_assert(offsetof(IdentifyController, anatt) == 342);
static_assert(offsetof(IdentifyController, megcap) == 368);
static_assert(offsetof(IdentifyController, sqes) == 512);
static_assert(offsetof(IdentifyController, maxcmd) == 514);
static_assert(offsetof(IdentifyController, nn) == 516);
static_assert(offsetof(IdentifyController, oncs) == 520);
static_assert(offsetof(IdentifyController, vwc) == 525);
static_assert(offsetof(IdentifyController, sgls) == 536);
static_assert(offsetof(IdentifyController, maxcna) == 560);
static_assert(offsetof(IdentifyController, subnqn) == 768);
static_assert(offsetof(IdentifyController, ioccsz) == 1792);
static_assert(offsetof(IdentifyController, icdoff) == 1800);
static_assert(offsetof(IdentifyController, msdbd) == 1803);
static_assert(offsetof(IdentifyController, psd) == 2048);
static_assert(offsetof(IdentifyController, vs) == 3072);

// LBA format, Figure 98 of the NVM Command Set spec.
struct LbaFormat {
  uint16_t ms;
  uint8_t lbads;  // log2(block size)
  uint8_t rp;
};
static_assert(sizeof(LbaFormat) == 4);

// Identify Namespace for the NVM command set, NVM Command Set 1.0 Figure 97.
struct IdentifyNamespace {
  uint64_t nsze;
  uint64_t ncap;
  uint64_t nuse;
  uint8_t nsfeat;
  uint8_t nlbaf;  // 0-based
  uint8_t flbas;
  uint8_t mc;
  uint8_t dpc;
  uint8_t dps;
  uint8_t nmic;
  uint8_t rescap;
  uint8_t fpi;
  uint8_t dlfeat;
  uint16_t nawun;
  uint16_t nawupf;
  uint16_t nacwu;
  uint16_t nabsn;
  uint16_t nabo;
  uint16_t nabspf;
  uint16_t noiob;
  uint64_t nvmcap[2];
  uint16_t npwg, npwa, npdg, npda, nows;
  uint16_t mssrl;
  uint32_t mcl;
  uint8_t msrc;
  uint8_t reserved81;
  uint8_t nulbaf;
  uint8_t reserved83[9];
  uint32_t anagrpid;
  uint8_t reserved96[3];
  uint8_t nsattr;
  uint16_t nvmsetid;
  uint16_t endgid;
  uint8_t nguid[16];
  uint8_t eui64[8];
  LbaFormat lbaf[64];
  uint8_t vs[3712];
};
static_assert(sizeof(IdentifyNamespace) == 4096);
static_assert(offsetof(IdentifyNamespace, nsfeat) == 24);
static_assert(offsetof(IdentifyNamespace, nmic) == 30);
static_assert(offsetof(IdentifyNamespace, dlfeat) == 33);
static_assert(offsetof(IdentifyNamespace, nvmcap) == 48);
static_assert(offsetof(IdentifyNamespace, npwg) == 64);
static_assert(offsetof(IdentifyNamespace, anagrpid) == 92);
static_assert(offsetof(IdentifyNamespace, nguid) == 104);
static_assert(offsetof(IdentifyNamespace, eui64) == 120);
static_assert(offsetof(IdentifyNamespace, lbaf) == 128);

// Namespace Identification Descriptor header, Figure 280.
struct NsIdDescHeader {
  uint8_t nidt;
  uint8_t nidl;
  uint8_t reserved[2];
};
static_assert(sizeof(NsIdDescHeader) == 4);
namespace nidt {
constexpr uint8_t kEui64 = 1, kNguid = 2, kUuid = 3, kCsi = 4;
}

// I/O Command Set specific Identify Controller for the NVM set (CNS 06h,
// NVM Command Set 1.0 Figure 112).
struct IdentifyControllerNvm {
  uint8_t vsl;
  uint8_t wzsl;
  uint8_t wusl;
  uint8_t dmrl;
  uint32_t dmrsl;
  uint64_t dmsl;
  uint8_t reserved16[4080];
};
static_assert(sizeof(IdentifyControllerNvm) == 4096);
static_assert(offsetof(IdentifyControllerNvm, dmrsl) == 4);
static_assert(offsetof(IdentifyControllerNvm, dmsl) == 8);

}  // namespace nvemu::nvme
