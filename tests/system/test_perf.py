#!/usr/bin/env python3
"""System test of nvemu-perf against the real nvemu-tgt.

One target with two malloc namespaces, reachable over NVMe/TCP (a free port)
and as a vfio-user PCIe function (a temp dir). For each transport nvemu-perf
runs randread and randwrite at QD 8 for ~2 s with --json; the I/O count it
reports for each namespace must equal exactly the read+write op delta of that
namespace's bdev in bdev_get_iostat (nvemu-perf reaps every outstanding I/O
before it reports; admin commands never reach a bdev). Also: IOPS > 0,
min <= avg <= max latency, ordered percentiles, -n selects one namespace,
and bad command lines exit 2 with a reason.

Environment: NVEMU_BIN_DIR = the built apps directory.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PERF = os.path.join(harness.BIN_DIR, "nvemu-perf")
NQN = "nqn.2016-06.io.spdk:cnode1"
BDEVS = {1: "Malloc0", 2: "Malloc1"}
SECONDS = os.environ.get("NVEMU_PERF_TEST_SECONDS", "2")


class PerfTest(unittest.TestCase):
    SOCK_IMPL = None  # sock_set_default_impl before start-up, if set

    @classmethod
    def setUpClass(cls):
        cls.tgt = harness.Target()
        cls.vfu_dir = os.path.join(cls.tgt.dir, "vfu", "cnode1")
        os.makedirs(cls.vfu_dir)
        cls.port = harness.free_port()
        t = cls.tgt
        if cls.SOCK_IMPL:
            t.result("sock_set_default_impl", {"impl_name": cls.SOCK_IMPL})
            # To see which impl each connection used.
            t.result("log_set_print_level", {"level": "INFO"})
            t.result("log_set_flag", {"flag": "tcp"})
        t.result("framework_start_init")
        for name in BDEVS.values():
            t.result("bdev_malloc_create", {"name": name, "num_blocks": 32768, "block_size": 512})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                           "serial_number": "SPDK00000000000001"})
        for nsid, name in BDEVS.items():
            t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": name,
                                                                        "nsid": nsid}})
        t.result("nvmf_create_transport", {"trtype": "TCP"})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(cls.port)}})
        t.result("nvmf_create_transport", {"trtype": "VFIOUSER"})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": cls.vfu_dir, "trsvcid": "0"}})
        cls.trids = {
            "TCP": f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{cls.port} subnqn:{NQN}",
            "VFIOUSER": f"trtype:VFIOUSER traddr:{cls.vfu_dir} subnqn:{NQN}",
        }

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()

    def ops(self):
        stats = self.tgt.result("bdev_get_iostat")["bdevs"]
        by_name = {b["name"]: b for b in stats}
        return {nsid: by_name[name]["num_read_ops"] + by_name[name]["num_write_ops"]
                for nsid, name in BDEVS.items()}

    def perf(self, trid, workload, extra=()):
        with tempfile.NamedTemporaryFile(suffix=".json", dir=self.tgt.dir) as f:
            cmd = [PERF, "-q", "8", "-o", "4096", "-w", workload, "-t", SECONDS, "-L",
                   "-r", trid, "--json", f.name, *extra]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, f"{cmd}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
                             f"\ntarget:\n{self.tgt.output()[-4000:]}")
            with open(f.name) as jf:
                return json.load(jf), p.stdout

    def check_run(self, trtype, workload):
        before = self.ops()
        doc, out = self.perf(self.trids[trtype], workload)
        after = self.ops()
        self.assertIn("Device Information", out)
        self.assertIn("Total", out)
        self.assertIn("99.99000%", out)
        self.assertEqual(sorted(n["nsid"] for n in doc["namespaces"]), sorted(BDEVS))
        for ns in doc["namespaces"]:
            nsid = ns["nsid"]
            with self.subTest(trtype=trtype, workload=workload, nsid=nsid):
                self.assertEqual(ns["trtype"], trtype)
                self.assertEqual(ns["errors"], 0)
                self.assertEqual(ns["io_completed"], after[nsid] - before[nsid],
                                 f"nvemu-perf counted {ns['io_completed']} I/Os on NSID {nsid}, "
                                 f"bdev {BDEVS[nsid]} executed {after[nsid] - before[nsid]}")
                if workload == "randread":
                    self.assertEqual(ns["writes"], 0)
                else:
                    self.assertEqual(ns["reads"], 0)
                self.assertGreater(ns["iops"], 0)
                lat = ns["latency_us"]
                self.assertLessEqual(lat["min"], lat["avg"])
                self.assertLessEqual(lat["avg"], lat["max"])
                self.assertLessEqual(lat["min"], lat["p50"])
                self.assertLessEqual(lat["p50"], lat["p90"])
                self.assertLessEqual(lat["p90"], lat["p99"])
                self.assertLessEqual(lat["p99"], lat["p99.9"])
                self.assertLessEqual(lat["p99.9"], lat["p99.99"])
                self.assertLessEqual(lat["p99.99"], lat["max"])
        self.assertEqual(doc["total"]["io_completed"],
                         sum(n["io_completed"] for n in doc["namespaces"]))
        self.assertGreater(doc["elapsed_s"], float(SECONDS) * 0.9)

    def test_tcp_randread(self):
        self.check_run("TCP", "randread")

    def test_tcp_randwrite(self):
        self.check_run("TCP", "randwrite")

    def test_vfio_user_randread(self):
        self.check_run("VFIOUSER", "randread")

    def test_vfio_user_randwrite(self):
        self.check_run("VFIOUSER", "randwrite")

    def test_single_namespace_mixed(self):
        for trtype in ("TCP", "VFIOUSER"):
            before = self.ops()
            doc, _ = self.perf(self.trids[trtype], "randrw", ["-M", "70", "-n", "2"])
            after = self.ops()
            self.assertEqual([n["nsid"] for n in doc["namespaces"]], [2])
            ns = doc["namespaces"][0]
            self.assertGreater(ns["reads"], 0)
            self.assertGreater(ns["writes"], 0)
            self.assertEqual(ns["io_completed"], after[2] - before[2])
            self.assertEqual(after[1], before[1])

    def test_bad_command_lines(self):
        for args, why in ((["-q", "8", "-o", "4096", "-w", "randread", "-t", "1"], "-r"),
                          (["-q", "8", "-o", "4096", "-w", "sideways", "-t", "1",
                            "-r", self.trids["TCP"]], "pattern"),
                          (["-q", "8", "-o", "4096", "-w", "randread", "-t", "1",
                            "-r", "trtype:RDMA traddr:1.2.3.4"], "RDMA")):
            p = subprocess.run([PERF, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(why, p.stderr)

    def test_unreachable_target_fails(self):
        port = harness.free_port()
        p = subprocess.run([PERF, "-q", "1", "-o", "4096", "-w", "read", "-t", "1", "-r",
                            f"trtype:TCP traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("connect", p.stderr)


class PerfTestUringSockets(PerfTest):
    """The TCP cases again, with the target's sockets on io_uring."""
    SOCK_IMPL = "uring"

    def check_run(self, trtype, workload):
        super().check_run(trtype, workload)
        log = self.tgt.output()
        if "sockets use epoll" in log:
            self.skipTest("this kernel has no io_uring for sockets: " + log[-2000:])
        self.assertIn("(io_uring)", log, "the connections did not use io_uring")

    test_vfio_user_randread = test_vfio_user_randwrite = None
    test_bad_command_lines = test_unreachable_target_fails = None
    test_single_namespace_mixed = None


if __name__ == "__main__":
    harness.run_unittest_main()
