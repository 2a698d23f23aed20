// The uring bdev against real files: ext4 (/tmp, /var/tmp), tmpfs
// (/dev/shm) and the buffered fallback, driven on a real Reactor thread.
#include "bdev/uring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "reactor/reactor.h"

namespace nvemu::bdev {
namespace {

using namespace std::chrono_literals;

// A file of `size` bytes in `dir`, removed at the end of the test.
class TempFile {
 public:
  TempFile(const std::string& dir, uint64_t size) {
    std::string tmpl = dir + "/nvemu-uring-XXXXXX";
    int fd = mkstemp(tmpl.data());
    if (fd < 0) return;
    path_ = tmpl;
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) path_.clear();
    close(fd);
  }
  ~TempFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<uint8_t> pread_all(uint64_t off, size_t len) const {
    std::vector<uint8_t> out(len);
    int fd = open(path_.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(pread(fd, out.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    close(fd);
    return out;
  }

 private:
  std::string path_;
};

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buf = std::unique_ptr<uint8_t, AlignedFree>;
Buf alloc(size_t len) {
  return Buf(static_cast<uint8_t*>(std::aligned_alloc(4096, (len + 4095) / 4096 * 4096)));
}

void fill(uint8_t* p, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; ++i)
    p[i] = static_cast<uint8_t>((i * 131 + seed * 7 + (i >> 9)) ^ seed);
}

// Completion bookkeeping shared by one batch of I/Os.
struct Batch {
  int outstanding = 0;
  std::vector<IoStatus> status;
  std::promise<void> done;
};
struct Op {
  BdevIo io;
  std::vector<iovec> iov;
  Batch* batch = nullptr;
  size_t index = 0;
};

void on_done(BdevIo* io, IoStatus s) {
  auto* op = static_cast<Op*>(io->ctx);
  op->batch->status[op->index] = s;
  if (--op->batch->outstanding == 0) op->batch->done.set_value();
}

struct Param {
  const char* dir;
  bool buffered;
};

class UringIoTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    struct stat st {};
    if (stat(GetParam().dir, &st) != 0) GTEST_SKIP() << GetParam().dir << " does not exist";
    reactor_ = std::make_unique<Reactor>(0, 0);
    reactor_->start_thread();
  }
  void TearDown() override {
    if (ch_) on_reactor([&] { ch_.reset(); });
    if (reactor_) {
      reactor_->request_stop();
      reactor_->join();
    }
    uring_set_test_hooks({});
  }

  // Runs fn on the reactor thread and waits for it.
  template <class F>
  void on_reactor(F fn) {
    std::promise<void> p;
    reactor_->send([&] {
      fn();
      p.set_value();
    });
    ASSERT_EQ(p.get_future().wait_for(10s), std::future_status::ready);
  }

  void make(uint64_t size, uint32_t block_size = 0, UringTestHooks hooks = {}) {
    file_ = std::make_unique<TempFile>(GetParam().dir, size);
    ASSERT_FALSE(file_->path().empty());
    hooks.fail_direct_open = GetParam().buffered;
    uring_set_test_hooks(hooks);
    std::string err;
    bdev_ = create_uring_bdev("uring0", file_->path(), block_size, &err);
    ASSERT_TRUE(bdev_) << err;
    on_reactor([&] { ch_ = bdev_->open_channel(); });
    ASSERT_TRUE(ch_);
  }

  // Submits every op on the reactor in one go; waits for all completions.
  std::vector<IoStatus> run(std::vector<Op>& ops) {
    Batch batch;
    batch.outstanding = static_cast<int>(ops.size());
    batch.status.assign(ops.size(), IoStatus::kAborted);
    auto fut = batch.done.get_future();
    on_reactor([&] {
      for (size_t i = 0; i < ops.size(); ++i) {
        Op& op = ops[i];
        op.batch = &batch;
        op.index = i;
        op.io.iovs = op.iov.data();
        op.io.iovcnt = static_cast<int>(op.iov.size());
        op.io.cb = on_done;
        op.io.ctx = &op;
        ch_->submit(&op.io);
      }
    });
    EXPECT_EQ(fut.wait_for(10s), std::future_status::ready);
    return batch.status;
  }

