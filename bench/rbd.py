"""The RBD case of bench/run.sh (issue #15): a namespace on a Ceph RBD image.

One single-node Ceph cluster per bench run (tests/system/ceph_cluster.py: one
mon, one mgr, one memstore OSD on 127.0.0.1, in a temp dir) with a 256 MiB
image written in full first, so reads reach objects, not holes. Per
repetition: `rbd bench` straight on librbd (4K random reads, 16 threads: the
backend's ceiling here), then a fresh target (-m 0x1) with
bdev_rbd_register_cluster + bdev_rbd_create exporting the image over NVMe/TCP,
read by the initiator (core 1) at QD16. nvemu is paired with SPDK's nvmf_tgt
(same RPCs); the summary shows both against the librbd ceiling. The Ceph
daemons have no core of their own: a target that spins on core 0 takes it
from them. stdlib only.
"""
import os
import re
import sys

RBD_CASES = [  # name, pattern, io size, queue depth
    ("rbd-tcp-qd16", "randread", 4096, 16),
]
IMAGE, IMAGE_MIB = "bench0", 256
# Issue #15: nvemu's RBD namespace at least 0.9x of librbd's own rate.
RBD_GOAL = 0.9


def ceph_cluster_module(root):
    """tests/system/ceph_cluster.py of this tree (PYTHONPATH may name
    another), or None and why not."""
    sys.path.append(os.path.join(root, "tests", "system"))
    try:
        import ceph_cluster
    except ImportError as e:
        return None, f"tests/system/ceph_cluster.py not importable ({e})"
    why = ceph_cluster.available()
    return (None, why) if why else (ceph_cluster, None)


def start_cluster(module):
    """A started cluster with IMAGE written end to end (4 MiB sequential writes)."""
    ceph = module.CephCluster()
    ceph.start()
    try:
        ceph.create_image(IMAGE, IMAGE_MIB)
        ceph.run("rbd", "bench", "--io-type", "write", "--io-size", "4M", "--io-pattern", "seq",
                 "--io-total", f"{IMAGE_MIB}M", "--io-threads", "4", f"{ceph.pool}/{IMAGE}",
                 timeout=300)
    except BaseException:
        ceph.stop()
        raise
    return ceph


def rbd_bench(ceph, case, seconds):
    """librbd's own rate: `rbd bench` with the case's size, pattern and depth
    (threads), sized to take about SECONDS at the issue's ~28 K IOPS. Returns
    its ops/sec (the last 'elapsed: ... ops/sec: N' line)."""
    name, pattern, size, qd = case
    ops = max(2000, int(28000 * seconds))
    out = ceph.run("rbd", "bench", "--io-type", "read", "--io-size", str(size),
                   "--io-threads", str(qd), "--io-pattern", "rand" if "rand" in pattern else "seq",
                   "--io-total", str(ops * size), f"{ceph.pool}/{IMAGE}", timeout=seconds * 20 + 60)
    m = re.findall(r"elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops/sec:\s*([\d.]+)", out)
    if not m:
        raise RuntimeError(f"no summary line in rbd bench output:\n{out[-500:]}")
    return float(m[-1][2])


def configure_rbd(call, ceph, port, nqn):
    """bdev_rbd_register_cluster (config and key file of the test cluster) +
    bdev_rbd_create with 512 B blocks, exported over NVMe/TCP on PORT."""
    call("bdev_rbd_register_cluster", {"name": "ceph0", "config_file": ceph.conf,
                                       "key_file": ceph.keyring})
    name = call("bdev_rbd_create", {"name": "Rbd0", "pool_name": ceph.pool, "rbd_name": IMAGE,
                                    "block_size": 512, "cluster_name": "ceph0"})
    call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True,
                                   "serial_number": "SPDK00000000000001"})
    call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": name}})
    call("nvmf_create_transport", {"trtype": "TCP"})
    call("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


def _cell(spread, fmt):
    if not spread or spread.get("median") != spread.get("median"):
        return "–"
    return format(spread["median"], fmt)


def rbd_md(summary):
    """Each target's RBD namespace against librbd's own rate (median of the
    per-repetition shares), and nvemu/SPDK."""
    names = [c[0] for c in RBD_CASES]
    rows = [r for r in summary["matrix"] if r["case"] in names]
    if not rows:
        return []
    lines = ["", "RBD namespace over NVMe/TCP against `rbd bench` on librbd (same depth and "
             f"size, same repetition; goal: nvemu >= {RBD_GOAL} of librbd):", "",
             "| initiator | case | rbd bench IOPS | nvemu IOPS | of librbd | SPDK IOPS | "
             "of librbd | nvemu/SPDK (min–max) | target CPU % (nvemu / SPDK) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n, s, q = r.get("nvemu", {}), r.get("spdk", {}), r.get("ratio")
        cells = [r["initiator"], r["case"], _cell(r.get("librbd_iops"), ",.0f"),
                 _cell(n.get("iops"), ",.0f"), _cell(n.get("of_librbd"), ".2f"),
                 _cell(s.get("iops"), ",.0f"), _cell(s.get("of_librbd"), ".2f"),
                 f"{q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})" if q else "–",
                 f"{_cell(n.get('cpu_pct'), '.0f')} / {_cell(s.get('cpu_pct'), '.0f')}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
