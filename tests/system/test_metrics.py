#!/usr/bin/env python3
"""nvemu-tgt --metrics: the Prometheus text format over HTTP, parsed with a
real Prometheus parser (Debian's python3-prometheus-client), and its values
checked against bdev_get_iostat after a known number of I/Os from a real
NVMe/TCP host (nvemu-host); the per-queue series against the commands a
host that keeps its connection open (nvme_tcp_client.py) sent, held (a
no_completion fault) and had failed (a status fault)."""
import http.client
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from nvme_tcp_client import connect  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
NQN = "nqn.2016-06.io.spdk:cnode1"


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def one(ss, name, **labels):
    hits = [s for s in ss.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, ss.get(name))
    return hits[0].value


QPAIR_SERIES = ("nvemu_qpair_read_commands_total", "nvemu_qpair_write_commands_total",
                "nvemu_qpair_read_bytes_total", "nvemu_qpair_written_bytes_total",
                "nvemu_qpair_errors_total", "nvemu_qpair_queue_depth", "nvemu_qpair_queue_size")


def qpair(ss, **labels):
    """Every nvemu_qpair_* value of the one queue the labels name."""
    return {name[len("nvemu_qpair_"):]: one(ss, name, **labels) for name in QPAIR_SERIES}


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mport = harness.free_port()
        cls.tport = harness.free_port()
        cls.tgt = harness.Target(args=("-m", "0x1", "--metrics", f"127.0.0.1:{cls.mport}"),
                                 env=harness.no_hugepages_env())
        t = cls.tgt
        t.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 16384, "block_size": 512})
        t.result("nvmf_create_transport", {"trtype": "TCP"})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "Malloc0"}})
        t.result("nvmf_subsystem_add_listener",
                 {"nqn": NQN, "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                                                 "traddr": "127.0.0.1",
                                                 "trsvcid": str(cls.tport)}})

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()

    def get(self, path="/metrics", method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.mport, timeout=10)
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, r.getheader("Content-Type"), body

    def host(self, *args):
        trid = (f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{self.tport} "
                f"subnqn:{NQN}")
        p = subprocess.run([HOST, "-r", trid, *args], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_1_counters_match_iostat_after_known_io(self):
        for lba in range(0, 40, 8):  # 5 reads of 4 KiB
            self.host("read", "--nsid", "1", "--lba", str(lba), "--blocks", "8", "--out",
                      os.devnull)
        for lba in (100, 200):  # each: one 4 KiB write, one read back
            self.host("write-verify", "--nsid", "1", "--lba", str(lba), "--blocks", "8")
        st = self.tgt.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        self.assertEqual(st["num_read_ops"], 7, st)
        self.assertEqual(st["num_write_ops"], 2, st)

        status, ctype, body = self.get()
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        ss = samples(body)
        lab = {"bdev": "Malloc0", "subsystem": NQN, "nsid": "1"}
        # prometheus_client strips the _total suffix from counter family names
        # but keeps it on samples.
        self.assertEqual(one(ss, "nvemu_bdev_read_ops_total", **lab), 7)
        self.assertEqual(one(ss, "nvemu_bdev_read_bytes_total", **lab), st["bytes_read"])
        self.assertEqual(st["bytes_read"], 7 * 4096)
        self.assertEqual(one(ss, "nvemu_bdev_write_ops_total", **lab), 2)
        self.assertEqual(one(ss, "nvemu_bdev_write_bytes_total", **lab), st["bytes_written"])
        self.assertEqual(one(ss, "nvemu_bdev_io_errors_total", **lab), st["io_error"])
        for kind, n, ticks in (("read", 7, "read_latency_ticks"),
                               ("write", 2, "write_latency_ticks")):
            self.assertEqual(one(ss, "nvemu_bdev_io_latency_seconds_count", type=kind, **lab), n)
            self.assertEqual(one(ss, "nvemu_bdev_io_latency_seconds_bucket", type=kind,
                                 le="+Inf", **lab), n)
            self.assertAlmostEqual(one(ss, "nvemu_bdev_io_latency_seconds_sum", type=kind, **lab),
                                   st[ticks] / 1e6, places=6)
            buckets = sorted((float(s.labels["le"]), s.value)
                             for s in ss["nvemu_bdev_io_latency_seconds_bucket"]
                             if s.labels["type"] == kind)
            values = [v for _, v in buckets]
            self.assertEqual(values, sorted(values), "buckets must be cumulative")
        # Reactors: busy + idle time advances.
        busy = one(ss, "nvemu_reactor_busy_seconds_total", reactor="0", core="0")
        idle = one(ss, "nvemu_reactor_idle_seconds_total", reactor="0", core="0")
        self.assertGreater(busy + idle, 0)
        r = self.tgt.result("framework_get_reactors")["reactors"][0]
        self.assertLessEqual(busy, r["busy"] / 1e6 + 1)

    def test_2_doca_function_state(self):
        self.tgt.result("nvmf_create_transport", {"trtype": "DOCA"})
        vuid = self.tgt.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        ss = samples(self.get()[2])
        self.assertEqual(one(ss, "nvemu_doca_function_state", vuid=vuid, state="created"), 1)
        self.assertEqual(one(ss, "nvemu_doca_function_state", vuid=vuid, state="enabled"), 0)

    def test_3_not_found_bad_method_and_oversized(self):
        self.assertEqual(self.get("/")[0], 404)
        self.assertEqual(self.get("/metrics", method="POST")[0], 405)
        with socket.create_connection(("127.0.0.1", self.mport), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 431"), reply[:80])
        # A client that connects and says nothing does not block the others.
        idle = socket.create_connection(("127.0.0.1", self.mport), timeout=10)
        try:
            self.assertEqual(self.get()[0], 200)
            self.assertEqual(self.tgt.result("spdk_get_version")["fields"]["major"], 23)
        finally:
            idle.close()

    def test_5_qpair_counts_depth_and_errors(self):
        t = self.tgt
        before = t.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        admin, (io,) = connect(self.tport, NQN, io_queues=1)
        try:
            self.check_qpair_series(admin, io, before)
        finally:
            t.result("nvmf_fault_clear")
            admin.close()
            io.close()
        # The queues went: so did their series.
        self.assertTrue(harness.wait_for(lambda: not t.result("nvmf_subsystem_get_qpairs", {"nqn": NQN})))
        ss = samples(self.get()[2])
        for name in QPAIR_SERIES:
            self.assertEqual([s for s in ss.get(name, [])
                              if s.labels["cntlid"] == str(admin.cntlid)], [], name)

    def check_qpair_series(self, admin, io, before):
        t = self.tgt
        for i in range(3):  # 3 writes of 4 KiB
            c = io.wait(io.write(1, 1000 + 8 * i, bytes([0x40 + i]) * 4096))
            self.assertTrue(c.ok, c)
        for i in range(4):  # 4 reads of 1 KiB, of what was written
            c = io.wait(io.read(1, 1000 + 8 * (i % 3), 2))
            self.assertTrue(c.ok, c)
            self.assertEqual(c.data, bytes([0x40 + i % 3]) * 1024)
        lab = {"subnqn": NQN, "cntlid": str(admin.cntlid), "trtype": "TCP",
               "hostnqn": "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"}
        ss = samples(self.get()[2])
        q = qpair(ss, qid="1", **lab)
        self.assertEqual(q, {"read_commands_total": 4, "write_commands_total": 3,
                             "read_bytes_total": 4 * 1024, "written_bytes_total": 3 * 4096,
                             "errors_total": 0, "queue_depth": 0, "queue_size": 32})
        # They agree with the bdev under the namespace (no other host is on it).
        st = t.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        self.assertEqual(st["num_read_ops"] - before["num_read_ops"], q["read_commands_total"])
        self.assertEqual(st["bytes_read"] - before["bytes_read"], q["read_bytes_total"])
        self.assertEqual(st["num_write_ops"] - before["num_write_ops"], q["write_commands_total"])
        self.assertEqual(st["bytes_written"] - before["bytes_written"], q["written_bytes_total"])
        # The admin queue: its own series, no I/O (Connect, Property Set/Get).
        a = qpair(ss, qid="0", **lab)
        self.assertEqual((a["read_commands_total"], a["errors_total"], a["queue_depth"]), (0, 0, 0))
        self.assertEqual(a["queue_size"], 32)

        # Queue depth: 3 reads held by a no_completion fault, then aborted.
        t.result("nvmf_fault_inject", {"nqn": NQN, "action": "no_completion", "queue": "io",
                                       "opcode": 2, "count": 3})
        held = [io.read(1, 0, 1) for _ in range(3)]
        self.assertTrue(harness.wait_for(lambda: t.result("nvmf_fault_list")[0]["hits"] == 3))
        ss = samples(self.get()[2])
        self.assertEqual(one(ss, "nvemu_qpair_queue_depth", qid="1", **lab), 3)
        self.assertEqual(one(ss, "nvemu_qpair_queue_depth", qid="0", **lab), 0)
        for cid in held:
            self.assertEqual(admin.abort(io.qid, cid).cdw0 & 1, 0, "Abort must find it")
            c = io.wait(cid)
            self.assertEqual((c.sct, c.sc), (0, 0x07), c)  # Command Aborted by Request
        q = qpair(samples(self.get()[2]), qid="1", **lab)
        self.assertEqual((q["queue_depth"], q["errors_total"], q["read_commands_total"]),
                         (0, 3, 4))
        t.result("nvmf_fault_clear")

        # Errors: 2 writes failed by injection (not executed), then one that works.
        t.result("nvmf_fault_inject", {"nqn": NQN, "action": "status", "queue": "io",
                                       "opcode": 1, "sct": 0, "sc": 6, "count": 2})
        for _ in range(2):
            c = io.wait(io.write(1, 2000, b"\x77" * 512))
            self.assertEqual((c.sct, c.sc), (0, 6), c)
        self.assertTrue(io.wait(io.write(1, 2000, b"\x78" * 512)).ok)
        q = qpair(samples(self.get()[2]), qid="1", **lab)
        self.assertEqual((q["errors_total"], q["write_commands_total"], q["written_bytes_total"],
                          q["queue_depth"]), (3 + 2, 4, 3 * 4096 + 512, 0))

    def test_6_vfio_user_queues_while_a_host_runs(self):
        # Any transport: a PCIe (vfio-user) controller's queues while
        # nvemu-perf (QD 8, one namespace) drives them.
        t = self.tgt
        vdir = os.path.join(t.dir, "vfu")
        os.makedirs(vdir, exist_ok=True)
        t.result("nvmf_create_transport", {"trtype": "VFIOUSER"})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})
        perf = subprocess.Popen([os.path.join(harness.BIN_DIR, "nvemu-perf"), "-q", "8", "-o",
                                 "4096", "-w", "randread", "-t", "3", "--no-live", "-r",
                                 f"trtype:VFIOUSER traddr:{vdir} subnqn:{NQN}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def io_queue():
                ss = samples(self.get()[2])
                hits = [s for s in ss.get("nvemu_qpair_read_commands_total", [])
                        if s.labels["trtype"] == "VFIOUSER" and s.labels["qid"] != "0"
                        and s.value > 0]
                return (ss, hits[0].labels) if hits else None
            found = harness.wait_for(io_queue, timeout=10)
            self.assertTrue(found, "no VFIOUSER I/O queue series while nvemu-perf runs")
            ss, lab = found
            first = qpair(ss, **lab)
            self.assertEqual(first["errors_total"], 0)
            self.assertLessEqual(first["queue_depth"], 8)
            self.assertGreater(first["queue_size"], 0)
            self.assertEqual(first["read_bytes_total"], first["read_commands_total"] * 4096)
            self.assertEqual(first["write_commands_total"], 0)
            admin = qpair(ss, **{**lab, "qid": "0"})
            self.assertEqual(admin["errors_total"], 0)
            time.sleep(0.3)
            later = qpair(samples(self.get()[2]), **lab)
            self.assertGreater(later["read_commands_total"], first["read_commands_total"])
            self.assertLessEqual(later["queue_depth"], 8)
        finally:
            out, _ = perf.communicate(timeout=60)
        self.assertEqual(perf.returncode, 0, out)

    def test_4_bad_metrics_address_is_refused(self):
        p = subprocess.run([harness.TGT, "-r", "/tmp/nvemu-metrics-bad.sock", "--metrics",
                            "localhost"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--metrics localhost: expected IP:PORT", p.stderr)
        self.assertFalse(os.path.exists("/tmp/nvemu-metrics-bad.sock"))


if __name__ == "__main__":
    harness.run_unittest_main()
