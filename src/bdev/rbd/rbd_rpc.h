#pragma once

namespace nvemu::bdev::rbd {
// bdev_rbd_register_cluster, bdev_rbd_unregister_cluster,
// bdev_rbd_get_clusters_info, bdev_rbd_create, bdev_rbd_delete,
// bdev_rbd_resize, and the module's save_config entries (the clusters).
void register_rpcs();
// Daemon exit, after the bdevs are gone and before the reactors are: waits
// for connects still running (bounded by the client timeouts) and closes
// the registered clusters' connections.
void shutdown();
}  // namespace nvemu::bdev::rbd
