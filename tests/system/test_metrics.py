#!/usr/bin/env python3
"""nvemu-tgt --metrics: the Prometheus text format over HTTP, parsed with a
real Prometheus parser (Debian's python3-prometheus-client), and its values
checked against bdev_get_iostat after a known number of I/Os from a real
NVMe/TCP host (nvemu-host)."""
import http.client
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

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

    def test_4_bad_metrics_address_is_refused(self):
        p = subprocess.run([harness.TGT, "-r", "/tmp/nvemu-metrics-bad.sock", "--metrics",
                            "localhost"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--metrics localhost: expected IP:PORT", p.stderr)
        self.assertFalse(os.path.exists("/tmp/nvemu-metrics-bad.sock"))


if __name__ == "__main__":
    harness.run_unittest_main()