  IoStatus run1(IoType type, uint64_t lba, uint64_t n, std::vector<iovec> iov = {}) {
    std::vector<Op> ops(1);
    ops[0].io.type = type;
    ops[0].io.offset_blocks = lba;
    ops[0].io.num_blocks = n;
    ops[0].iov = std::move(iov);
    return run(ops)[0];
  }

  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<TempFile> file_;
  std::shared_ptr<Bdev> bdev_;
  std::unique_ptr<Channel> ch_;
};

TEST_P(UringIoTest, ReportsGeometryAndConfig) {
  make(1 << 20);
  EXPECT_EQ(bdev_->block_size(), 512u);
  EXPECT_EQ(bdev_->num_blocks(), 2048u);
  EXPECT_EQ(bdev_->module_name(), "uring");
  EXPECT_EQ(bdev_->product_name(), "URING bdev");
  EXPECT_EQ(static_cast<UringBdev&>(*bdev_).direct_io(), !GetParam().buffered);
  EXPECT_EQ(bdev_->driver_specific(), (nlohmann::json{{"uring", {{"filename", file_->path()}}}}));
  auto cfg = bdev_->config_entry();
  EXPECT_EQ(cfg["method"], "bdev_uring_create");
  EXPECT_EQ(cfg["params"]["name"], "uring0");
  EXPECT_EQ(cfg["params"]["filename"], file_->path());
  EXPECT_EQ(cfg["params"]["block_size"], 512);
  for (IoType t :
       {IoType::kRead, IoType::kWrite, IoType::kFlush, IoType::kUnmap, IoType::kWriteZeroes})
    EXPECT_TRUE(bdev_->supports(t));
  EXPECT_EQ(bdev_->info_json()["driver_specific"]["uring"]["filename"], file_->path());
}

TEST_P(UringIoTest, BlockSize4096AndTrailingPartialBlock) {
  make((1 << 20) + 1000, 4096);
  EXPECT_EQ(bdev_->block_size(), 4096u);
  EXPECT_EQ(bdev_->num_blocks(), 256u);
}

TEST_P(UringIoTest, AlignedWriteReadBack) {
  make(1 << 20);
  const size_t len = 16 * 512;
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 1);
  // Three aligned iovecs of 4 KiB, 2 KiB, 2 KiB.
  ASSERT_EQ(run1(IoType::kWrite, 100, 16,
                 {{w.get(), 4096}, {w.get() + 4096, 2048}, {w.get() + 6144, 2048}}),
            IoStatus::kSuccess);
  std::memset(r.get(), 0xee, len);
  ASSERT_EQ(run1(IoType::kRead, 100, 16, {{r.get(), len}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), len), 0);
  EXPECT_EQ(file_->pread_all(100 * 512, len), std::vector<uint8_t>(w.get(), w.get() + len));
}

