#!/usr/bin/env python3
"""SPDK's own saved configuration with remote namespaces replays in nvemu-tgt.

data/spdk-v23.01.1-nvmf_tgt-rbd-nvme-save_config.json is what SPDK v23.01.1's
nvmf_tgt wrote after: bdev_rbd_register_cluster + bdev_rbd_create (image
"spdkimg" in pool "rbd"), bdev_nvme_attach_controller to another target
(-l 30 -o 2 -u 10), and subsystem cnode1 with both as namespaces over TCP.
SPDK v23.01 writes no bdev_rbd_register_cluster entry and no cluster_name, so
its bdev_rbd_create replays against librados' default configuration (found
through $CEPH_CONF here, /etc/ceph/ceph.conf on a real host) — as in SPDK.

The test starts a real single-node Ceph cluster and a first nvemu-tgt as the
remote, changes only the remote's port and cnode1's port in the file, starts
nvemu-tgt with -c on it, and checks each entry's effect: both bdevs (the rbd
bdev with the uuid SPDK saved), the controller's recovery settings, cnode1's
namespaces, and bytes written through cnode1 that land in the RBD image and
in the remote target.
"""
import copy
import json
import os
import subprocess
import tempfile
import unittest

import harness
from ceph_cluster import CephCluster

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "data", "spdk-v23.01.1-nvmf_tgt-rbd-nvme-save_config.json")
NQN = "nqn.2016-06.io.spdk:cnode1"
REMOTE_NQN = "nqn.2016-06.io.spdk:remote"
HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
BS = 512


def entries(cfg, method):
    return [e for s in cfg["subsystems"] for e in (s["config"] or []) if e["method"] == method]


def trid(port, nqn):
    return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}"


def host(*args):
    p = subprocess.run([HOST, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"nvemu-host {args}: {p.stderr}"
    return p.stdout


class SpdkBackendsConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(FIXTURE) as f:
            cls.spdk = json.load(f)
        cls.ceph = CephCluster()
        cls.ceph.start()
        cls.remote = cls.tgt = None
        try:
            rbd = entries(cls.spdk, "bdev_rbd_create")[0]["params"]
            cls.ceph.create_image(rbd["rbd_name"], 16)
            # The remote: a malloc namespace, as the target SPDK attached.
            cls.remote = harness.Target(("-m", "0x1"))
            cls.remote_port = harness.free_port()
            cls.remote.result("bdev_malloc_create", {"name": "M0", "num_blocks": 32768,
                                                     "block_size": BS})
            cls.remote.result("nvmf_create_subsystem", {"nqn": REMOTE_NQN,
                                                        "allow_any_host": True})
            cls.remote.result("nvmf_subsystem_add_ns", {"nqn": REMOTE_NQN,
                                                        "namespace": {"bdev_name": "M0"}})
            cls.remote.result("nvmf_create_transport", {"trtype": "TCP"})
            cls.remote.result("nvmf_subsystem_add_listener", {"nqn": REMOTE_NQN, "listen_address": {
                "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
                "trsvcid": str(cls.remote_port)}})

            cls.port = harness.free_port()
            cfg = copy.deepcopy(cls.spdk)
            entries(cfg, "bdev_nvme_attach_controller")[0]["params"]["trsvcid"] = \
                str(cls.remote_port)
            for e in entries(cfg, "nvmf_subsystem_add_listener"):
                e["params"]["listen_address"]["trsvcid"] = str(cls.port)
            cls.dir = tempfile.mkdtemp(prefix="nvemu-spdkcfg-")
            path = os.path.join(cls.dir, "config.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            # What /etc/ceph/ceph.conf holds on a Ceph client: where the
            # monitors are and the admin keyring.
            conf = os.path.join(cls.dir, "ceph.conf")
            with open(cls.ceph.conf) as src, open(conf, "w") as dst:
                text = src.read()
                dst.write(text.replace("[global]", f"[global]\nkeyring = {cls.ceph.keyring}", 1)
                          if "[global]" in text else
                          f"[global]\nkeyring = {cls.ceph.keyring}\n{text}")
            cls.tgt = harness.Target(("-m", "0x1", "-c", path), env={"CEPH_CONF": conf})
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for t in (cls.tgt, cls.remote):
            if t:
                alive = t.alive()
                out = t.output()
                t.stop()
                assert alive, "a target died:\n" + out[-3000:]
        cls.ceph.stop()

    def test_bdevs_as_spdk_saved_them(self):
        rbd = entries(self.spdk, "bdev_rbd_create")[0]["params"]
        b = self.tgt.result("bdev_get_bdevs", {"name": rbd["name"]})[0]
        self.assertEqual(b["uuid"], rbd["uuid"])
        self.assertEqual(b["block_size"], rbd["block_size"])
        self.assertEqual(b["num_blocks"], (16 << 20) // rbd["block_size"])
        self.assertEqual(b["driver_specific"]["rbd"]["rbd_name"], rbd["rbd_name"])
        n = self.tgt.result("bdev_get_bdevs", {"name": "Nvme0n1"})[0]
        self.assertEqual(n["num_blocks"], 32768)
        self.assertEqual(n["product_name"], "NVMe disk")

    def test_controller_recovery_settings(self):
        want = entries(self.spdk, "bdev_nvme_attach_controller")[0]["params"]
        saved = entries(self.tgt.result("save_config"), "bdev_nvme_attach_controller")
        self.assertEqual(len(saved), 1)
        got = saved[0]["params"]
        for k in ("name", "subnqn", "ctrlr_loss_timeout_sec", "reconnect_delay_sec",
                  "fast_io_fail_timeout_sec"):
            self.assertEqual(got[k], want[k], k)
        c = self.tgt.result("bdev_nvme_get_controllers", {"name": "Nvme0"})[0]
        self.assertEqual(c["ctrlrs"][0]["trid"]["trsvcid"], str(self.remote_port))

    def test_namespaces_serve_bytes_to_the_image_and_the_remote(self):
        s = [x for x in self.tgt.result("nvmf_get_subsystems") if x["nqn"] == NQN][0]
        self.assertEqual([ns["bdev_name"] for ns in s["namespaces"]], ["Ceph0", "Nvme0n1"])
        t = trid(self.port, NQN)
        for nsid in (1, 2):
            out = json.loads(host("-r", t, "write-verify", "--nsid", nsid, "--lba", 64,
                                  "--blocks", 16, "--seed", nsid))
            self.assertTrue(out["ok"], out)
        host("-r", t, "flush", "--nsid", 1)
        rbd = entries(self.spdk, "bdev_rbd_create")[0]["params"]
        image = self.ceph.read_image(rbd["rbd_name"])
        via_remote = os.path.join(self.dir, "remote.bin")
        host("-r", trid(self.remote_port, REMOTE_NQN), "read", "--nsid", 1, "--lba", 64,
             "--blocks", 16, "--out", via_remote)
        with open(via_remote, "rb") as f:
            remote = f.read()
        # The same pattern generator wrote both; seeds differ, so each copy
        # is checked against the bytes nvemu-host reads back through cnode1.
        via_b = os.path.join(self.dir, "b.bin")
        for nsid, where in ((1, image[64 * BS:80 * BS]), (2, remote)):
            host("-r", t, "read", "--nsid", nsid, "--lba", 64, "--blocks", 16, "--out", via_b)
            with open(via_b, "rb") as f:
                self.assertEqual(f.read(), where, f"namespace {nsid}")
            self.assertNotEqual(where, bytes(16 * BS), f"namespace {nsid} still zeroes")


if __name__ == "__main__":
    harness.run_unittest_main()
