// NVM command set I/O (NVM Command Set 1.0, 3): parse (namespace, LBA range,
// MDTS, data length) then execute against the namespace's bdev through this
// reactor's poll group, ending in one completion.
//
// Compare and Write (fused, NVM 3.4.1): the Compare half waits on its qpair
// for the Write half; the pair then takes an LBA range lock (range_lock.h)
// and runs as read -> memcmp -> write while writes to the range from every
// qpair on every reactor are held back, so it is atomic against all of them.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "common/counter.h"
#include "nvme/nvm.h"
#include "nvmf/controller.h"
#include "nvmf/opcodes.h"
#include "nvmf/poll_group.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

using nvme::Status;
namespace nop = nvme::nvm_opc;

namespace {

// The single place a bdev outcome becomes an NVMe status.
Status map_io_status(bdev::IoStatus st) {
  switch (st) {
    case bdev::IoStatus::kSuccess:
      return Status::success();
    case bdev::IoStatus::kOutOfRange:
      return Status::generic(nvme::sc::kLbaOutOfRange);
    case bdev::IoStatus::kMediaRead:
      return Status::media(nvme::msc::kUnrecoveredReadError);
    case bdev::IoStatus::kMediaWrite:
      return Status::media(nvme::msc::kWriteFault);
    case bdev::IoStatus::kAborted:
      return Status::generic(nvme::sc::kAbortedSqDeletion, false);
    case bdev::IoStatus::kNoMem:  // resubmitted before it gets here; if not, let the host retry
    case bdev::IoStatus::kError:
      break;
  }
  return Status::generic(nvme::sc::kInternalError, false);
}

// State of a multi-step command (Compare, DSM, Write Zeroes emulation,
// Compare and Write). Plain Read/Write/Flush need none.
struct MultiStep {
  std::vector<uint8_t> buf;
  struct iovec iov {};
  std::vector<nvme::DsmRange> ranges;
  size_t next = 0;
  uint64_t slba = 0, remaining = 0;
  Request* write = nullptr;         // Compare and Write: the second half
  std::shared_ptr<RangeLock> lock;  // Compare and Write: held from read to write
};

// The qpair's reactor runs the request, so its poll group holds the channel.
PollGroup& group_of(const Request* req) {
  return PollGroup::of(*req->qpair);
}
NsChannel* channel_of(Request* req) {
  return reinterpret_cast<NsChannel*>(req->ctrlr_word);
}
MultiStep* steps_of(Request* req) {
  return static_cast<MultiStep*>(req->ctrlr_ctx);
}

void io_done(bdev::BdevIo* io, bdev::IoStatus st);

bool modifies(bdev::IoType t) {
  return t == bdev::IoType::kWrite || t == bdev::IoType::kWriteZeroes || t == bdev::IoType::kUnmap;
}

void submit(Request* req, bdev::IoType type, uint64_t slba, uint64_t nlb, const struct iovec* iov,
            int iovcnt) {
  bdev::BdevIo& io = req->bdev_io;
  io = bdev::BdevIo{};
  io.type = type;
  io.offset_blocks = slba;
  io.num_blocks = nlb;
  io.iovs = iov;
  io.iovcnt = iovcnt;
  // FUA (NVM 3.2.6): the backend makes this write durable before it completes.
  io.fua = type == bdev::IoType::kWrite && (req->cmd.cdw12 & nvme::rw::kFua) != 0;
  io.cb = io_done;
  io.ctx = req;
  io.direct_ok = req->direct_ok && type == bdev::IoType::kRead && !req->ctrlr_ctx;
  NsChannel* c = channel_of(req);
  if (modifies(type)) {
    MultiStep* m = steps_of(req);
    if (!group_of(req).admit_write(c, req, m ? m->lock.get() : nullptr)) return;
  }
  c->channel->submit(&io);
}

void finish(Request* req, Status s) {
  NsChannel* c = channel_of(req);
  PollGroup& group = group_of(req);  // req may be reused once completed
  std::unique_ptr<MultiStep> steps(steps_of(req));
  req->ctrlr_ctx = nullptr;
  Controller* ctrlr = req->qpair->controller().get();
  if (steps && steps->lock) c->ns->range_locks->release(steps->lock);
  if (steps && steps->write) {  // Compare and Write: the Write half completes too
    Request* w = steps->write;
    w->status = s.ok() ? s : Status::generic(nvme::sc::kAbortedFailedFused, false);
    if (ctrlr)
      ctrlr->complete(w);
    else
      w->qpair->complete(w);
  }
  req->status = s;
  if (ctrlr)
    ctrlr->complete(req);
  else
    req->qpair->complete(req);
  if (c) group.end_io(c);
}

// SMART counters, kept per qpair (Controller::smart_counts sums them).
void count(Request* req, Status s) {
  Qpair::IoState& io = req->qpair->io;
  if (s.sct == nvme::Sct::kMediaError) add_single_writer(io.media_errors, 1);
  if (!s.ok()) return;
  uint64_t units = uint64_t{req->bdev_io.num_blocks} * channel_of(req)->bdev->block_size() / 512;
  if (req->bdev_io.type == bdev::IoType::kRead) {
    add_single_writer(io.units_read, units);
    add_single_writer(io.read_cmds, 1);
  } else if (req->bdev_io.type == bdev::IoType::kWrite) {
    add_single_writer(io.units_written, units);
    add_single_writer(io.write_cmds, 1);
  }
}

// Next unmap of a DSM, next chunk of an emulated Write Zeroes.
bool next_step(Request* req) {
  MultiStep* m = steps_of(req);
  if (req->cmd.opc == nop::kDatasetManagement) {
    while (m->next < m->ranges.size() && m->ranges[m->next].nlb == 0) ++m->next;
    if (m->next == m->ranges.size()) return false;
    const nvme::DsmRange& r = m->ranges[m->next++];
    submit(req, bdev::IoType::kUnmap, r.slba, r.nlb, nullptr, 0);
    return true;
  }
  if (req->cmd.opc == nop::kWriteZeroes && m->remaining) {
    uint32_t bs = channel_of(req)->bdev->block_size();
    uint64_t n = std::min<uint64_t>(m->remaining, m->buf.size() / bs);
    m->iov = {m->buf.data(), n * bs};
    uint64_t slba = m->slba;
    m->slba += n;
    m->remaining -= n;
    submit(req, bdev::IoType::kWrite, slba, n, &m->iov, 1);
    return true;
  }
  return false;
}

void io_done(bdev::BdevIo* io, bdev::IoStatus st) {
  auto* req = static_cast<Request*>(io->ctx);
  if (st == bdev::IoStatus::kNoMem) {  // transient: try again from the reactor loop
    req->qpair->reactor().send([req] { channel_of(req)->channel->submit(&req->bdev_io); });
    return;
  }
  if (modifies(io->type)) group_of(req).write_done(channel_of(req), req);
  if (io->direct.iov_base && st == bdev::IoStatus::kSuccess) {
    // The data stays in the bdev: the transport sends it from there.
    req->iov[0] = io->direct;
    req->iovcnt = 1;
    req->data_hold = channel_of(req)->bdev;
  }
  Status s = map_io_status(st);
  MultiStep* m = steps_of(req);
  if (!m || req->cmd.opc != nop::kCompare) count(req, s);
  if (s.ok() && m) {
    if (req->cmd.opc == nop::kCompare && io->type == bdev::IoType::kRead) {
      count(req, s);
      std::vector<uint8_t> host(m->buf.size());
      size_t got = req->copy_from_iov(host.data(), host.size());
      if (got != host.size() || std::memcmp(host.data(), m->buf.data(), host.size()) != 0) {
        finish(req, Status::media(nvme::msc::kCompareFailure));
        return;
      }
      if (m->write) {  // compare matched: write the second half's data
        Request* w = m->write;
        submit(req, bdev::IoType::kWrite, io->offset_blocks, io->num_blocks, w->iov, w->iovcnt);
        return;
      }
    } else if (next_step(req)) {
      return;
    }
  }
  finish(req, s);
}

struct Parsed {
  NsChannel* ch = nullptr;  // the namespace on this reactor
  uint64_t slba = 0;
  uint64_t nlb = 0;
};

// Namespace, range, size and data-length checks shared by the commands. The
// status is returned, not kept in Parsed: a Status in a stack struct is
// written field by field and read back whole, a store-forwarding stall.
Status parse(const Controller& ctrlr, Request* req, Parsed* out) {
  const nvme::Sqe& cmd = req->cmd;
  Parsed& p = *out;
  p.ch = group_of(req).lookup(*req->qpair, *ctrlr.subsystem(), cmd.nsid);
  if (!p.ch) return Status::generic(nvme::sc::kInvalidNamespaceOrFormat).at(nvme::loc::kNsid);
  const bdev::Bdev& b = *p.ch->bdev;
  switch (cmd.opc) {
    case nop::kRead:
    case nop::kWrite:
    case nop::kCompare:
    case nop::kWriteZeroes: {
      p.slba = uint64_t{cmd.cdw10} | uint64_t{cmd.cdw11} << 32;
      p.nlb = nvme::rw::nlb(cmd.cdw12);
      if (p.slba + p.nlb > b.num_blocks() || p.slba + p.nlb < p.slba)
        return Status::generic(nvme::sc::kLbaOutOfRange).at(nvme::loc::kCdw10);
      if (cmd.opc == nop::kWriteZeroes) break;
      uint64_t bytes = p.nlb * b.block_size();
      if (bytes > ctrlr.opts().max_io_size)  // beyond MDTS
        return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw12);
      if (req->length < bytes)
        return Status::generic(nvme::sc::kDataSglLengthInvalid).at(nvme::loc::kDptr);
      break;
    }
    case nop::kDatasetManagement: {
      uint32_t nr = (cmd.cdw10 & 0xff) + 1;
      if (req->length < nr * sizeof(nvme::DsmRange))
        return Status::generic(nvme::sc::kDataSglLengthInvalid).at(nvme::loc::kDptr);
      break;
    }
    default:
      break;
  }
  return Status::success();
}