TEST_P(UringIoTest, UnalignedIovecsBounce) {
  make(1 << 20);
  const size_t len = 8 * 512;
  Buf w = alloc(len + 64), r = alloc(len + 64);
  fill(w.get(), len + 64, 2);
  // Odd addresses and lengths that are not multiples of the sector size.
  uint8_t* wp = w.get() + 3;
  ASSERT_EQ(run1(IoType::kWrite, 7, 8, {{wp, 7}, {wp + 7, 2000}, {wp + 2007, len - 2007}}),
            IoStatus::kSuccess);
  std::memset(r.get(), 0xee, len + 64);
  uint8_t* rp = r.get() + 1;
  ASSERT_EQ(run1(IoType::kRead, 7, 8, {{rp, 1000}, {rp + 1000, len - 1000}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(wp, rp, len), 0);
  EXPECT_EQ(r.get()[0], 0xee);
  EXPECT_EQ(rp[len], 0xee);  // nothing written past the buffer
  EXPECT_EQ(file_->pread_all(7 * 512, len), std::vector<uint8_t>(wp, wp + len));
}

TEST_P(UringIoTest, LargeUnalignedIoTakesOneOffBuffer) {
  make(4 << 20);
  const size_t len = 512 * 1024;  // larger than a pool bounce buffer
  Buf w = alloc(len + 8), r = alloc(len + 8);
  fill(w.get(), len + 8, 3);
  ASSERT_EQ(run1(IoType::kWrite, 1, len / 512, {{w.get() + 5, len}}), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kRead, 1, len / 512, {{r.get() + 2, len}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get() + 5, r.get() + 2, len), 0);
}

TEST_P(UringIoTest, IovecsLongerThanIoAreClipped) {
  make(1 << 20);
  Buf w = alloc(8192), r = alloc(8192);
  fill(w.get(), 8192, 4);
  ASSERT_EQ(run1(IoType::kWrite, 0, 2, {{w.get(), 4096}, {w.get() + 4096, 4096}}),
            IoStatus::kSuccess);
  // Only the first 1024 bytes reach the file; block 2 stays zero.
  EXPECT_EQ(file_->pread_all(1024, 512), std::vector<uint8_t>(512, 0));
  std::memset(r.get(), 0xee, 8192);
  ASSERT_EQ(run1(IoType::kRead, 0, 2, {{r.get(), 8192}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), 1024), 0);
  EXPECT_EQ(r.get()[1024], 0xee);  // the read did not run past the I/O
}

TEST_P(UringIoTest, ShortBufferIsAnError) {
  make(1 << 20);
  Buf w = alloc(4096);
  EXPECT_EQ(run1(IoType::kWrite, 0, 2, {{w.get(), 512}}), IoStatus::kError);
  EXPECT_EQ(run1(IoType::kRead, 0, 1, {}), IoStatus::kError);
}

TEST_P(UringIoTest, FlushSucceeds) {
  make(1 << 20);
  EXPECT_EQ(run1(IoType::kFlush, 0, bdev_->num_blocks()), IoStatus::kSuccess);
  EXPECT_EQ(ch_->stats().num_flush_ops.load(), 1u);
}

TEST_P(UringIoTest, UnmapThenReadZeroes) {
  make(1 << 20);
  const size_t len = 64 * 1024;
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 5);
  ASSERT_EQ(run1(IoType::kWrite, 0, len / 512, {{w.get(), len}}), IoStatus::kSuccess);
  // Unmap blocks 9..40: not file-system-block aligned, so partial blocks.
  ASSERT_EQ(run1(IoType::kUnmap, 9, 32), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kRead, 0, len / 512, {{r.get(), len}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), 9 * 512), 0);
  EXPECT_EQ(std::vector<uint8_t>(r.get() + 9 * 512, r.get() + 41 * 512),
            std::vector<uint8_t>(32 * 512, 0));
  EXPECT_EQ(std::memcmp(w.get() + 41 * 512, r.get() + 41 * 512, len - 41 * 512), 0);
  EXPECT_EQ(ch_->stats().bytes_unmapped.load(), 32u * 512);
  EXPECT_EQ(ch_->stats().num_unmap_ops.load(), 1u);
}

TEST_P(UringIoTest, WriteZeroes) {
  make(1 << 20);
  const size_t len = 64 * 1024;
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 6);
  ASSERT_EQ(run1(IoType::kWrite, 0, len / 512, {{w.get(), len}}), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kWriteZeroes, 3, 20), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kRead, 0, len / 512, {{r.get(), len}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), 3 * 512), 0);
  EXPECT_EQ(std::vector<uint8_t>(r.get() + 3 * 512, r.get() + 23 * 512),
            std::vector<uint8_t>(20 * 512, 0));
  EXPECT_EQ(std::memcmp(w.get() + 23 * 512, r.get() + 23 * 512, len - 23 * 512), 0);
  EXPECT_EQ(ch_->stats().num_write_zeroes_ops.load(), 1u);
}

