#!/usr/bin/env python3
"""System test of the error and delay bdevs (SPDK's bdev_error_*, bdev_delay_*).

One nvemu-tgt exports error and delay bdevs over NVMe/TCP; nvemu's own host
(nvemu-host) does the I/O. Checked: an injected write failure fails exactly
`num` writes and the data of the failed ones never lands; corrupt_data flips
the byte asked for; a pending read hangs until `clear` and then fails, and a
pending I/O completes (aborted) when its bdev is deleted under it; the base
is claimed (not exportable, not deletable) while stacked on; the delay bdev's
latency shows in the host's wall time and bdev_get_iostat and follows
bdev_delay_update_latency; every bad input has SPDK's code and a message
naming the cause; save_config -> -c restores both with their UUIDs;
nvemu-rpc takes rpc.py's flags.

Environment: NVEMU_BIN_DIR = the built apps directory.
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

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
NQN = "nqn.2016-06.io.spdk:fault1"


def trid(port, nqn=NQN):
    return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}"


def host(port, *args, timeout=30, nqn=NQN):
    return subprocess.run([HOST, "-r", trid(port, nqn), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def read(port, lba, blocks, nsid=1):
    with tempfile.NamedTemporaryFile() as f:
        r = host(port, "read", "--nsid", nsid, "--lba", lba, "--blocks", blocks, "--out", f.name)
        if r.returncode != 0:
            return None, r
        return open(f.name, "rb").read(), r


class FaultBdevs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = harness.Target(("-m", "0x1"))
        cls.port = harness.free_port()
        t = cls.t
        t.result("bdev_malloc_create", {"name": "M0", "num_blocks": 2048, "block_size": 512})
        t.result("bdev_malloc_create", {"name": "M1", "num_blocks": 2048, "block_size": 512})
        t.result("nvmf_create_transport", {"trtype": "TCP"})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
            "trsvcid": str(cls.port)}})

    @classmethod
    def tearDownClass(cls):
        cls.t.stop()

    def err(self, method, params, code, *words):
        r = self.t.call(method, params)
        self.assertIn("error", r, f"{method} {params} should fail: {r}")
        self.assertEqual(r["error"]["code"], code, r)
        for w in words:
            self.assertIn(w, r["error"]["message"])
        self.assertTrue(self.t.alive())
        return r["error"]["message"]

    def export(self, bdev, nsid):
        self.t.result("nvmf_subsystem_add_ns",
                      {"nqn": NQN, "namespace": {"bdev_name": bdev, "nsid": nsid}})

    def test_1_error_bdev_create_claims_the_base(self):
        t = self.t
        self.assertIs(t.result("bdev_error_create", {"base_name": "M0"}), True)
        ee = t.result("bdev_get_bdevs", {"name": "EE_M0"})[0]
        self.assertEqual(ee["product_name"], "Error Injection Disk")
        self.assertEqual(ee["driver_specific"], {"error_disk": {"base_bdev": "M0"}})
        self.assertEqual(ee["num_blocks"], 2048)
        self.assertTrue(t.result("bdev_get_bdevs", {"name": "M0"})[0]["claimed"])
        self.err("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M0"}},
                 -32602, "EE_M0")
        self.err("bdev_malloc_delete", {"name": "M0"}, -16, "EE_M0", "bdev_error_delete")
        self.err("bdev_error_create", {"base_name": "M0"}, -17, "EE_M0")
        self.err("bdev_error_create", {"base_name": "nope"}, -19, "nope")
        self.err("bdev_error_create", {"base_name": "M1", "uuid": "xyz"}, -32602, "uuid")
        self.assertFalse(t.result("bdev_get_bdevs", {"name": "M1"})[0]["claimed"])
        self.export("EE_M0", 1)

    def test_2_failure_fails_num_writes_then_recovers(self):
        t = self.t
        self.assertEqual(host(self.port, "write-verify", "--lba", 0, "--blocks", 8,
                              "--seed", 1).returncode, 0)
        before_data, _ = read(self.port, 0, 8)
        t.result("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "write", "error_type": "failure", "num": 1})
        before = t.result("bdev_get_iostat", {"name": "EE_M0"})["bdevs"][0]["io_error"]
        r = host(self.port, "write-verify", "--lba", 0, "--blocks", 8, "--seed", 2)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("LBA 0+8", r.stderr)
        after = t.result("bdev_get_iostat", {"name": "EE_M0"})["bdevs"][0]["io_error"]
        self.assertEqual(after - before, 1)
        # The failed write never reached M0: seed 1's data is still there.
        after_data, _ = read(self.port, 0, 8)
        self.assertEqual(after_data, before_data)
        # num was 1: the next write goes through
        again = host(self.port, "write-verify", "--lba", 0, "--blocks", 8, "--seed", 2)
        self.assertEqual(again.returncode, 0, again.stderr)

    def test_3_corrupt_data_flips_the_byte_asked_for(self):
        t = self.t
        t.result("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "read", "error_type": "corrupt_data", "num": 1,
                  "corrupt_offset": 5, "corrupt_value": 0x80})
        r = host(self.port, "write-verify", "--lba", 16, "--blocks", 4, "--seed", 9)
        self.assertEqual(r.returncode, 1, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["mismatch_offset"], 5)
        self.assertEqual(int(out["got"], 16), int(out["expected"], 16) ^ 0x80)
        # one read only: the next pass is clean
        self.assertEqual(host(self.port, "write-verify", "--lba", 16, "--blocks", 4,
                              "--seed", 9).returncode, 0)

    def test_4_pending_hangs_until_clear(self):
        t = self.t
        t.result("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "read", "error_type": "pending", "num": 1})
        with tempfile.NamedTemporaryFile() as f:
            p = subprocess.Popen([HOST, "-r", trid(self.port), "read", "--lba", "0",
                                  "--blocks", "1", "--out", f.name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            self.assertIsNone(p.poll(), "the held read completed before clear")
            t.result("bdev_error_inject_error",
                     {"name": "EE_M0", "io_type": "clear", "error_type": "failure"})
            out, errs = p.communicate(timeout=20)
            self.assertNotEqual(p.returncode, 0, out)
        # cleared: reads work again
        data, r = read(self.port, 0, 1)
        self.assertIsNotNone(data, r.stderr)

    def test_5_bad_inject_inputs(self):
        self.err("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "trim", "error_type": "failure"},
                 -32602, "io_type 'trim'")
        self.err("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "read", "error_type": "boom"},
                 -32602, "error_type 'boom'")
        self.err("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "read", "error_type": "corrupt_data"},
                 -22, "corrupt_value")
        self.err("bdev_error_inject_error",
                 {"name": "M1", "io_type": "read", "error_type": "failure"},
                 -19, "not an error bdev", "bdev_error_create M1")
        self.err("bdev_error_inject_error",
                 {"name": "nope", "io_type": "read", "error_type": "failure"}, -19, "nope")
        self.err("bdev_error_delete", {"name": "M1"}, -19, "not an error bdev")

    def test_6_delay_bdev(self):
        t = self.t
        self.assertEqual(t.result("bdev_delay_create", {
            "base_bdev_name": "M1", "name": "D1", "avg_read_latency": 50000,
            "p99_read_latency": 50000, "avg_write_latency": 0, "p99_write_latency": 0}), "D1")
        d = t.result("bdev_get_bdevs", {"name": "D1"})[0]
        self.assertEqual(d["driver_specific"]["delay"]["avg_read_latency"], 50000)
        self.assertEqual(d["driver_specific"]["delay"]["base_bdev_name"], "M1")
        self.err("bdev_malloc_delete", {"name": "M1"}, -16, "D1", "bdev_delay_delete")
        self.export("D1", 2)
        t0 = time.time()
        r = host(self.port, "write-verify", "--nsid", 2, "--lba", 0, "--blocks", 8, "--seed", 4)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = t.result("bdev_get_iostat", {"name": "D1"})["bdevs"][0]
        self.assertGreaterEqual(st["num_read_ops"], 1)
        self.assertGreaterEqual(st["read_latency_ticks"] / st["num_read_ops"], 50000)
        self.assertLess(st["write_latency_ticks"] / st["num_write_ops"], 20000)
        self.assertGreaterEqual(time.time() - t0, 0.05)
        self.assertIs(t.result("bdev_delay_update_latency", {
            "delay_bdev_name": "D1", "latency_type": "avg_read", "latency_us": 0}), True)
        t.result("bdev_delay_update_latency",
                 {"delay_bdev_name": "D1", "latency_type": "p99_read", "latency_us": 0})
        base = t.result("bdev_get_iostat", {"name": "D1"})["bdevs"][0]
        data, r = read(self.port, 0, 8, nsid=2)
        self.assertIsNotNone(data, r.stderr)
        st = t.result("bdev_get_iostat", {"name": "D1"})["bdevs"][0]
        lat = (st["read_latency_ticks"] - base["read_latency_ticks"]) / \
            (st["num_read_ops"] - base["num_read_ops"])
        self.assertLess(lat, 20000)

    def test_7_bad_delay_inputs(self):
        self.err("bdev_delay_create", {
            "base_bdev_name": "M1", "name": "D9", "avg_read_latency": 10,
            "p99_read_latency": 5, "avg_write_latency": 0, "p99_write_latency": 0},
            -22, "p99 latency below the average")
        self.err("bdev_delay_create", {
            "base_bdev_name": "nope", "name": "D9", "avg_read_latency": 1,
            "p99_read_latency": 1, "avg_write_latency": 1, "p99_write_latency": 1}, -19, "nope")
        self.err("bdev_delay_create", {
            "base_bdev_name": "M1", "name": "D1", "avg_read_latency": 1,
            "p99_read_latency": 1, "avg_write_latency": 1, "p99_write_latency": 1}, -17, "D1")
        self.err("bdev_delay_update_latency", {
            "delay_bdev_name": "D1", "latency_type": "avg", "latency_us": 1}, -32602,
            "valid latency type")
        self.err("bdev_delay_update_latency", {
            "delay_bdev_name": "nope", "latency_type": "avg_read", "latency_us": 1}, -32602,
            "does not exist")
        self.err("bdev_delay_update_latency", {
            "delay_bdev_name": "EE_M0", "latency_type": "avg_read", "latency_us": 1}, -32600,
            "not a delay bdev")
        self.assertEqual(self.t.call("bdev_get_bdevs", {"name": "D9"})["error"]["code"], -19)

    def test_8_save_config_and_restart(self):
        t = self.t
        full = t.result("framework_get_config", {"name": "bdev"})
        methods = [e["method"] for e in full]
        self.assertLess(methods.index("bdev_malloc_create"), methods.index("bdev_error_create"))
        self.assertLess(max(i for i, m in enumerate(methods) if m == "bdev_malloc_create"),
                        methods.index("bdev_delay_create"))
        uuids = {b["name"]: b["uuid"] for b in t.result("bdev_get_bdevs")}
        path = os.path.join(t.dir, "saved.json")
        r = subprocess.run([harness.RPC, "-s", t.sock, "save_config"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = json.loads(r.stdout)
        # only the bdevs: this target still holds the listener's port
        only_bdev = {"subsystems": [s for s in cfg["subsystems"] if s["subsystem"] == "bdev"]}
        with open(path, "w") as f:
            json.dump(only_bdev, f)
        with harness.Target(("-m", "0x1", "-c", path)) as t2:
            got = {b["name"]: b["uuid"] for b in t2.result("bdev_get_bdevs")}
            self.assertEqual(got, uuids)
            d = t2.result("bdev_get_bdevs", {"name": "D1"})[0]["driver_specific"]["delay"]
            self.assertEqual(d["avg_read_latency"], 0)  # the updated value was saved
            self.assertEqual(d["avg_write_latency"], 0)
        self.assertTrue(cfg["subsystems"])

    def test_9_nvemu_rpc_flags(self):
        t = self.t
        t.result("bdev_malloc_create", {"name": "M2", "num_blocks": 64, "block_size": 512})

        def rpc(*args):
            return subprocess.run([harness.RPC, "-s", t.sock, *args], capture_output=True,
                                  text=True, timeout=30)
        r = rpc("bdev_delay_create", "-b", "M2", "-d", "D2", "-r", "10", "-t", "20", "-w", "0",
                "-n", "0", "-u", "12345678-1234-1234-1234-123456789abc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "D2")  # rpc.py print_json strips the quotes
        d = t.result("bdev_get_bdevs", {"name": "D2"})[0]
        self.assertEqual(d["uuid"], "12345678-1234-1234-1234-123456789abc")
        self.assertEqual(d["driver_specific"]["delay"]["p99_read_latency"], 20)
        r = rpc("bdev_delay_update_latency", "D2", "p99_write", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(t.result("bdev_get_bdevs", {"name": "D2"})[0]["driver_specific"]
                         ["delay"]["p99_write_latency"], 7)
        self.assertEqual(rpc("bdev_error_create", "D2", "--uuid",
                             "22345678-1234-1234-1234-123456789abc").returncode, 0)
        r = rpc("bdev_error_inject_error", "EE_D2", "all", "corrupt_data", "-n", "2", "-o", "1",
                "-v", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(rpc("bdev_error_delete", "EE_D2").returncode, 0)
        self.assertEqual(rpc("bdev_delay_delete", "D2").returncode, 0)
        self.assertFalse(t.result("bdev_get_bdevs", {"name": "M2"})[0]["claimed"])

    def test_zz_delete_with_held_io(self):
        """Last: deletes EE_M0 under a held read; the read completes, M0 is free."""
        t = self.t
        t.result("bdev_error_inject_error",
                 {"name": "EE_M0", "io_type": "read", "error_type": "pending", "num": 1})
        with tempfile.NamedTemporaryFile() as f:
            p = subprocess.Popen([HOST, "-r", trid(self.port), "read", "--lba", "0",
                                  "--blocks", "1", "--out", f.name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            self.assertIsNone(p.poll())
            self.assertIs(t.result("bdev_error_delete", {"name": "EE_M0"}), True)
            p.communicate(timeout=20)
            self.assertNotEqual(p.returncode, 0)
        self.assertEqual(t.call("bdev_get_bdevs", {"name": "EE_M0"})["error"]["code"], -19)
        self.assertFalse(t.result("bdev_get_bdevs", {"name": "M0"})[0]["claimed"])
        self.assertTrue(t.alive())


if __name__ == "__main__":
    harness.run_unittest_main()