void start(Request* req, NsChannel* c) {
  group_of(req).start_io(c);
  req->ctrlr_word = reinterpret_cast<uint64_t>(c);
}

}  // namespace

void Controller::exec_io(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  req->ctrlr_word = 0;
  req->ctrlr_ctx = nullptr;
  auto fail = [&](Status s) {
    req->status = s;
    complete(req);
  };
  // A pending fused Compare must be followed by its Write at once; anything
  // else aborts it (NVMe Base 2.0, 3.4.2).
  Request*& first = req->qpair->io.fused_first;
  if (first && cmd.fuse() != nvme::kFuseSecond) {
    Request* f = first;
    first = nullptr;
    f->status = Status::generic(nvme::sc::kAbortedMissingFused, false);
    complete(f);
  }
  if (discovery_ || !io_opcode(cmd.opc).supported)
    return fail(Status::generic(nvme::sc::kInvalidOpcode).at(nvme::loc::kOpc));
  if (!ready()) return fail(Status::generic(nvme::sc::kCommandSequenceError));

  if (cmd.opc == nop::kFlush && cmd.nsid == 0xffffffff) {
    // Broadcast flush: nothing is cached unless a bdev says so.
    auto t = subsys_->namespaces();
    bool cached = std::any_of(t->begin(), t->end(),
                              [](const auto& e) { return e.second->bdev->has_write_cache(); });
    return fail(cached ? Status::generic(nvme::sc::kInvalidNamespaceOrFormat).at(nvme::loc::kNsid)
                       : Status::success());
  }
  Parsed p;
  Status parsed = parse(*this, req, &p);
  if (!parsed.ok()) {
    if (cmd.fuse() == nvme::kFuseSecond && first) {
      Request* f = first;
      first = nullptr;
      f->status = Status::generic(nvme::sc::kAbortedFailedFused, false);
      complete(f);
    }
    return fail(parsed);
  }
  const bdev::Bdev& b = *p.ch->bdev;

  // Fused Compare and Write.
  if (cmd.fuse() == nvme::kFuseFirst) {
    if (cmd.opc != nop::kCompare)
      return fail(Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kFlags));
    first = req;
    return;  // waits for the Write half
  }
  if (cmd.fuse() == nvme::kFuseSecond) {
    Request* f = first;
    first = nullptr;
    if (!f) return fail(Status::generic(nvme::sc::kAbortedMissingFused, false));
    bool same = cmd.opc == nop::kWrite && f->cmd.nsid == cmd.nsid && f->cmd.cdw10 == cmd.cdw10 &&
                f->cmd.cdw11 == cmd.cdw11 && (f->cmd.cdw12 & 0xffff) == (cmd.cdw12 & 0xffff);
    if (!same) {
      f->status = Status::generic(nvme::sc::kAbortedFailedFused, false);
      complete(f);
      return fail(Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kFlags));
    }
    auto* m = new MultiStep;
    m->buf.resize(p.nlb * b.block_size());
    m->iov = {m->buf.data(), m->buf.size()};
    m->write = req;
    f->ctrlr_ctx = m;
    start(f, p.ch);
    m->lock = std::make_shared<RangeLock>();
    m->lock->range = {p.slba, p.nlb};
    m->lock->owner = &req->qpair->reactor();
    m->lock->ns = p.ch->ns;
    m->lock->granted = [f, slba = p.slba, nlb = p.nlb] {
      submit(f, bdev::IoType::kRead, slba, nlb, &steps_of(f)->iov, 1);
    };
    p.ch->ns->range_locks->acquire(m->lock);
    return;
  }

  switch (cmd.opc) {
    case nop::kRead:
    case nop::kWrite: {
      // Move exactly the command's data: trim a longer host buffer.
      uint64_t bytes = p.nlb * b.block_size();
      if (req->length > bytes) {
        uint64_t left = bytes;
        int i = 0;
        for (; i < req->iovcnt && left; ++i) {
          req->iov[i].iov_len = std::min<uint64_t>(req->iov[i].iov_len, left);
          left -= req->iov[i].iov_len;
        }
        req->iovcnt = i;
        req->length = static_cast<uint32_t>(bytes);
      }
      start(req, p.ch);
      submit(req, cmd.opc == nop::kRead ? bdev::IoType::kRead : bdev::IoType::kWrite, p.slba, p.nlb,
             req->iov, req->iovcnt);
      return;
    }
    case nop::kFlush:
      if (!b.supports(bdev::IoType::kFlush)) return fail(Status::success());
      start(req, p.ch);
      submit(req, bdev::IoType::kFlush, 0, b.num_blocks(), nullptr, 0);
      return;
    case nop::kCompare: {
      auto* m = new MultiStep;
      m->buf.resize(p.nlb * b.block_size());
      m->iov = {m->buf.data(), m->buf.size()};
      req->ctrlr_ctx = m;
      start(req, p.ch);
      submit(req, bdev::IoType::kRead, p.slba, p.nlb, &m->iov, 1);
      return;
    }
    case nop::kWriteZeroes: {
      start(req, p.ch);
      if (b.supports(bdev::IoType::kWriteZeroes)) {
        submit(req, bdev::IoType::kWriteZeroes, p.slba, p.nlb, nullptr, 0);
        return;
      }
      auto* m = new MultiStep;  // emulate with writes of a zero buffer
      m->buf.assign(std::min<uint64_t>(p.nlb * b.block_size(), 128 * 1024), 0);
      m->slba = p.slba;
      m->remaining = p.nlb;
      req->ctrlr_ctx = m;
      next_step(req);
      return;
    }
    case nop::kDatasetManagement: {
      uint32_t nr = (cmd.cdw10 & 0xff) + 1;
      auto* m = new MultiStep;
      m->ranges.resize(nr);
      req->copy_from_iov(m->ranges.data(), nr * sizeof(nvme::DsmRange));
      for (const auto& r : m->ranges)
        if (r.slba + r.nlb > b.num_blocks() || r.slba + r.nlb < r.slba) {
          delete m;
          return fail(Status::generic(nvme::sc::kLbaOutOfRange));
        }
      // Only deallocate does anything; the other attributes are hints.
      if (!(cmd.cdw11 & nvme::dsm::kAd) || !b.supports(bdev::IoType::kUnmap)) {
        delete m;
        return fail(Status::success());
      }
      req->ctrlr_ctx = m;
      start(req, p.ch);
      if (!next_step(req)) finish(req, Status::success());
      return;
    }
  }
  fail(Status::generic(nvme::sc::kInvalidOpcode).at(nvme::loc::kOpc));
}

}  // namespace nvemu::nvmf