TEST_P(UringIoTest, ZeroesWrittenWhenFallocateIsUnsupported) {
  UringTestHooks hooks;
  hooks.no_fallocate = true;
  make(2 << 20, 0, hooks);
  const size_t len = 1 << 20;  // several zero-buffer iovecs
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 7);
  ASSERT_EQ(run1(IoType::kWrite, 0, len / 512, {{w.get(), len}}), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kWriteZeroes, 1, 1000), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kUnmap, 1500, 10), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kRead, 0, len / 512, {{r.get(), len}}), IoStatus::kSuccess);
  std::vector<uint8_t> expect(w.get(), w.get() + len);
  std::memset(expect.data() + 512, 0, 1000 * 512);
  std::memset(expect.data() + 1500 * 512, 0, 10 * 512);
  EXPECT_EQ(std::vector<uint8_t>(r.get(), r.get() + len), expect);
}

TEST_P(UringIoTest, OutOfRangeRejected) {
  make(1 << 20);
  Buf b = alloc(1024);
  EXPECT_EQ(run1(IoType::kRead, 2047, 2, {{b.get(), 1024}}), IoStatus::kOutOfRange);
  EXPECT_EQ(run1(IoType::kWrite, 2048, 1, {{b.get(), 512}}), IoStatus::kOutOfRange);
  EXPECT_EQ(run1(IoType::kUnmap, UINT64_MAX, 2), IoStatus::kOutOfRange);
  EXPECT_EQ(run1(IoType::kRead, 2047, 1, {{b.get(), 512}}), IoStatus::kSuccess);  // last block
}

TEST_P(UringIoTest, IoStatsCounted) {
  make(1 << 20);
  Buf b = alloc(4096);
  fill(b.get(), 4096, 8);
  ASSERT_EQ(run1(IoType::kWrite, 0, 8, {{b.get(), 4096}}), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kWrite, 8, 4, {{b.get(), 2048}}), IoStatus::kSuccess);
  ASSERT_EQ(run1(IoType::kRead, 0, 8, {{b.get(), 4096}}), IoStatus::kSuccess);
  EXPECT_EQ(run1(IoType::kRead, 5000, 1, {{b.get(), 512}}), IoStatus::kOutOfRange);
  const IoStats& s = ch_->stats();
  EXPECT_EQ(s.num_write_ops.load(), 2u);
  EXPECT_EQ(s.bytes_written.load(), 6144u);
  EXPECT_EQ(s.num_read_ops.load(), 1u);
  EXPECT_EQ(s.bytes_read.load(), 4096u);
  EXPECT_EQ(s.num_errors.load(), 1u);
  auto j = bdev_->iostat_json();
  EXPECT_EQ(j["bytes_written"], 6144);
  EXPECT_EQ(j["num_read_ops"], 1);
}

// More iovecs than readv takes (IOV_MAX): the data goes through a bounce buffer.
TEST_P(UringIoTest, MoreIovecsThanIovMax) {
  make(1 << 20);
  const size_t n = 1100;
  Buf w = alloc(n * 512), r = alloc(n * 512);
  fill(w.get(), n * 512, 11);
  std::vector<iovec> iov;
  for (size_t i = 0; i < n; ++i) iov.push_back({w.get() + i * 512, 512});
  ASSERT_EQ(run1(IoType::kWrite, 3, n, iov), IoStatus::kSuccess);
  iov.clear();
  for (size_t i = 0; i < n; ++i) iov.push_back({r.get() + i * 512, 512});
  ASSERT_EQ(run1(IoType::kRead, 3, n, iov), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), n * 512), 0);
}

