#!/usr/bin/env python3
"""System test of bdev_rbd against a real single-node Ceph cluster.

The cluster (ceph_cluster.py: one mon, one mgr, one memstore OSD on
127.0.0.1) starts once for the module. One nvemu-tgt registers it, creates
rbd bdevs on images and exports them over NVMe/TCP; nvemu's own host
(nvemu-host) writes known patterns through the target, and the bytes are
then checked *in the image* with `rbd export`. Also: flush, write zeroes and
deallocate (read back as zeroes in the image), resize (the namespace grows),
delete, unregister refused while used, save_config -> restart with -c -> the
same bytes, nvemu-rpc's rpc.py flags, and every bad input with SPDK's code
and a message naming the cause; the daemon answers after each and nothing
half-created remains.

Environment: NVEMU_BIN_DIR = the built apps directory. Needs root and the
ceph-mon ceph-mgr ceph-osd ceph-common packages.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ceph_cluster  # noqa: E402

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
NQN = "nqn.2016-06.io.spdk:cnode1"
BS = 4096
OBJ = 4 << 20  # rbd's default object size: a whole-object discard reads back zeroes

CEPH = None


def setUpModule():
    global CEPH
    why = ceph_cluster.available()
    if why:
        raise unittest.SkipTest(why)
    CEPH = ceph_cluster.CephCluster()
    CEPH.start()


def tearDownModule():
    if CEPH:
        CEPH.stop()


def pattern(seed, byte_addr, length):
    """nvemu-host's write-verify pattern (splitmix64 of seed and word index)."""
    m = (1 << 64) - 1
    out = bytearray()
    for w in range(byte_addr // 8, (byte_addr + length) // 8):
        z = (seed + (w + 1) * 0x9e3779b97f4a7c15) & m
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & m
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & m
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out)


class RbdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tgt = harness.Target(args=("-m", "0x1"))
        cls.port = harness.free_port()
        cls.img_no = 0
        cls.tgt.result("bdev_rbd_register_cluster", {
            "name": "c1", "config_file": CEPH.conf, "key_file": CEPH.keyring})
        cls.tgt.result("nvmf_create_transport", {"trtype": "TCP"})
        # A bdev exported and used that stays until the daemon exits (its
        # channel and image close on the way out, checked in tearDownClass).
        CEPH.create_image("keep", 4)
        cls.tgt.result("bdev_rbd_create", {"name": "rkeep", "pool_name": "rbd",
                                           "rbd_name": "keep", "block_size": BS,
                                           "cluster_name": "c1"})
        trid = cls.export(cls, "rkeep", nqn=NQN + "keep")
        subprocess.run([HOST, "-r", trid, "write-verify", "--lba", "0", "--blocks", "8"],
                       check=True, capture_output=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        # A clean exit with bdevs and a cluster still registered; under
        # ASan/UBSan (CI) no report on the way out.
        cls.tgt.interrupt(30)
        out = cls.tgt.output()
        code = cls.tgt.proc.returncode
        cls.tgt.stop()
        if code != 0 or "Sanitizer" in out or "runtime error" in out:
            raise AssertionError(f"nvemu-tgt exited with {code}:\n{out[-6000:]}")

    # ---- helpers ----

    def image(self, size_mib=16):
        RbdTest.img_no += 1
        name = f"img{RbdTest.img_no}"
        CEPH.create_image(name, size_mib)
        return name

    def create(self, rbd_name, name=None, cluster="c1", **extra):
        params = {"pool_name": "rbd", "rbd_name": rbd_name, "block_size": BS, **extra}
        if name:
            params["name"] = name
        if cluster:
            params["cluster_name"] = cluster
        return self.tgt.result("bdev_rbd_create", params)

    def export(self, bdev, nqn=NQN, tgt=None, port=None):
        t = tgt or self.tgt
        port = port or self.port
        t.result("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True,
                                           "serial_number": "SPDK00000000000001"})
        t.result("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": bdev}})
        t.result("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})
        return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}"

    def host(self, trid, *args, check=True):
        p = subprocess.run([HOST, "-r", trid, *map(str, args)], capture_output=True, text=True,
                           timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, f"nvemu-host {args}: {p.stderr}\n"
                             f"target:\n{self.tgt.output()[-3000:]}")
        return p

    def state(self):
        bdevs = sorted(b["name"] for b in self.tgt.result("bdev_get_bdevs"))
        self.assertIn("rkeep", bdevs)
        r = self.tgt.call("bdev_rbd_get_clusters_info")
        clusters = sorted(c["cluster_name"] for c in r.get("result", []))
        return bdevs, clusters

    def expect_error(self, method, params, code, *phrases):
        before = self.state()
        r = self.tgt.call(method, params, timeout=30)
        self.assertIn("error", r, f"{method} {params} succeeded: {r}")
        self.assertEqual(r["error"]["code"], code, r["error"])
        for ph in phrases:
            self.assertIn(ph, r["error"]["message"])
        self.assertTrue(self.tgt.alive())
        self.assertIn("version", self.tgt.result("spdk_get_version"))
        self.assertEqual(self.state(), before, f"{method} left something behind")
        return r["error"]["message"]

    # ---- cases ----

    def test_create_and_fields(self):
        img = self.image(16)
        uuid = "11111111-2222-3333-4444-555555555555"
        self.assertEqual(self.create(img, name="rf", uuid=uuid), "rf")
        b = self.tgt.result("bdev_get_bdevs", {"name": "rf"})[0]
        self.assertEqual(b["product_name"], "Ceph Rbd Disk")
        self.assertEqual(b["block_size"], BS)
        self.assertEqual(b["num_blocks"], (16 << 20) // BS)
        self.assertEqual(b["uuid"], uuid)
        self.assertEqual(b["driver_specific"], {"rbd": {
            "pool_name": "rbd", "rbd_name": img, "config_file": CEPH.conf,
            "key_file": CEPH.keyring}})
        for t in ("read", "write", "flush", "unmap", "write_zeroes"):
            self.assertTrue(b["supported_io_types"][t], t)
        info = self.tgt.result("bdev_rbd_get_clusters_info", {"name": "c1"})
        self.assertEqual(info, {"cluster_name": "c1", "config_file": CEPH.conf,
                                "key_file": CEPH.keyring})
        self.assertIn(info, self.tgt.result("bdev_rbd_get_clusters_info"))
        # SPDK's default name: Ceph<N>.
        unnamed = self.create(self.image(4))
        self.assertRegex(unnamed, r"^Ceph\d+$")
        self.tgt.result("bdev_rbd_delete", {"name": unnamed})
        self.tgt.result("bdev_rbd_delete", {"name": "rf"})

    def test_private_connection(self):
        img = self.image(4)
        mon = CEPH.run("ceph", "mon", "dump", "--format", "json")
        addrs = json.loads(mon)["mons"][0]["public_addrs"]["addrvec"]
        mon_host = ",".join(f"{a['type']}:{a['addr']}" for a in addrs)
        config = {"mon_host": f"[{mon_host}]", "keyring": CEPH.keyring}
        name = self.create(img, name="rp", cluster=None, user_id="admin", config=config)
        b = self.tgt.result("bdev_get_bdevs", {"name": name})[0]
        self.assertEqual(b["driver_specific"]["rbd"], {
            "pool_name": "rbd", "rbd_name": img, "user_id": "admin", "config": config})
        self.tgt.result("bdev_rbd_delete", {"name": name})

    def test_io_bytes_in_image(self):
        img = self.image(16)
        self.create(img, name="rio")
        trid = self.export("rio", nqn=NQN + "io")
        # A pattern over two objects' boundary, then its bytes in the image.
        lba, blocks = OBJ // BS - 8, 24
        out = json.loads(self.host(trid, "write-verify", "--lba", lba, "--blocks", blocks,
                                   "--seed", 7).stdout)
        self.assertTrue(out["ok"])
        data = CEPH.read_image(img)
        self.assertEqual(len(data), 16 << 20)
        want = pattern(7, lba * BS, blocks * BS)
        self.assertEqual(data[lba * BS:(lba + blocks) * BS], want)
        self.assertEqual(data[:BS], bytes(BS), "blocks never written read as zeroes")
        self.host(trid, "flush")
        # Write Zeroes of part of the pattern: zeroes in the image, the rest intact.
        self.host(trid, "write-zeroes", "--lba", lba + 4, "--blocks", 8)
        data = CEPH.read_image(img)
        self.assertEqual(data[(lba + 4) * BS:(lba + 12) * BS], bytes(8 * BS))
        self.assertEqual(data[lba * BS:(lba + 4) * BS], want[:4 * BS])
        self.assertEqual(data[(lba + 12) * BS:(lba + blocks) * BS], want[12 * BS:])
        # Deallocate a whole object (librbd skips partial-object discards).
        obj_lba = 2 * OBJ // BS
        self.host(trid, "write-verify", "--lba", obj_lba, "--blocks", OBJ // BS, "--seed", 3)
        self.assertEqual(CEPH.read_image(img)[2 * OBJ:2 * OBJ + 64], pattern(3, 2 * OBJ, 64))
        self.host(trid, "deallocate", "--lba", obj_lba, "--blocks", OBJ // BS)
        self.assertEqual(CEPH.read_image(img)[2 * OBJ:3 * OBJ], bytes(OBJ))
        read = os.path.join(self.tgt.dir, "read.bin")
        self.host(trid, "read", "--lba", obj_lba, "--blocks", 16, "--out", read)
        with open(read, "rb") as f:
            self.assertEqual(f.read(), bytes(16 * BS))
        # A write from outside (librbd directly) is read back through nvemu.
        CEPH.write_image(img, b"from-librbd" * 100, 5 * BS)
        self.host(trid, "read", "--lba", 5, "--blocks", 1, "--out", read)
        with open(read, "rb") as f:
            self.assertEqual(f.read()[:1100], b"from-librbd" * 100)
        st = self.tgt.result("bdev_get_iostat", {"name": "rio"})["bdevs"][0]
        self.assertGreaterEqual(st["num_flush_ops"], 1)
        self.assertGreaterEqual(st["num_write_zeroes_ops"], 1)
        self.assertGreaterEqual(st["num_unmap_ops"], 1)
        self.assertEqual(st.get("num_errors", 0), 0)
        self.tgt.result("nvmf_delete_subsystem", {"nqn": NQN + "io"})
        self.tgt.result("bdev_rbd_delete", {"name": "rio"})

    def test_resize(self):
        img = self.image(8)
        self.create(img, name="rr")
        trid = self.export("rr", nqn=NQN + "rs")
        nsze = json.loads(self.host(trid, "identify").stdout)["namespaces"][0]["nsze"]
        self.assertEqual(nsze, (8 << 20) // BS)
        self.assertIs(self.tgt.result("bdev_rbd_resize", {"name": "rr", "new_size": 24}), True)
        self.assertEqual(self.tgt.result("bdev_get_bdevs", {"name": "rr"})[0]["num_blocks"],
                         (24 << 20) // BS)
        self.assertEqual(CEPH.image_size(img), 24 << 20)
        # The namespace grew: a new Identify says so and the new blocks work.
        nsze = json.loads(self.host(trid, "identify").stdout)["namespaces"][0]["nsze"]
        self.assertEqual(nsze, (24 << 20) // BS)
        last = (24 << 20) // BS - 4
        self.assertTrue(json.loads(self.host(trid, "write-verify", "--lba", last, "--blocks", 4,
                                             "--seed", 5).stdout)["ok"])
        self.assertEqual(CEPH.read_image(img)[last * BS:], pattern(5, last * BS, 4 * BS))
        self.expect_error("bdev_rbd_resize", {"name": "rr", "new_size": 8}, -22,
                          "24 MiB", "must not be smaller")
        self.expect_error("bdev_rbd_resize", {"name": "nope", "new_size": 8}, -19, "nope")
        self.tgt.result("bdev_malloc_create", {"name": "m0", "num_blocks": 64, "block_size": 512})
        self.expect_error("bdev_rbd_resize", {"name": "m0", "new_size": 8}, -22, "not rbd")
        self.tgt.result("bdev_malloc_delete", {"name": "m0"})
        self.tgt.result("nvmf_delete_subsystem", {"nqn": NQN + "rs"})
        self.tgt.result("bdev_rbd_delete", {"name": "rr"})

    def test_unregister_refused_while_used(self):
        self.tgt.result("bdev_rbd_register_cluster", {
            "name": "c2", "config_file": CEPH.conf, "key_file": CEPH.keyring,
            "config_param": {"rbd_cache": "false"}})
        self.assertEqual(self.tgt.result("bdev_rbd_get_clusters_info", {"name": "c2"}),
                         {"cluster_name": "c2", "config_file": CEPH.conf,
                          "key_file": CEPH.keyring, "config_param": {"rbd_cache": "false"}})
        img = self.image(4)
        self.create(img, name="ru1", cluster="c2")
        self.create(img, name="ru2", cluster="c2")
        self.expect_error("bdev_rbd_unregister_cluster", {"name": "c2"}, -1,
                          "ru1, ru2", "bdev_rbd_delete")
        self.tgt.result("bdev_rbd_delete", {"name": "ru1"})
        self.expect_error("bdev_rbd_unregister_cluster", {"name": "c2"}, -1, "ru2")
        self.tgt.result("bdev_rbd_delete", {"name": "ru2"})
        self.assertIs(self.tgt.result("bdev_rbd_unregister_cluster", {"name": "c2"}), True)
        self.expect_error("bdev_rbd_get_clusters_info", {"name": "c2"}, -2, "c2")
        self.expect_error("bdev_rbd_delete", {"name": "ru1"}, -19, "ru1")

    def test_bad_inputs(self):
        img = self.image(4)
        self.create(img, name="rdup")
        missing = os.path.join(self.tgt.dir, "missing.conf")
        cases = [
            ("bdev_rbd_create", {"pool_name": "nopool", "rbd_name": img, "block_size": BS,
                                 "cluster_name": "c1"}, -1, ["pool 'nopool' does not exist",
                                                             "ceph osd pool create"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "rbd_name": "noimg", "block_size": BS,
                                 "cluster_name": "c1"}, -1, ["image 'noimg' does not exist",
                                                             "rbd create"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "rbd_name": img, "block_size": BS,
                                 "cluster_name": "nocluster"}, -1,
             ["no cluster named 'nocluster'", "bdev_rbd_register_cluster"]),
            ("bdev_rbd_create", {"name": "rdup", "pool_name": "rbd", "rbd_name": img,
                                 "block_size": BS, "cluster_name": "c1"}, -17, ["'rdup'"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "rbd_name": img, "block_size": 1000,
                                 "cluster_name": "c1"}, -22, ["block_size 1000"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "rbd_name": img, "block_size": BS,
                                 "cluster_name": "c1", "uuid": "nope"}, -22,
             ["Failed to parse bdev UUID"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "rbd_name": img, "block_size": BS,
                                 "config": {"no_such_option": "1"}}, -1,
             ["no_such_option", "not a Ceph option"]),
            ("bdev_rbd_create", {"pool_name": "rbd", "block_size": BS}, -32602, ["rbd_name"]),
            ("bdev_rbd_register_cluster", {"name": "c1", "config_file": CEPH.conf}, -1,
             ["'c1' is already registered"]),
            ("bdev_rbd_register_cluster", {"name": "cx", "config_file": missing}, -1,
             ["config_file", missing, "cannot be read"]),
            ("bdev_rbd_register_cluster", {"name": "cx", "config_file": CEPH.conf,
                                           "key_file": missing}, -1,
             ["key_file", missing, "cannot be read"]),
            ("bdev_rbd_register_cluster", {"name": "cx", "config_file": CEPH.conf,
                                           "config_param": {"rados_mon_op_timeout": 3}},
             -32602, ["config_param.rados_mon_op_timeout must be a string"]),
            ("bdev_rbd_register_cluster", {"name": "cx", "user_id": "nobody",
                                           "config_file": CEPH.conf,
                                           "key_file": CEPH.keyring}, -1,
             ["client.nobody"]),
            ("bdev_rbd_unregister_cluster", {"name": "nocluster"}, -1, ["nocluster"]),
            ("bdev_rbd_delete", {"name": "nope"}, -19, ["nope"]),
        ]
        for method, params, code, phrases in cases:
            with self.subTest(method=method, params=params):
                self.expect_error(method, params, code, *phrases)
        self.tgt.result("bdev_rbd_delete", {"name": "rdup"})

    def test_unreachable_cluster_fails_in_bounded_time(self):
        port = harness.free_port()  # nothing listens there
        t0 = time.time()
        self.expect_error("bdev_rbd_register_cluster", {
            "name": "dead", "config_param": {
                "mon_host": f"127.0.0.1:{port}", "keyring": CEPH.keyring,
                "client_mount_timeout": "2"}}, -1, "no monitor answered", "mon_host")
        self.assertLess(time.time() - t0, 10)

    def test_main_reactor_answers_during_connect(self):
        """The connect runs off the reactors: other RPCs answer meanwhile."""
        import threading
        port = harness.free_port()
        result = {}

        def slow():
            result["r"] = self.tgt.call("bdev_rbd_register_cluster", {
                "name": "slow", "config_param": {
                    "mon_host": f"127.0.0.1:{port}", "keyring": CEPH.keyring,
                    "client_mount_timeout": "3"}}, timeout=30)
        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.5)
        t0 = time.time()
        self.tgt.result("spdk_get_version")
        self.assertLess(time.time() - t0, 1.0)
        th.join()
        self.assertEqual(result["r"]["error"]["code"], -1)

    def test_exit_while_connecting(self):
        """SIGINT while a connect runs: a clean exit once it ends, no crash."""
        import threading
        port = harness.free_port()
        t = harness.Target(args=("-m", "0x1"))
        def late():
            try:
                t.call("bdev_rbd_register_cluster", {
                    "name": "late", "config_param": {"mon_host": f"127.0.0.1:{port}",
                                                     "client_mount_timeout": "2"}}, timeout=30)
            except (OSError, ValueError):
                pass  # the daemon exits without answering: expected
        th = threading.Thread(target=late)
        th.start()
        time.sleep(0.5)
        t0 = time.time()
        t.interrupt(20)
        self.assertEqual(t.proc.returncode, 0, t.output()[-3000:])
        self.assertNotIn("Sanitizer", t.output())
        self.assertLess(time.time() - t0, 10)
        th.join()
        t.stop()

    def test_nvemu_rpc_flags(self):
        rpc = [harness.RPC, "-s", self.tgt.sock]

        def run(*args):
            p = subprocess.run([*rpc, *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, f"{args}: {p.stdout}{p.stderr}")
            return p.stdout
        # rpc.py's print_json strips the quotes of a string result.
        self.assertEqual(run("bdev_rbd_register_cluster", "cli", "--user", "admin",
                             "--config-param", "rbd_cache=false", "--config-file", CEPH.conf,
                             "--key-file", CEPH.keyring).strip(), "cli")
        info = json.loads(run("bdev_rbd_get_clusters_info", "-b", "cli"))
        self.assertEqual(info["user_id"], "admin")
        self.assertEqual(info["config_param"], {"rbd_cache": "false"})
        img = self.image(4)
        self.assertEqual(run("bdev_rbd_create", "rbd", img, "512", "-b", "rcli", "-c",
                             "cli").strip(), "rcli")
        self.assertEqual(self.tgt.result("bdev_get_bdevs", {"name": "rcli"})[0]["block_size"],
                         512)
        self.assertEqual(run("bdev_rbd_resize", "rcli", "8").strip(), "true")
        run("bdev_rbd_delete", "rcli")
        run("bdev_rbd_unregister_cluster", "cli")
        p = subprocess.run([*rpc, "bdev_rbd_create", "rbd", img, "512", "--config", "novalue"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--config novalue not in key=value form", p.stderr)

    def test_save_config_restart(self):
        img = self.image(8)
        self.create(img, name="rsave", uuid="22222222-3333-4444-5555-666666666666")
        nqn = NQN + "save"
        self.host(self.export("rsave", nqn=nqn), "write-verify", "--lba", 100, "--blocks", 50,
                  "--seed", 11)
        cfg = self.tgt.result("save_config")
        bdev_cfg = next(s["config"] for s in cfg["subsystems"] if s["subsystem"] == "bdev")
        methods = [e["method"] for e in bdev_cfg]
        self.assertLess(methods.index("bdev_rbd_register_cluster"),
                        methods.index("bdev_rbd_create"))
        self.assertIn({"method": "bdev_rbd_register_cluster", "params": {
            "name": "c1", "config_file": CEPH.conf, "key_file": CEPH.keyring}}, bdev_cfg)
        self.assertIn({"method": "bdev_rbd_create", "params": {
            "name": "rsave", "pool_name": "rbd", "rbd_name": img, "block_size": BS,
            "cluster_name": "c1", "uuid": "22222222-3333-4444-5555-666666666666"}}, bdev_cfg)
        # The restarted target listens on a port of its own (this one still
        # holds self.port).
        port2 = harness.free_port()
        text = json.dumps(cfg).replace(f'"trsvcid": "{self.port}"', f'"trsvcid": "{port2}"')
        path = os.path.join(self.tgt.dir, "saved.json")
        with open(path, "w") as f:
            f.write(text)
        self.tgt.result("nvmf_delete_subsystem", {"nqn": nqn})
        self.tgt.result("bdev_rbd_delete", {"name": "rsave"})
        with harness.Target(args=("-m", "0x1", "-c", path)) as t2:
            b = t2.result("bdev_get_bdevs", {"name": "rsave"})[0]
            self.assertEqual(b["uuid"], "22222222-3333-4444-5555-666666666666")
            self.assertEqual(b["num_blocks"], (8 << 20) // BS)
            self.assertIn("c1", [c["cluster_name"]
                                 for c in t2.result("bdev_rbd_get_clusters_info")])
            read = os.path.join(t2.dir, "read.bin")
            trid2 = f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port2} subnqn:{nqn}"
            p = self.host(trid2, "read", "--lba", 100, "--blocks", 50, "--out", read,
                          check=False)
            self.assertEqual(p.returncode, 0, p.stderr + t2.output()[-3000:])
            with open(read, "rb") as f:
                self.assertEqual(f.read(), pattern(11, 100 * BS, 50 * BS))
            t2.interrupt(30)
            self.assertEqual(t2.proc.returncode, 0, t2.output()[-3000:])
            self.assertNotIn("Sanitizer", t2.output())


if __name__ == "__main__":
    harness.run_unittest_main()
