"""bdev_nvme: nvemu namespaces on another NVMe-oF target.

Target A exports malloc (and uring file) namespaces over NVMe/TCP; target B
attaches them with bdev_nvme_attach_controller and exports them again over
TCP. Data is written through B with nvemu-host and read back through A and
B; recovery (reset, failover, A restarted, fast_io_fail, ctrlr_loss), the
remote's namespace changes and every bad-input case are checked by their
real effects: bytes, RPC codes and messages, bdev lists.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Target, free_port  # noqa: E402

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
RPC = harness.RPC
NQN_A = "nqn.2016-06.io.spdk:remote"
NQN_B = "nqn.2016-06.io.spdk:reexport"


def pattern(seed, byte_addr, length):
    """nvemu-host's write-verify pattern (splitmix64 of the word address)."""
    out = bytearray()
    mask = (1 << 64) - 1
    for off in range(0, length, 8):
        z = (seed + ((byte_addr + off) // 8 + 1) * 0x9e3779b97f4a7c15) & mask
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
        out += struct.pack("<Q", z ^ (z >> 31))
    return bytes(out)


def tcp_trid(port, nqn):
    return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}"


def host(trid, *args, timeout=60):
    return subprocess.run([HOST, "-r", trid, *args], capture_output=True, text=True,
                          timeout=timeout)


def write_verify(port, nqn, lba, blocks, seed, nsid=1):
    r = host(tcp_trid(port, nqn), "write-verify", "--nsid", str(nsid), "--lba", str(lba),
             "--blocks", str(blocks), "--seed", str(seed))
    return r


def read_blocks(port, nqn, lba, blocks, nsid=1):
    with tempfile.NamedTemporaryFile() as f:
        r = host(tcp_trid(port, nqn), "read", "--nsid", str(nsid), "--lba", str(lba),
                 "--blocks", str(blocks), "--out", f.name)
        if r.returncode != 0:
            raise AssertionError(f"nvemu-host read failed: {r.stdout}{r.stderr}")
        with open(f.name, "rb") as g:
            return g.read()


def export(t, nqn, port, bdevs, allow_any_host=True, transport=True):
    if transport:
        t.result("nvmf_create_transport", {"trtype": "TCP"})
    t.result("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": allow_any_host})
    for b in bdevs:
        t.result("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": b}})
    if port:
        listen(t, nqn, port)