// The file shrinks under the bdev: a read across the new end fails as an
// unrecovered read, never as success.
TEST_P(UringIoTest, ReadPastShrunkFileFails) {
  make(1 << 20);
  const size_t len = 8 * 512;
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 12);
  ASSERT_EQ(run1(IoType::kWrite, 100, 8, {{w.get(), len}}), IoStatus::kSuccess);
  ASSERT_EQ(truncate(file_->path().c_str(), 100 * 512 + 1280), 0);
  std::memset(r.get(), 0xee, len);
  // Two iovecs, so the remainder after the short read starts mid-iovec.
  EXPECT_EQ(run1(IoType::kRead, 100, 8, {{r.get(), 1024}, {r.get() + 1024, len - 1024}}),
            IoStatus::kMediaRead);
  // Buffered, the rest after the short read is resubmitted (and then reads
  // nothing); the data before the end arrived. (A failed bounced read leaves
  // the caller's buffer as it was.)
  if (GetParam().buffered) {
    EXPECT_EQ(std::memcmp(w.get(), r.get(), 1280), 0);
  }
}

// More I/Os than the ring holds and more unaligned ones than there are
// bounce buffers: the surplus waits in the pending list.
TEST_P(UringIoTest, ManyConcurrentIosQueueWhenRingIsFull) {
  make(4 << 20);
  const size_t n = 600, blk = 4096, stride = blk + 4096;  // buffers never overlap
  Buf w = alloc(n * stride), r = alloc(n * stride);
  fill(w.get(), n * stride, 9);
  auto wbuf = [&](size_t i) { return w.get() + i * stride + i % 2; };  // every other unaligned
  auto rbuf = [&](size_t i) { return r.get() + i * stride + (i % 3 == 0); };
  std::vector<Op> ops(n);
  for (size_t i = 0; i < n; ++i) {
    ops[i].io.type = IoType::kWrite;
    ops[i].io.offset_blocks = i * 8;
    ops[i].io.num_blocks = 8;
    ops[i].iov = {{wbuf(i), blk}};
  }
  for (IoStatus s : run(ops)) ASSERT_EQ(s, IoStatus::kSuccess);
  for (size_t i = 0; i < n; ++i) {
    ops[i].io.type = IoType::kRead;
    ops[i].iov = {{rbuf(i), blk}};
  }
  for (IoStatus s : run(ops)) ASSERT_EQ(s, IoStatus::kSuccess);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(std::memcmp(wbuf(i), rbuf(i), blk), 0) << "I/O " << i;
  EXPECT_EQ(ch_->stats().num_write_ops.load(), n);
  EXPECT_EQ(ch_->stats().num_read_ops.load(), n);
}

// Closing the channel waits for I/Os in flight; those not yet in the ring
// are aborted. Every I/O completes exactly once before the close returns.
TEST_P(UringIoTest, CloseDrainsInFlightIos) {
  make(4 << 20);
  const size_t n = 300, blk = 4096;
  Buf w = alloc(n * blk);
  fill(w.get(), n * blk, 10);
  std::vector<Op> ops(n);
  Batch batch;
  batch.outstanding = static_cast<int>(n);
  batch.status.assign(n, IoStatus::kMediaRead);  // a value the channel never reports here
  int left_after_close = -1;
  on_reactor([&] {
    for (size_t i = 0; i < n; ++i) {
      Op& op = ops[i];
      op.iov = {{w.get() + i * blk, blk}};
      op.batch = &batch;
      op.index = i;
      op.io.type = IoType::kWrite;
      op.io.offset_blocks = i * 8;
      op.io.num_blocks = 8;
      op.io.iovs = op.iov.data();
      op.io.iovcnt = 1;
      op.io.cb = on_done;
      op.io.ctx = &op;
      ch_->submit(&op.io);
    }
    ch_.reset();
    left_after_close = batch.outstanding;
  });
  EXPECT_EQ(left_after_close, 0);
  size_t ok = 0;
  for (IoStatus s : batch.status) {
    EXPECT_TRUE(s == IoStatus::kSuccess || s == IoStatus::kAborted) << io_status_name(s);
    ok += s == IoStatus::kSuccess;
  }
  EXPECT_GE(ok, 128u);  // at least a full ring was in flight and finished
  // The closed channel's counters stay in the bdev's iostat.
  EXPECT_EQ(bdev_->iostat_json()["num_write_ops"], ok);
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string d = info.param.dir;
  std::string out;
  for (char c : d)
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
  return out + (info.param.buffered ? "_buffered" : "_direct");
}

