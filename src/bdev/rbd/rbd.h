// A bdev on a Ceph RBD image through librbd (SPDK's bdev_rbd).
//
// One image handle per bdev, opened once and shared by the channels: librbd
// takes asynchronous I/O from any thread. Each reactor's channel owns an
// eventfd on its reactor and an MPSC queue; librbd's completion callback
// (one of librbd's threads) pushes the finished I/O and writes the eventfd,
// so the reactor sleeps while the cluster works and no poller spins. I/O
// maps one to one onto librbd: read/write -> rbd_aio_readv/writev on the
// caller's iovecs (no bounce), flush -> rbd_aio_flush, unmap ->
// rbd_aio_discard, write_zeroes -> rbd_aio_write_zeroes.
//
// librbd status to IoStatus, the one mapping of this backend (map_rbd_status):
//   a read returning fewer bytes than asked (image shrank)  -> kMediaRead
//   -EIO, -ENOENT (image or object gone)  -> kMediaRead / kMediaWrite
//   -ENOSPC, -EDQUOT (cluster full, pool quota)  -> kMediaWrite
//   -EINVAL, -ERANGE (beyond the image: it shrank under us)  -> kOutOfRange
//   -ENOMEM  -> kNoMem;  -ECANCELED, -ESHUTDOWN (blocklisted)  -> kAborted
//   -ETIMEDOUT (rados_osd_op_timeout) and everything else  -> kError
//
// Write cache: librbd's client cache (rbd_cache, on by default) acknowledges
// writes before the OSDs hold them once the image has seen a flush
// (rbd_cache_writethrough_until_flush). So has_write_cache() reports the
// connection's rbd_cache setting, and a host's FLUSH is rbd_aio_flush. SPDK
// reports write_cache 0 for rbd; nvemu says what librbd does.
#pragma once

#include <rbd/librbd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bdev/bdev.h"
#include "bdev/rbd/cluster.h"

namespace nvemu::bdev::rbd {

// An open image: its pool context and connection stay alive with it.
// Closing flushes librbd's cache (blocking).
class Image {
 public:
  Image(std::shared_ptr<Connection> conn, rados_ioctx_t ioctx, rbd_image_t image)
      : conn_(std::move(conn)), ioctx_(ioctx), image_(image) {}
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  rbd_image_t handle() const { return image_; }
  const Connection& connection() const { return *conn_; }

 private:
  std::shared_ptr<Connection> conn_;
  rados_ioctx_t ioctx_;
  rbd_image_t image_;
};

struct OpenResult {
  std::shared_ptr<Image> image;
  uint64_t size_bytes = 0;
  int err = 0;  // negative errno when image is null
  std::string message;
};

// Blocking; a worker thread only (offload.h). `where` names the connection
// in messages.
OpenResult open_image(std::shared_ptr<Connection> conn, const std::string& pool,
                      const std::string& image, const std::string& where);

struct RbdParams {
  std::string name;
  std::string pool_name;
  std::string rbd_name;
  uint32_t block_size = 0;
  std::string uuid;          // empty: generated
  std::string cluster_name;  // empty: `private_conn` describes the connection
  ClusterParams private_conn;
};

class RbdBdev : public Bdev {
 public:
  RbdBdev(const RbdParams& p, std::shared_ptr<Image> image, uint64_t num_blocks);

  const RbdParams& params() const { return p_; }
  const std::string& cluster_name() const { return p_.cluster_name; }
  rbd_image_t image() const { return image_->handle(); }

  bool has_write_cache() const override { return write_cache_; }
  bool supports(IoType type) const override;
  std::unique_ptr<Channel> open_channel() override;
  std::string module_name() const override { return "rbd"; }
  nlohmann::json driver_specific() const override;
  nlohmann::json config_entry() const override;

 private:
  RbdParams p_;
  std::shared_ptr<Image> image_;
  bool write_cache_;
};

IoStatus map_rbd_status(int64_t rc, IoType type, uint64_t expected_len);

}  // namespace nvemu::bdev::rbd