def listen(t, nqn, port, method="nvmf_subsystem_add_listener"):
    t.result(method, {"nqn": nqn, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


def attach_params(name, port, nqn=NQN_A, **extra):
    p = {"name": name, "trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
         "trsvcid": str(port), "subnqn": nqn}
    p.update(extra)
    return p


class Writer(threading.Thread):
    """write-verify rounds through B, one after another, until stopped."""

    def __init__(self, port, nqn, blocks=64):
        super().__init__(daemon=True)
        self.port, self.nqn, self.blocks = port, nqn, blocks
        self.stop_flag = threading.Event()
        self.rounds, self.failures, self.last = 0, [], {}

    def run(self):
        seed = 100
        while not self.stop_flag.is_set():
            lba = ((seed - 100) % 32) * self.blocks  # aligned slots: no partial overlaps
            r = write_verify(self.port, self.nqn, lba, self.blocks, seed)
            if r.returncode != 0 or '"ok": true' not in r.stdout:
                self.failures.append((seed, r.stdout + r.stderr))
            else:
                self.last[lba] = seed
                self.rounds += 1
            seed += 1

    def finish(self):
        self.stop_flag.set()
        self.join(60)
        return self


class AerHost:
    """A minimal NVMe/TCP host (stdlib only) that connects an admin queue,
    enables the controller, turns on namespace notices and keeps one
    Asynchronous Event Request outstanding: enough to see a target's AEN."""

    def __init__(self, port, nqn):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.cid = 0
        icreq = struct.pack("<BBBBI", 0x00, 0, 128, 0, 128) + struct.pack("<HBBI", 0, 0, 0, 0)
        self.s.sendall(icreq.ljust(128, b"\0"))
        hdr = self.recv_pdu()
        assert hdr[0] == 0x01, f"expected ICResp, got PDU type {hdr[0]}"
        data = bytearray(1024)
        data[16:18] = struct.pack("<H", 0xFFFF)
        data[256:256 + len(nqn)] = nqn.encode()
        host = b"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000ae"
        data[512:512 + len(host)] = host
        cqe = self.cmd(0x7F, nsid=0x01, cdw10=0, cdw11=31, data=bytes(data))
        assert cqe["status"] == 0, cqe
        cc = 1 | (6 << 16) | (4 << 20)
        assert self.cmd(0x7F, nsid=0x00, cdw10=0, cdw11=0x14, cdw12=cc)["status"] == 0
        deadline = time.time() + 5
        while not self.cmd(0x7F, nsid=0x04, cdw10=0, cdw11=0x1C)["cdw0"] & 1:
            assert time.time() < deadline, "CSTS.RDY"
            time.sleep(0.01)
        assert self.cmd(0x09, cdw10=0x0B, cdw11=1 << 8)["status"] == 0  # AEC: ns notices
        self.aer_cid = self.send_cmd(0x0C)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("controller closed the connection")
            buf += chunk
        return buf

    def recv_pdu(self):
        ch = self.recv_exact(8)
        plen = struct.unpack_from("<I", ch, 4)[0]
        return ch + self.recv_exact(plen - 8)

    def send_cmd(self, opc, nsid=0, cdw10=0, cdw11=0, cdw12=0, data=b""):
        self.cid += 1
        sgl = struct.pack("<QI3xB", 0, len(data), 0x01 if data else 0x5A)
        sqe = struct.pack("<BBHI", opc, 0x40, self.cid, nsid) + bytes(16) + sgl + struct.pack(
            "<IIIIII", cdw10, cdw11, cdw12, 0, 0, 0)
        assert len(sqe) == 64
        plen = 72 + len(data)
        self.s.sendall(struct.pack("<BBBBI", 0x04, 0, 72, 72 if data else 0, plen) + sqe + data)
        return self.cid

    def wait_cqe(self, cid, timeout=5):
        self.s.settimeout(timeout)
        while True:
            pdu = self.recv_pdu()
            if pdu[0] != 0x05:
                continue  # C2HData etc.: not used here
            cdw0, _, _, _, rcid, status = struct.unpack_from("<IIHHHH", pdu, 8)
            if rcid == cid:
                return {"cdw0": cdw0, "status": status >> 1}

    def cmd(self, opc, **kw):
        return self.wait_cqe(self.send_cmd(opc, **kw))

    def close(self):
        self.s.close()


class BdevNvmeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Target(("-m", "0x1"))
        cls.b = Target(("-m", "0x3"))
        cls.port_a = free_port()
        cls.port_b = free_port()
        cls.a.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 32768,
                                            "block_size": 512})
        export(cls.a, NQN_A, cls.port_a, ["Malloc0"])
        cls.b.result("nvmf_create_transport", {"trtype": "TCP"})

    @classmethod
    def tearDownClass(cls):
        harness.stop_clean(cls.b, cls.a)  # a crash or sanitizer report fails the run


    def tearDown(self):
        for c in self.b.result("bdev_nvme_get_controllers"):
            self.b.call("bdev_nvme_detach_controller", {"name": c["name"]})
        for s in self.b.result("nvmf_get_subsystems"):
            if s["subtype"] == "NVMe":
                self.b.call("nvmf_delete_subsystem", {"nqn": s["nqn"]})

    def reexport(self, bdev, nqn=NQN_B):
        port = free_port()
        export(self.b, nqn, port, [bdev], transport=False)
        return port

    # ---- attach → I/O → detach -------------------------------------------

    def test_01_attach_io_detach(self):
        names = self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        self.assertEqual(names, ["Nvme0n1"])
        bdev = self.b.result("bdev_get_bdevs", {"name": "Nvme0n1"})[0]
        self.assertEqual((bdev["block_size"], bdev["num_blocks"]), (512, 32768))
        self.assertEqual(bdev["product_name"], "NVMe disk")
        nvme = bdev["driver_specific"]["nvme"][0]
        self.assertEqual(nvme["trid"]["trsvcid"], str(self.port_a))
        self.assertEqual(nvme["ns_data"]["id"], 1)
        self.assertEqual(nvme["ctrlr_data"]["subnqn"], NQN_A)
        ctrlrs = self.b.result("bdev_nvme_get_controllers")
        self.assertEqual(len(ctrlrs), 1)
        self.assertEqual(ctrlrs[0]["name"], "Nvme0")
        c = ctrlrs[0]["ctrlrs"][0]
        self.assertEqual(c["state"], "enabled")
        self.assertEqual(c["trid"], {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
                                     "trsvcid": str(self.port_a), "subnqn": NQN_A})
        self.assertIn("nqn", c["host"])
        self.assertIsInstance(c["cntlid"], int)

        # I/O qpairs come when a reactor first opens a channel: none yet.
        qids = lambda: sorted(q["qid"] for q in self.a.result(  # noqa: E731
            "nvmf_subsystem_get_qpairs", {"nqn": NQN_A}) if q["cntlid"] == c["cntlid"])
        self.assertEqual(qids(), [0])
        before = self.a.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        port_b = self.reexport("Nvme0n1")
        r = write_verify(port_b, NQN_B, 100, 300, 7)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # One per reactor of B that serves it (B has two), qid = reactor + 1.
        self.assertIn(qids(), ([0, 1], [0, 2], [0, 1, 2]))
        self.assertIn('"ok": true', r.stdout)
        want = pattern(7, 100 * 512, 300 * 512)
        self.assertEqual(read_blocks(self.port_a, NQN_A, 100, 300), want)
        self.assertEqual(read_blocks(port_b, NQN_B, 100, 300), want)
        after = self.a.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        self.assertGreaterEqual(after["bytes_written"] - before["bytes_written"], 300 * 512)

        self.assertIs(self.b.result("bdev_nvme_detach_controller", {"name": "Nvme0"}), True)
        self.assertEqual(self.b.result("bdev_nvme_get_controllers"), [])
        self.assertEqual([b["name"] for b in self.b.result("bdev_get_bdevs")], [])
        # B's subsystem dropped the namespace with the bdev.
        sub = [s for s in self.b.result("nvmf_get_subsystems") if s["nqn"] == NQN_B][0]
        self.assertEqual(sub["namespaces"], [])

    # ---- bad input ---------------------------------------------------------

    def assert_nothing_new(self):
        self.assertEqual(self.b.result("bdev_nvme_get_controllers"), [])
        self.assertEqual(self.b.result("bdev_get_bdevs"), [])

    def attach_error(self, params):
        t0 = time.time()
        r = self.b.call("bdev_nvme_attach_controller", params, timeout=30)
        self.assertIn("error", r, r)
        self.assert_nothing_new()
        return r["error"], time.time() - t0

    def test_02_bad_input(self):
        dead = free_port()
        e, _ = self.attach_error(attach_params("Bad", dead))
        self.assertEqual(e["code"], -111)
        self.assertIn(f"127.0.0.1:{dead}", e["message"])
        self.assertIn("Connection refused", e["message"])

        # A listener that accepts but never answers ICReq: bounded by the
        # fabrics timeout, with the address and the cause.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        sport = silent.getsockname()[1]
        try:
            e, took = self.attach_error(attach_params("Bad", sport,
                                                      fabrics_connect_timeout_us=1000000))
        finally:
            silent.close()
        self.assertEqual(e["code"], -110, e)
        self.assertIn(f"127.0.0.1:{sport}", e["message"])
        self.assertLess(took, 10)

        e, _ = self.attach_error(attach_params("Bad", self.port_a, nqn="nqn.2016-06.io.spdk:nope"))
        self.assertEqual(e["code"], -19, e)
        self.assertIn("nqn.2016-06.io.spdk:nope", e["message"])
        self.assertIn("nvmf_get_subsystems", e["message"])

        # A's subsystem that admits listed hosts only.
        closed = "nqn.2016-06.io.spdk:closed"
        self.a.result("bdev_malloc_create", {"name": "MallocC", "num_blocks": 2048,
                                            "block_size": 512})
        export(self.a, closed, None, ["MallocC"], allow_any_host=False, transport=False)
        listen(self.a, closed, self.port_a)
        hostnqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000beef"
        e, _ = self.attach_error(attach_params("Bad", self.port_a, nqn=closed, hostnqn=hostnqn))
        self.assertEqual(e["code"], -1, e)
        self.assertIn(hostnqn, e["message"])
        self.assertIn("nvmf_subsystem_add_host", e["message"])
        self.a.result("nvmf_subsystem_add_host", {"nqn": closed, "host": hostnqn})
        self.assertEqual(self.b.result("bdev_nvme_attach_controller",
                                       attach_params("Ok", self.port_a, nqn=closed,
                                                     hostnqn=hostnqn)), ["Okn1"])

        # Two attaches of one name at once: the second is refused, not queued.
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.b.call(
            "bdev_nvme_attach_controller", attach_params("Twin", self.port_a,
                                                         nqn=closed, hostnqn=hostnqn))))
            for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        codes = sorted(r["error"]["code"] if "error" in r else 0 for r in results)
        self.assertEqual(codes, [-114, 0], results)
        self.b.result("bdev_nvme_detach_controller", {"name": "Twin"})
        # Same name again without multipath.
        r = self.b.call("bdev_nvme_attach_controller", attach_params("Ok", self.port_a))
        self.assertEqual(r["error"]["code"], -114, r)
        self.assertIn("already exists and multipath is disabled", r["error"]["message"])
        # Same name, failover, but another subsystem.
        r = self.b.call("bdev_nvme_attach_controller",
                        attach_params("Ok", free_port(), multipath="failover"))
        self.assertEqual(r["error"]["code"], -22, r)
        self.assertIn("different subnqn", r["error"]["message"])
        self.assertEqual([b["name"] for b in self.b.result("bdev_get_bdevs")], ["Okn1"])
        self.b.result("bdev_nvme_detach_controller", {"name": "Ok"})
        self.a.result("nvmf_delete_subsystem", {"nqn": closed})
        self.a.result("bdev_malloc_delete", {"name": "MallocC"})

        e, _ = self.attach_error({**attach_params("Bad", self.port_a), "trtype": "rdma"})
        self.assertEqual(e["code"], -22)
        self.assertIn("Failed to parse trtype: rdma", e["message"])
        self.assertIn("tcp or vfiouser", e["message"])
        for bad, words in (({"ctrlr_loss_timeout_sec": 5}, "reconnect_delay_sec can't be 0"),
                           ({"ctrlr_loss_timeout_sec": 2, "reconnect_delay_sec": 3},
                            "can't be more than ctrlr_loss_timeout_sec"),
                           ({"ctrlr_loss_timeout_sec": -2}, "less than -1"),
                           ({"reconnect_delay_sec": 1}, "must be 0 if ctrlr_loss_timeout_sec is 0"),
                           ({"ctrlr_loss_timeout_sec": 10, "reconnect_delay_sec": 2,
                             "fast_io_fail_timeout_sec": 11},
                            "fast_io_fail_timeout_sec can't be more than ctrlr_loss")):
            e, _ = self.attach_error(attach_params("Bad", self.port_a, **bad))
            self.assertEqual(e["code"], -22, (bad, e))
            self.assertIn(words, e["message"])
        e, _ = self.attach_error({**attach_params("Bad", self.port_a), "bogus": 1})
        self.assertEqual(e["code"], -32602)
        r = self.b.call("bdev_nvme_detach_controller", {"name": "Nope"})
        self.assertEqual(r["error"]["code"], -19)
        r = self.b.call("bdev_nvme_reset_controller", {"name": "Nope"})
        self.assertEqual(r["error"]["code"], -19)
        r = self.b.call("bdev_nvme_get_controllers", {"name": "Nope"})
        self.assertEqual(r["error"], {"code": 22, "message": "Controller Nope does not exist"})
        self.assertTrue(self.b.alive())
        self.assertEqual(self.b.result("spdk_get_version")["fields"]["major"], 23)

    # ---- recovery ----------------------------------------------------------

    def state(self, name):
        c = self.b.call("bdev_nvme_get_controllers", {"name": name})
        return c["result"][0]["ctrlrs"][0]["state"] if "result" in c else None

    def test_03_reset_under_io(self):
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        cntlid = self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]["cntlid"]
        port_b = self.reexport("Nvme0n1")
        w = Writer(port_b, NQN_B)
        w.start()
        harness.wait_for(lambda: w.rounds >= 2, "I/O before the reset")
        for _ in range(3):
            self.assertIs(self.b.result("bdev_nvme_reset_controller", {"name": "Nvme0"}), True)
            self.assertEqual(self.state("Nvme0"), "enabled")
        done = w.rounds
        harness.wait_for(lambda: w.rounds >= done + 2, "I/O after the resets")
        w.finish()
        self.assertEqual(w.failures, [])
        self.assertNotEqual(self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]["cntlid"],
                            cntlid)

    def test_04_failover_on_listener_removal(self):
        port2 = free_port()
        listen(self.a, NQN_A, port2)
        try:
            self.assertEqual(self.b.result("bdev_nvme_attach_controller", attach_params(
                "Nvme0", self.port_a, ctrlr_loss_timeout_sec=-1, reconnect_delay_sec=1)),
                ["Nvme0n1"])
            self.assertEqual(self.b.result("bdev_nvme_attach_controller", attach_params(
                "Nvme0", port2, multipath="failover")), [])
            # The exact same path again is refused.
            r = self.b.call("bdev_nvme_attach_controller",
                            attach_params("Nvme0", port2, multipath="failover"))
            self.assertEqual(r["error"]["code"], -114)
            self.assertIn("specified network path", r["error"]["message"])
            saved = [e for s in self.b.result("save_config")["subsystems"]
                     if s["subsystem"] == "bdev" for e in s["config"]
                     if e["method"] == "bdev_nvme_attach_controller"]
            self.assertEqual([(e["params"]["trsvcid"], e["params"].get("multipath"))
                              for e in saved], [(str(self.port_a), None), (str(port2), "failover")])
            port_b = self.reexport("Nvme0n1")
            w = Writer(port_b, NQN_B)
            w.start()
            harness.wait_for(lambda: w.rounds >= 2, "I/O before the failover")
            listen(self.a, NQN_A, self.port_a, "nvmf_subsystem_remove_listener")
            harness.wait_for(lambda: self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]
                     ["trid"]["trsvcid"] == str(port2), "the active path to move", 10)
            done = w.rounds
            harness.wait_for(lambda: w.rounds >= done + 3, "I/O on the second path")
            w.finish()
            self.assertEqual(w.failures, [])
            self.assertEqual(self.state("Nvme0"), "enabled")
            # Detaching the inactive path leaves the controller.
            self.assertIs(self.b.result("bdev_nvme_detach_controller", {
                "name": "Nvme0", "trtype": "tcp", "traddr": "127.0.0.1",
                "trsvcid": str(self.port_a)}), True)
            self.assertEqual(len(self.b.result("bdev_nvme_get_controllers")), 1)
        finally:
            listen(self.a, NQN_A, self.port_a)
            self.a.call("nvmf_subsystem_remove_listener", {"nqn": NQN_A, "listen_address": {
                "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
                "trsvcid": str(port2)}})

    def start_c(self, port, path, fresh):
        """Target C: a uring file namespace (it survives C's restart)."""
        c = Target(("-m", "0x1"))
        if fresh:
            with open(path, "wb") as f:
                f.truncate(8 << 20)
        c.result("bdev_uring_create", {"name": "File0", "filename": path, "block_size": 512})
        export(c, NQN_A, port, ["File0"])
        return c

    def test_05_target_restart_within_ctrlr_loss(self):
        port = free_port()
        path = os.path.join(self.a.dir, "c.img")
        c = self.start_c(port, path, True)
        try:
            self.b.result("bdev_nvme_attach_controller", attach_params(
                "Nvme1", port, ctrlr_loss_timeout_sec=30, reconnect_delay_sec=1))
            port_b = self.reexport("Nvme1n1")
            w = Writer(port_b, NQN_B)
            w.start()
            harness.wait_for(lambda: w.rounds >= 2, "I/O before the restart")
            c.proc.kill()
            c.proc.wait()
            harness.wait_for(lambda: self.state("Nvme1") in ("resetting", "reconnect_is_delayed"),
                     "B to notice")
            c.stop()
            time.sleep(0.5)
            c = self.start_c(port, path, False)
            harness.wait_for(lambda: self.state("Nvme1") == "enabled", "B to reconnect", 15)
            done = w.rounds
            harness.wait_for(lambda: w.rounds >= done + 2, "I/O after the restart", 20)
            w.finish()
            self.assertEqual(w.failures, [])
            # Every range's last write is there, read straight from C.
            for lba, seed in w.last.items():
                self.assertEqual(read_blocks(port, NQN_A, lba, 64),
                                 pattern(seed, lba * 512, 64 * 512), (lba, seed))
        finally:
            c.stop()

    def test_06_fast_io_fail_then_ctrlr_loss(self):
        port = free_port()
        path = os.path.join(self.a.dir, "d.img")
        c = self.start_c(port, path, True)
        try:
            self.b.result("bdev_nvme_attach_controller", attach_params(
                "Nvme2", port, ctrlr_loss_timeout_sec=4, reconnect_delay_sec=1,
                fast_io_fail_timeout_sec=2))
            port_b = self.reexport("Nvme2n1")
            self.assertEqual(write_verify(port_b, NQN_B, 0, 8, 3).returncode, 0)
        finally:
            c.stop()
        lost = time.time()
        # Queued, not failed, until fast_io_fail_timeout_sec: the read through
        # B fails only after about 2 s.
        with tempfile.NamedTemporaryFile() as f:
            r = host(tcp_trid(port_b, NQN_B), "read", "--nsid", "1", "--lba", "0",
                     "--blocks", "8", "--out", f.name)
        took = time.time() - lost
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 4.5)
        self.assertIn(self.state("Nvme2"), ("resetting", "reconnect_is_delayed"))
        # Deleted with its bdev after ctrlr_loss_timeout_sec; B's subsystem
        # drops the namespace.
        harness.wait_for(lambda: self.state("Nvme2") is None, "ctrlr_loss_timeout_sec", 8)
        self.assertGreater(time.time() - lost, 3.5)
        self.assertEqual(self.b.result("bdev_get_bdevs"), [])
        sub = [s for s in self.b.result("nvmf_get_subsystems") if s["nqn"] == NQN_B][0]
        self.assertEqual(sub["namespaces"], [])

    # ---- the remote's namespace changes ------------------------------------

    def test_07_namespace_added_and_removed_on_a(self):
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        port_b = self.reexport("Nvme0n1")
        self.a.result("bdev_malloc_create", {"name": "Malloc1", "num_blocks": 4096,
                                            "block_size": 4096})
        nsid = self.a.result("nvmf_subsystem_add_ns", {"nqn": NQN_A, "namespace": {
            "bdev_name": "Malloc1"}})
        self.assertEqual(nsid, 2)
        names = lambda: sorted(b["name"] for b in self.b.result("bdev_get_bdevs"))  # noqa: E731
        harness.wait_for(lambda: names() == ["Nvme0n1", "Nvme0n2"], "Nvme0n2 on B", 5)
        n2 = self.b.result("bdev_get_bdevs", {"name": "Nvme0n2"})[0]
        self.assertEqual((n2["block_size"], n2["num_blocks"]), (4096, 4096))
        # B exports the new one too; data goes through to A's Malloc1.
        self.b.result("nvmf_subsystem_add_ns", {"nqn": NQN_B, "namespace": {
            "bdev_name": "Nvme0n2"}})
        r = write_verify(port_b, NQN_B, 10, 20, 5, nsid=2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(read_blocks(self.port_a, NQN_A, 10, 20, nsid=2),
                         pattern(5, 10 * 4096, 20 * 4096))
        # Removed on A: gone from B's bdevs and from B's own subsystem,
        # whose host hears of it through B's own AEN.
        aer = AerHost(port_b, NQN_B)
        try:
            self.a.result("nvmf_subsystem_remove_ns", {"nqn": NQN_A, "nsid": 2})
            harness.wait_for(lambda: names() == ["Nvme0n1"], "Nvme0n2 to go", 5)
            cqe = aer.wait_cqe(aer.aer_cid)
            self.assertEqual(cqe["status"], 0)
            # Notice (2), Namespace Attribute Changed (0), log page 04h.
            self.assertEqual(cqe["cdw0"] & 0xFFFFFF, 0x040002)
        finally:
            aer.close()
        sub = [s for s in self.b.result("nvmf_get_subsystems") if s["nqn"] == NQN_B][0]
        self.assertEqual([n["bdev_name"] for n in sub["namespaces"]], ["Nvme0n1"])
        self.a.result("bdev_malloc_delete", {"name": "Malloc1"})

    # ---- nvemu-rpc: rpc.py's flags -----------------------------------------

    def rpc(self, *args):
        r = subprocess.run([RPC, "-s", self.b.sock, *args], capture_output=True, text=True,
                           timeout=30)
        return r

    def test_08_nvemu_rpc_flags(self):
        r = self.rpc("bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "tcp", "-a",
                     "127.0.0.1", "-f", "ipv4", "-s", str(self.port_a), "-n", NQN_A,
                     "-l", "-1", "-o", "1", "-u", "2")
        self.assertEqual((r.returncode, r.stdout), (0, "Nvme0n1\n"), r.stderr)
        saved = [e["params"] for s in self.b.result("save_config")["subsystems"]
                 if s["subsystem"] == "bdev" for e in s["config"]
                 if e["method"] == "bdev_nvme_attach_controller"][0]
        self.assertEqual((saved["ctrlr_loss_timeout_sec"], saved["reconnect_delay_sec"],
                          saved["fast_io_fail_timeout_sec"]), (-1, 1, 2))
        r = self.rpc("bdev_nvme_get_controllers", "-n", "Nvme0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"state": "enabled"', r.stdout)
        self.assertEqual(self.rpc("bdev_nvme_reset_controller", "Nvme0").returncode, 0)
        r = self.rpc("bdev_nvme_set_options", "-k", "3000")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not permitted with nvme controllers already attached", r.stdout + r.stderr)
        r = self.rpc("bdev_nvme_detach_controller", "Nvme0", "-t", "tcp", "-a", "127.0.0.1",
                     "-s", str(self.port_a))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.b.result("bdev_nvme_get_controllers"), [])
        r = self.rpc("bdev_nvme_set_options", "-k", "3000", "-l", "10", "-o", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        opts = [e["params"] for s in self.b.result("save_config")["subsystems"]
                if s["subsystem"] == "bdev" for e in s["config"]
                if e["method"] == "bdev_nvme_set_options"][0]
        self.assertEqual((opts["keep_alive_timeout_ms"], opts["ctrlr_loss_timeout_sec"],
                          opts["reconnect_delay_sec"]), (3000, 10, 2))
        # Attach takes the module's defaults.
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        c = [e["params"] for s in self.b.result("save_config")["subsystems"]
             if s["subsystem"] == "bdev" for e in s["config"]
             if e["method"] == "bdev_nvme_attach_controller"][0]
        self.assertEqual((c["ctrlr_loss_timeout_sec"], c["reconnect_delay_sec"]), (10, 2))
        self.b.result("bdev_nvme_detach_controller", {"name": "Nvme0"})
        self.b.result("bdev_nvme_set_options", {"keep_alive_timeout_ms": 10000,
                                                "ctrlr_loss_timeout_sec": 0,
                                                "reconnect_delay_sec": 0})
        r = self.b.call("bdev_nvme_set_options", {"ctrlr_loss_timeout_sec": 3})
        self.assertEqual(r["error"]["code"], -22)
        self.assertIn("reconnect_delay_sec can't be 0", r["error"]["message"])

    # ---- save_config / -c replay -------------------------------------------

    def test_09_config_replay_waits_for_attach(self):
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        self.reexport("Nvme0n1")
        cfg = self.b.result("save_config")
        path = os.path.join(self.b.dir, "replay.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.b.result("bdev_nvme_detach_controller", {"name": "Nvme0"})
        self.b.result("nvmf_delete_subsystem", {"nqn": NQN_B})
        # A fresh target replays it: the subsystem's namespace needs the
        # bdev the attach creates, so the attach must be done first.
        with Target(("-m", "0x1", "-c", path)) as t:
            subs = lambda: [s for s in t.result("nvmf_get_subsystems")  # noqa: E731
                            if s["nqn"] == NQN_B and s["namespaces"]]
            sub = harness.wait_for(subs, "the replay to finish")[0]
            self.assertEqual([n["bdev_name"] for n in sub["namespaces"]], ["Nvme0n1"])
            self.assertEqual(t.result("bdev_nvme_get_controllers")[0]["name"], "Nvme0")
            # Shutting down with a controller attached is clean (sanitizers too).
            t.interrupt()
            self.assertEqual(t.proc.returncode, 0, t.output()[-3000:])
        # load_config into the running B does the same.
        self.assertIs(self.b.result("load_config", {"subsystems": [
            s for s in cfg["subsystems"] if s["subsystem"] == "bdev"]}), True)
        self.assertEqual([b["name"] for b in self.b.result("bdev_get_bdevs")], ["Nvme0n1"])
        self.b.result("bdev_nvme_detach_controller", {"name": "Nvme0"})
        # An entry exactly as SPDK v23.01's nvme_ctrlr_config_json writes it.
        spdk_entry = {"method": "bdev_nvme_attach_controller", "params": {
            "name": "Spdk0", "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
            "trsvcid": str(self.port_a), "subnqn": NQN_A, "prchk_reftag": False,
            "prchk_guard": False, "ctrlr_loss_timeout_sec": 0, "reconnect_delay_sec": 0,
            "fast_io_fail_timeout_sec": 0, "hdgst": False, "ddgst": False}}
        self.assertIs(self.b.result("load_config", {"subsystems": [
            {"subsystem": "bdev", "config": [spdk_entry]}]}), True)
        self.assertEqual([b["name"] for b in self.b.result("bdev_get_bdevs")], ["Spdk0n1"])

    # ---- vfio-user ---------------------------------------------------------

    def test_10_vfiouser_attach_io_and_function_loss(self):
        vdir = tempfile.mkdtemp(prefix="nvemu-vfu-", dir=self.a.dir)
        self.a.call("nvmf_create_transport", {"trtype": "VFIOUSER"})
        self.a.result("nvmf_subsystem_add_listener", {"nqn": NQN_A, "listen_address": {
            "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})
        harness.wait_for(lambda: os.path.exists(os.path.join(vdir, "cntrl")), "the function socket")
        try:
            names = self.b.result("bdev_nvme_attach_controller", {
                "name": "Vfu0", "trtype": "vfiouser", "traddr": vdir,
                "ctrlr_loss_timeout_sec": 2, "reconnect_delay_sec": 1})
            self.assertEqual(names, ["Vfu0n1"])
            c = self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]
            self.assertEqual(c["trid"], {"trtype": "VFIOUSER", "traddr": vdir})
            nvme = self.b.result("bdev_get_bdevs", {"name": "Vfu0n1"})[0]["driver_specific"]
            self.assertEqual(nvme["nvme"][0]["pci_address"], vdir)
            port_b = self.reexport("Vfu0n1")
            r = write_verify(port_b, NQN_B, 1000, 700, 11)  # 350 KiB: several 128 KiB I/Os
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn('"ok": true', r.stdout)
            self.assertEqual(read_blocks(self.port_a, NQN_A, 1000, 700),
                             pattern(11, 1000 * 512, 700 * 512))
            # Namespace changes arrive through the function's AEN too.
            self.a.result("bdev_malloc_create", {"name": "Malloc2", "num_blocks": 2048,
                                                "block_size": 512})
            nsid = self.a.result("nvmf_subsystem_add_ns", {"nqn": NQN_A, "namespace": {
                "bdev_name": "Malloc2"}})
            bdevs = lambda: sorted(b["name"] for b in self.b.result("bdev_get_bdevs"))  # noqa
            harness.wait_for(lambda: bdevs() == ["Vfu0n1", f"Vfu0n{nsid}"], "the new namespace", 5)
            self.a.result("nvmf_subsystem_remove_ns", {"nqn": NQN_A, "nsid": nsid})
            harness.wait_for(lambda: bdevs() == ["Vfu0n1"], "the namespace to go", 5)
            self.a.result("bdev_malloc_delete", {"name": "Malloc2"})
            # The function goes away: B's bdev goes after ctrlr_loss_timeout_sec.
            self.a.result("nvmf_subsystem_remove_listener", {"nqn": NQN_A, "listen_address": {
                "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})
            harness.wait_for(lambda: self.b.result("bdev_nvme_get_controllers") == [],
                     "ctrlr_loss_timeout_sec after the function went", 10)
            self.assertEqual(self.b.result("bdev_get_bdevs"), [])
        finally:
            self.a.call("nvmf_subsystem_remove_listener", {"nqn": NQN_A, "listen_address": {
                "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})

    def test_11_vfiouser_bad_traddr(self):
        e, _ = self.attach_error({"name": "Vfu1", "trtype": "vfiouser",
                                  "traddr": "/nonexistent/function"})
        self.assertEqual(e["code"], -2, e)
        self.assertIn("/nonexistent/function", e["message"])
        self.assertIn("cntrl", e["message"])

    def test_12_keep_alive_per_kato(self):
        self.b.result("bdev_nvme_set_options", {"keep_alive_timeout_ms": 1000})
        try:
            self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
            cntlid = self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]["cntlid"]
            time.sleep(3)  # three KATOs: without keep-alives A drops the controller
            c = self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]
            self.assertEqual((c["state"], c["cntlid"]), ("enabled", cntlid))
        finally:
            self.b.call("bdev_nvme_detach_controller", {"name": "Nvme0"})
            self.b.result("bdev_nvme_set_options", {"keep_alive_timeout_ms": 10000})

    def test_13_hostaddr(self):
        e, _ = self.attach_error(attach_params("Bad", self.port_a, hostaddr="192.0.2.1"))
        self.assertEqual(e["code"], -99, e)
        self.assertIn("hostaddr 192.0.2.1", e["message"])
        self.b.result("bdev_nvme_attach_controller",
                      attach_params("Nvme0", self.port_a, hostaddr="127.0.0.1"))
        c = self.b.result("bdev_nvme_get_controllers")[0]["ctrlrs"][0]
        self.assertEqual(c["host"]["addr"], "127.0.0.1")

    def test_14_doca_function_as_remote(self):
        """The seed's flow on D (a DOCA emulated function), attached by B."""
        ddir = tempfile.mkdtemp(prefix="nvemu-doca-", dir=self.a.dir)
        port = free_port()
        with Target(("-m", "0x1"), env={"NVEMU_DOCA_DIR": ddir}) as d:
            d.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 8192,
                                            "block_size": 512})
            export(d, NQN_A, port, ["Malloc0"])
            d.result("nvmf_create_transport", {"trtype": "DOCA"})
            manager = d.result("nvmf_doca_get_managers")[0]["name"]
            vuid = d.result("nvmf_doca_create_function", {"dev_name": manager})
            d.result("nvmf_subsystem_add_listener", {"nqn": NQN_A, "listen_address": {
                "trtype": "DOCA", "traddr": vuid}})
            fdir = os.path.join(ddir, vuid)
            harness.wait_for(lambda: os.path.exists(os.path.join(fdir, "cntrl")), "the function")
            self.assertEqual(self.b.result("bdev_nvme_attach_controller", {
                "name": "Doca0", "trtype": "vfiouser", "traddr": fdir}), ["Doca0n1"])
            port_b = self.reexport("Doca0n1")
            r = write_verify(port_b, NQN_B, 5, 100, 21)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(read_blocks(port, NQN_A, 5, 100), pattern(21, 5 * 512, 100 * 512))
            self.b.result("bdev_nvme_detach_controller", {"name": "Doca0"})

    def test_15_vfiouser_host_on_b_scattered_buffers(self):
        """A PCIe host on B hands scattered (per-page PRP) buffers down to
        the TCP path."""
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        self.reexport("Nvme0n1")
        vdir = tempfile.mkdtemp(prefix="nvemu-vfu-b-", dir=self.b.dir)
        self.b.call("nvmf_create_transport", {"trtype": "VFIOUSER"})
        self.b.result("nvmf_subsystem_add_listener", {"nqn": NQN_B, "listen_address": {
            "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})
        harness.wait_for(lambda: os.path.exists(os.path.join(vdir, "cntrl")), "B's function")
        r = host(f"trtype:VFIOUSER traddr:{vdir} subnqn:{NQN_B}", "write-verify", "--nsid", "1",
                 "--lba", "3001", "--blocks", "513", "--seed", "31")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('"ok": true', r.stdout)
        self.assertEqual(read_blocks(self.port_a, NQN_A, 3001, 513),
                         pattern(31, 3001 * 512, 513 * 512))
        self.b.result("nvmf_subsystem_remove_listener", {"nqn": NQN_B, "listen_address": {
            "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vdir, "trsvcid": "0"}})

    def test_16_no_retry_fails_then_reset_recovers(self):
        """ctrlr_loss_timeout_sec 0 (the default): one attempt, then failed;
        bdev_nvme_reset_controller brings it back once the target is."""
        port = free_port()
        path = os.path.join(self.a.dir, "e.img")
        c = self.start_c(port, path, True)
        try:
            self.b.result("bdev_nvme_attach_controller", attach_params("Nvme3", port))
            port_b = self.reexport("Nvme3n1")
            c.stop()
            harness.wait_for(lambda: self.state("Nvme3") == "failed", "the failed state", 10)
            t0 = time.time()
            with tempfile.NamedTemporaryFile() as f:
                r = host(tcp_trid(port_b, NQN_B), "read", "--nsid", "1", "--lba", "0",
                         "--blocks", "8", "--out", f.name)
            self.assertNotEqual(r.returncode, 0)
            self.assertLess(time.time() - t0, 3)
            r = self.b.call("bdev_nvme_reset_controller", {"name": "Nvme3"})
            self.assertEqual(r["error"]["code"], -32603, r)
            self.assertIn("Connection refused", r["error"]["message"])
            self.assertEqual(self.state("Nvme3"), "failed")
            c = self.start_c(port, path, False)
            self.assertIs(self.b.result("bdev_nvme_reset_controller", {"name": "Nvme3"}), True)
            self.assertEqual(self.state("Nvme3"), "enabled")
            r = write_verify(port_b, NQN_B, 0, 16, 41)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            c.stop()

    def test_17_write_zeroes_and_deallocate_pass_through(self):
        self.b.result("bdev_nvme_attach_controller", attach_params("Nvme0", self.port_a))
        port_b = self.reexport("Nvme0n1")
        b = self.b.result("bdev_get_bdevs", {"name": "Nvme0n1"})[0]
        self.assertTrue(b["supported_io_types"]["write_zeroes"], b["supported_io_types"])
        self.assertTrue(b["supported_io_types"]["unmap"], b["supported_io_types"])
        r = write_verify(port_b, NQN_B, 1000, 64, 17)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        before = self.a.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        r = host(tcp_trid(port_b, NQN_B), "write-zeroes", "--nsid", "1", "--lba", "1000",
                 "--blocks", "16")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = host(tcp_trid(port_b, NQN_B), "deallocate", "--nsid", "1", "--lba", "1032",
                 "--blocks", "32")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = self.a.result("bdev_get_iostat", {"name": "Malloc0"})["bdevs"][0]
        # Each reached A as the command it was, not as written data.
        self.assertEqual(after["num_write_zeroes_ops"] - before["num_write_zeroes_ops"], 1)
        self.assertEqual(after["num_unmap_ops"] - before["num_unmap_ops"], 1)
        self.assertEqual(after["bytes_written"], before["bytes_written"])
        data = read_blocks(self.port_a, NQN_A, 1000, 32)
        self.assertEqual(data[:16 * 512], bytes(16 * 512))
        self.assertEqual(data[16 * 512:], pattern(17, 1016 * 512, 16 * 512))


if __name__ == "__main__":
    harness.run_unittest_main()