INSTANTIATE_TEST_SUITE_P(UringFs, UringIoTest,
                         ::testing::Values(Param{"/tmp", false}, Param{"/var/tmp", false},
                                           Param{"/dev/shm", false}, Param{"/tmp", true},
                                           Param{"/dev/shm", true}),
                         param_name);

// A loop device over a file, with the given logical block size; detached
// at the end (and by the kernel when the last fd closes).
class LoopDevice {
 public:
  LoopDevice(const std::string& backing, uint32_t logical_block_size) {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) return;
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    close(ctl);
    if (n < 0) return;
    std::string path = "/dev/loop" + std::to_string(n);
    fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
    int bfd = open(backing.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0 || bfd < 0) {
      if (bfd >= 0) close(bfd);
      return;
    }
    struct loop_config cfg {};
    cfg.fd = static_cast<uint32_t>(bfd);
    cfg.block_size = logical_block_size;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(fd_, LOOP_CONFIGURE, &cfg) == 0) path_ = path;
    close(bfd);
  }
  ~LoopDevice() {
    if (!path_.empty()) ioctl(fd_, LOOP_CLR_FD);
    if (fd_ >= 0) close(fd_);
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A block device with 4 KiB logical blocks: the size and block size come
// from BLKGETSIZE64/BLKSSZGET, and 512-byte iovecs are bounced.
TEST(UringBlockDevice, LoopDeviceWith4KSectors) {
  TempFile backing("/tmp", 8 << 20);
  LoopDevice loop(backing.path(), 4096);
  if (loop.path().empty()) GTEST_SKIP() << "cannot set up a loop device here (needs root)";
  std::string err;
  EXPECT_FALSE(create_uring_bdev("u", loop.path(), 512, &err));
  EXPECT_NE(err.find("smaller than the 4096-byte logical block size of " + loop.path()),
            std::string::npos)
      << err;
  auto bdev = create_uring_bdev("u", loop.path(), 0, &err);
  ASSERT_TRUE(bdev) << err;
  EXPECT_EQ(bdev->block_size(), 4096u);
  EXPECT_EQ(bdev->num_blocks(), 2048u);

  Reactor reactor(0, 0);
  reactor.start_thread();
  std::unique_ptr<Channel> ch;
  auto on_reactor = [&](auto fn) {
    std::promise<void> p;
    reactor.send([&] {
      fn();
      p.set_value();
    });
    ASSERT_EQ(p.get_future().wait_for(10s), std::future_status::ready);
  };
  auto io1 = [&](IoType type, uint64_t lba, uint64_t n, std::vector<iovec> iov) {
    Batch batch;
    batch.outstanding = 1;
    batch.status.assign(1, IoStatus::kAborted);
    Op op;
    op.iov = std::move(iov);
    op.batch = &batch;
    op.io = {type, lba, n, op.iov.data(), static_cast<int>(op.iov.size()), on_done, &op};
    auto fut = batch.done.get_future();
    on_reactor([&] { ch->submit(&op.io); });
    EXPECT_EQ(fut.wait_for(10s), std::future_status::ready);
    return batch.status[0];
  };
  on_reactor([&] { ch = bdev->open_channel(); });
  ASSERT_TRUE(ch);
  const size_t len = 4 * 4096;
  Buf w = alloc(len), r = alloc(len);
  fill(w.get(), len, 13);
  std::vector<iovec> small;  // 512-byte iovecs: not a multiple of the sector
  for (size_t i = 0; i < len / 512; ++i) small.push_back({w.get() + i * 512, 512});
  EXPECT_EQ(io1(IoType::kWrite, 10, 4, small), IoStatus::kSuccess);
  EXPECT_EQ(io1(IoType::kRead, 10, 4, {{r.get(), len}}), IoStatus::kSuccess);
  EXPECT_EQ(std::memcmp(w.get(), r.get(), len), 0);
  EXPECT_EQ(io1(IoType::kFlush, 0, 0, {}), IoStatus::kSuccess);
  EXPECT_EQ(io1(IoType::kUnmap, 11, 1, {}), IoStatus::kSuccess);
  EXPECT_EQ(io1(IoType::kWriteZeroes, 13, 1, {}), IoStatus::kSuccess);
  EXPECT_EQ(io1(IoType::kRead, 10, 4, {{r.get(), len}}), IoStatus::kSuccess);
  std::vector<uint8_t> expect(w.get(), w.get() + len);
  std::memset(expect.data() + 4096, 0, 4096);
  std::memset(expect.data() + 3 * 4096, 0, 4096);
  EXPECT_EQ(std::vector<uint8_t>(r.get(), r.get() + len), expect);
  on_reactor([&] { ch.reset(); });
  reactor.request_stop();
  reactor.join();
}

// Creation errors name the file, the cause and the fix.
TEST(UringCreate, MissingFile) {
  std::string err;
  auto b = create_uring_bdev("u", "/tmp/nvemu-no-such-file-xyz", 0, &err);
  EXPECT_FALSE(b);
  EXPECT_NE(err.find("/tmp/nvemu-no-such-file-xyz"), std::string::npos) << err;
  EXPECT_NE(err.find("No such file"), std::string::npos) << err;
  EXPECT_NE(err.find("truncate -s"), std::string::npos) << err;
}

TEST(UringCreate, DirectoryAndCharDeviceRejected) {
  std::string err;
  EXPECT_FALSE(create_uring_bdev("u", "/tmp", 0, &err));
  EXPECT_NE(err.find("/tmp"), std::string::npos) << err;
  err.clear();
  EXPECT_FALSE(create_uring_bdev("u", "/dev/null", 0, &err));
  EXPECT_NE(err.find("neither a regular file nor a block device"), std::string::npos) << err;
}

TEST(UringCreate, EmptyFileRejected) {
  TempFile f("/tmp", 0);
  std::string err;
  EXPECT_FALSE(create_uring_bdev("u", f.path(), 0, &err));
  EXPECT_NE(err.find(f.path()), std::string::npos) << err;
  EXPECT_NE(err.find("less than one 512-byte block"), std::string::npos) << err;
  TempFile g("/tmp", 3000);
  EXPECT_FALSE(create_uring_bdev("u", g.path(), 4096, &err));
  EXPECT_TRUE(create_uring_bdev("u", g.path(), 512, &err)) << err;
}

TEST(UringCreate, BadBlockSizeRejected) {
  TempFile f("/tmp", 1 << 20);
  std::string err;
  for (uint32_t bs : {256u, 1000u, 513u, 3u}) {
    err.clear();
    EXPECT_FALSE(create_uring_bdev("u", f.path(), bs, &err)) << bs;
    EXPECT_NE(err.find("power of two"), std::string::npos) << err;
    EXPECT_NE(err.find(f.path()), std::string::npos) << err;
  }
  EXPECT_FALSE(create_uring_bdev("", f.path(), 0, &err));
  EXPECT_FALSE(create_uring_bdev("u", "", 0, &err));
}

TEST(UringCreate, OpenChannelOffReactorFails) {
  TempFile f("/tmp", 1 << 20);
  std::string err;
  auto b = create_uring_bdev("u", f.path(), 0, &err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(b->open_channel(), nullptr);
}

}  // namespace
}  // namespace nvemu::bdev
