"""NVMe-level fault injection (nvmf_fault_inject/list/clear), the Error
Information log, SMART's error counts and Abort, driven over NVMe/TCP by a
host that picks its CIDs (nvme_tcp_client.py). Two reactors, so an I/O queue
may live on another reactor than its controller's admin queue."""
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Target, free_port, run_unittest_main, stop_clean, wait_for  # noqa: E402
from nvme_tcp_client import connect, parse_error_log  # noqa: E402

NQN = "nqn.2016-06.io.spdk:faults"
BS = 512


class FaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Target(("-m", "0x3"))
        cls.port = free_port()
        cls.t.result("bdev_malloc_create", {"name": "M0", "num_blocks": 8192, "block_size": BS})
        cls.t.result("nvmf_create_transport", {"trtype": "TCP"})
        cls.t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        cls.t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M0"}})
        cls.t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(cls.port)}})

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.t)

    def setUp(self):
        self.queues = []

    def tearDown(self):
        self.t.result("nvmf_fault_clear")
        for q in self.queues:
            q.close()
        self.assertTrue(wait_for(lambda: not self.t.result(
            "nvmf_subsystem_get_controllers", {"nqn": NQN})), "controllers left behind")
        self.assertTrue(self.t.alive())

    def host(self, io_queues=2):
        admin, ios = connect(self.port, NQN, io_queues=io_queues)
        self.queues += [admin, *ios]
        return admin, ios

    def inject(self, **params):
        return self.t.result("nvmf_fault_inject", {"nqn": NQN, **params})

    def write_pattern(self, io, lba, byte):
        c = io.wait(io.write(1, lba, bytes([byte]) * BS))
        self.assertTrue(c.ok, c)

    # ---- status

    def test_status_fails_reads_then_recovers_and_is_logged(self):
        admin, (io, _) = self.host()
        self.write_pattern(io, 100, 0xA5)
        before = struct.unpack_from("<Q", admin.get_log(0x02, 512).data, 176)[0]
        media_before = struct.unpack_from("<Q", admin.get_log(0x02, 512).data, 160)[0]
        fid = self.inject(action="status", queue="io", opcode=2, sct=2, sc=0x81, dnr=True,
                          count=2)
        fails = [io.wait(io.read(1, 100, 1)) for _ in range(2)]
        for c in fails:
            self.assertEqual((c.sct, c.sc, c.dnr), (2, 0x81, True), c)
        ok = io.wait(io.read(1, 100, 1))
        self.assertTrue(ok.ok, ok)
        self.assertEqual(ok.data, bytes([0xA5]) * BS)
        f = self.t.result("nvmf_fault_list")
        self.assertEqual([(x["id"], x["hits"], x["matched"]) for x in f], [(fid, 2, 3)])

        # Error Information log (LID 01h): newest first, the failed reads.
        log = parse_error_log(admin.get_log(0x01, 64 * 64).data)
        self.assertGreaterEqual(len(log), 2)
        newest = log[0]
        self.assertEqual(newest["sqid"], io.qid)
        self.assertEqual(newest["cid"], fails[1].cid)
        self.assertEqual(newest["status"], (2 << 8) | 0x81 | (1 << 14))
        self.assertEqual((newest["lba"], newest["nsid"]), (100, 1))
        self.assertEqual(log[1]["cid"], fails[0].cid)
        self.assertEqual(newest["error_count"], log[1]["error_count"] + 1)
        # SMART: Number of Error Information Log Entries, Media Errors.
        smart = admin.get_log(0x02, 512).data
        self.assertEqual(struct.unpack_from("<Q", smart, 176)[0], before + 2)
        self.assertEqual(struct.unpack_from("<Q", smart, 160)[0], media_before + 2)
        # Identify Controller ELPE: 64 entries (0-based 63).
        self.assertEqual(admin.identify_ctrlr().data[262], 63)

    def test_status_fails_write_without_executing_it(self):
        _, (io, _) = self.host()
        self.write_pattern(io, 200, 0x11)
        self.inject(action="status", queue="io", opcode=1, sct=0, sc=0x06, count=1)
        c = io.wait(io.write(1, 200, b"\x22" * BS))
        self.assertEqual((c.sct, c.sc, c.dnr), (0, 6, False))
        c = io.wait(io.read(1, 200, 1))
        self.assertEqual(c.data, b"\x11" * BS, "a write failed by injection must not land")

    def test_probability_with_seed_repeats(self):
        _, (io,) = self.host(io_queues=1)

        def run():
            fid = self.inject(action="status", queue="io", opcode=2, sc=6, probability=0.5,
                              seed=1234)
            pattern = [io.wait(io.read(1, 0, 1)).ok for _ in range(64)]
            self.t.result("nvmf_fault_clear", {"id": fid})
            return pattern

        a, b = run(), run()
        self.assertEqual(a, b)
        self.assertTrue(10 < a.count(False) < 54, a)

    def test_admin_opcode_and_cntlid_scope(self):
        admin, _ = self.host(io_queues=1)
        other, _ = self.host(io_queues=1)
        self.inject(action="status", queue="admin", opcode=6, sc=6, cntlid=admin.cntlid)
        self.assertEqual(admin.identify_ctrlr().sc, 6)
        self.assertTrue(other.identify_ctrlr().ok)

    # ---- no_completion and Abort

    def test_no_completion_then_abort(self):
        admin, (io, _) = self.host()
        self.write_pattern(io, 300, 0x33)
        fid = self.inject(action="no_completion", queue="io", opcode=2, count=1)
        cid = io.read(1, 300, 1)
        self.assertIsNone(io.completed(cid, timeout=0.5), "held read completed")
        self.assertEqual(self.t.result("nvmf_fault_list")[0]["hits"], 1)
        ab = admin.abort(io.qid, cid)
        self.assertTrue(ab.ok, ab)
        self.assertEqual(ab.cdw0 & 1, 0, "Abort must report the command aborted")
        c = io.wait(cid)
        self.assertEqual((c.sct, c.sc), (0, 0x07), c)  # Command Aborted by Request
        # Nothing left to abort: DW0 bit 0 = 1.
        self.assertEqual(admin.abort(io.qid, cid).cdw0 & 1, 1)
        self.assertEqual(admin.abort(io.qid, 0x1234).cdw0 & 1, 1)
        self.assertEqual(admin.abort(77, cid).cdw0 & 1, 1)
        # Aborted commands are errors in the log.
        log = parse_error_log(admin.get_log(0x01, 4096).data)
        self.assertEqual((log[0]["cid"], log[0]["sqid"], log[0]["status"]), (cid, io.qid, 0x07))
        # The fault is spent (count 1): reads work again.
        c = io.wait(io.read(1, 300, 1))
        self.assertEqual(c.data, b"\x33" * BS)
        self.t.result("nvmf_fault_clear", {"id": fid})

    def test_abort_on_admin_queue(self):
        admin, _ = self.host(io_queues=1)
        self.inject(action="no_completion", queue="admin", opcode=0x06, count=1)
        cid = admin.submit(0x06, cdw10=1, read_len=4096)
        self.assertIsNone(admin.completed(cid, timeout=0.3))
        self.assertEqual(admin.abort(0, cid).cdw0 & 1, 0)
        self.assertEqual(admin.wait(cid).sc, 0x07)

    def test_held_commands_freed_when_host_goes(self):
        admin, ios = self.host()
        self.inject(action="no_completion", queue="io")
        held = [io.read(1, i, 1) for io in ios for i in range(4)]
        time.sleep(0.3)
        for io in ios:
            self.assertFalse(io.done)
        self.assertEqual(self.t.result("nvmf_fault_list")[0]["hits"], len(held))
        self.assertEqual(len(self.t.result("nvmf_subsystem_get_qpairs", {"nqn": NQN})), 3)
        for q in self.queues:
            q.close()
        self.queues = []
        # Every queue and the controller go: nothing held keeps them.
        self.assertTrue(wait_for(lambda: not self.t.result(
            "nvmf_subsystem_get_qpairs", {"nqn": NQN})))
        self.assertTrue(wait_for(lambda: not self.t.result(
            "nvmf_subsystem_get_controllers", {"nqn": NQN})))

    # ---- delay

    def test_delay(self):
        _, (io,) = self.host(io_queues=1)
        self.inject(action="delay", queue="io", opcode=2, delay_us=300000)
        t0 = time.time()
        c = io.wait(io.read(1, 0, 1))
        self.assertTrue(c.ok)
        self.assertGreaterEqual(time.time() - t0, 0.29)
        t0 = time.time()
        self.assertTrue(io.wait(io.write(1, 0, b"\0" * BS)).ok)
        self.assertLess(time.time() - t0, 0.2, "writes are not in the delay's scope")
        self.t.result("nvmf_fault_clear")
        t0 = time.time()
        self.assertTrue(io.wait(io.read(1, 0, 1)).ok)
        self.assertLess(time.time() - t0, 0.2)

    def test_delayed_command_aborted(self):
        admin, (io,) = self.host(io_queues=1)
        self.inject(action="delay", queue="io", opcode=2, delay_us=5000000)
        cid = io.read(1, 0, 1)
        time.sleep(0.1)
        self.assertEqual(admin.abort(io.qid, cid).cdw0 & 1, 0)
        self.assertEqual(io.wait(cid, timeout=1).sc, 0x07)

    # ---- controller-wide actions

    def test_cfs_seen_by_property_get_and_cleared_by_reset(self):
        admin, _ = self.host(io_queues=1)
        self.assertEqual(admin.prop_get(0x1c) & 2, 0)
        self.inject(action="cfs", cntlid=admin.cntlid)
        self.assertEqual(admin.prop_get(0x1c) & 3, 3, "CSTS.CFS and RDY")
        admin.prop_set(0x14, 0)  # CC.EN=0: controller reset
        self.assertEqual(admin.prop_get(0x1c) & 2, 0)
        kinds = [f["action"] for f in self.t.result("nvmf_fault_list")]
        self.assertEqual(kinds, ["cfs"])

    def test_drop_connection(self):
        admin, (io, _) = self.host()
        self.inject(action="drop_connection")
        for q in (admin, io):
            with self.assertRaises((ConnectionError, OSError)):
                q.sock.settimeout(3)
                while True:
                    q.poll(3)
        self.assertTrue(wait_for(lambda: not self.t.result(
            "nvmf_subsystem_get_controllers", {"nqn": NQN})))
        # The host reconnects and I/O resumes.
        _, (io2, _) = self.host()
        self.assertTrue(io2.wait(io2.read(1, 0, 1)).ok)

    # ---- control plane

    def test_listed_and_cleared(self):
        methods = self.t.result("rpc_get_methods")
        for m in ("nvmf_fault_inject", "nvmf_fault_list", "nvmf_fault_clear"):
            self.assertIn(m, methods)
        a = self.inject(action="delay", delay_us=10)
        b = self.inject(action="status", sc=6, queue="io", nsid=1, count=3)
        self.assertEqual([f["id"] for f in self.t.result("nvmf_fault_list")], [a, b])
        self.assertEqual(self.t.result("nvmf_fault_list", {"nqn": "nqn.2016-06.io.spdk:x"}), [])
        self.assertTrue(self.t.result("nvmf_fault_clear", {"id": a}))
        self.assertEqual([f["id"] for f in self.t.result("nvmf_fault_list")], [b])
        e = self.t.call("nvmf_fault_clear", {"id": a})["error"]
        self.assertEqual(e["code"], -2)
        self.assertIn(f"no fault with id {a}", e["message"])

    def test_bad_requests_leave_nothing(self):
        bad = [
            ({"action": "explode"}, "unknown action 'explode'"),
            ({"action": "status", "sc": 0}, "Successful Completion"),
            ({"action": "status"}, "sc"),
            ({"action": "status", "sc": 6, "opcode": 2}, "needs queue admin or io"),
            ({"action": "status", "sc": 6, "probability": 1.5}, "outside 0..1"),
            ({"action": "status", "sc": 6, "seed": 3}, "seed goes with probability"),
            ({"action": "delay"}, "delay_us"),
            ({"action": "delay", "delay_us": 5, "sc": 4}, "'sc' applies to action status"),
            ({"action": "cfs", "opcode": 1}, "'opcode' applies to action"),
            ({"action": "cfs"}, "no host is connected"),
            ({"action": "surprise_remove"}, "no DOCA function plugged"),
            ({"action": "status", "sc": 6, "queue": "both"}, "must be admin or io"),
        ]
        for params, text in bad:
            e = self.t.call("nvmf_fault_inject", {"nqn": NQN, **params}).get("error")
            self.assertIsNotNone(e, params)
            self.assertIn(text, e["message"], params)
        e = self.t.call("nvmf_fault_inject", {"nqn": "nqn.2016-06.io.spdk:none",
                                              "action": "cfs"})["error"]
        self.assertEqual(e["code"], -32602)
        self.assertIn("Unable to find subsystem", e["message"])
        self.assertEqual(self.t.result("nvmf_fault_list"), [])

    def test_nvemu_rpc_subcommands(self):
        import subprocess
        from harness import RPC
        run = lambda *a: subprocess.run([RPC, "-s", self.t.sock, *a], capture_output=True,  # noqa
                                        text=True, timeout=10)
        r = run("nvmf_fault_inject", NQN, "status", "-q", "io", "-o", "2", "--sct", "2", "--sc",
                "129", "--dnr", "--count", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        fid = int(r.stdout)
        r = run("nvmf_fault_list")
        self.assertIn('"sc": 129', r.stdout)
        self.assertIn('"dnr": true', r.stdout)
        r = run("nvmf_fault_clear", "-i", str(fid))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.t.result("nvmf_fault_list"), [])


class DocaFaultTest(unittest.TestCase):
    """PCIe functions (DOCA over vfio-user) held by nvemu's own host driver."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.doca_dir = tempfile.mkdtemp(prefix="nvemu-doca-")
        cls.t = Target(("-m", "0x1"), env={"NVEMU_DOCA_DIR": cls.doca_dir})
        cls.t.result("bdev_malloc_create", {"name": "M0", "num_blocks": 4096, "block_size": BS})
        cls.t.result("nvmf_create_transport", {"trtype": "DOCA"})
        cls.t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        cls.t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M0"}})

    @classmethod
    def tearDownClass(cls):
        import shutil
        stop_clean(cls.t)
        shutil.rmtree(cls.doca_dir, ignore_errors=True)

    def plug_and_hold(self):
        import subprocess
        from harness import BIN_DIR
        vuid = self.t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        self.t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "DOCA", "traddr": vuid}})
        trid = f"trtype:VFIOUSER traddr:{self.doca_dir}/{vuid}"
        holder = subprocess.Popen([os.path.join(BIN_DIR, "nvemu-host"), "-r", trid, "hold",
                                   "--seconds", "30"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.assertIn('"held":true', holder.stdout.readline())
        fn = [f for f in self.t.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
              if f["vuid"] == vuid][0]
        self.assertEqual(fn["state"], "enabled")
        return vuid, holder, fn

    def test_surprise_remove(self):
        vuid, holder, _ = self.plug_and_hold()
        fid = self.t.result("nvmf_fault_inject", {"nqn": NQN, "action": "surprise_remove",
                                                  "vuid": vuid})
        _, err = holder.communicate(timeout=10)
        self.assertEqual(holder.returncode, 1)
        self.assertIn("went away", err)
        self.assertEqual(self.t.result("nvmf_subsystem_get_listeners", {"nqn": NQN}), [])
        fn = [f for f in self.t.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
              if f["vuid"] == vuid][0]
        self.assertEqual(fn["state"], "created")
        self.assertEqual(self.t.result("nvmf_fault_list")[0]["hits"], 1)
        self.t.result("nvmf_fault_clear", {"id": fid})
        self.assertTrue(self.t.result("nvmf_doca_destroy_function",
                                      {"dev_name": "nvemu0", "vuid": vuid}))

    def test_drop_connection_closes_the_client_socket(self):
        vuid, holder, fn = self.plug_and_hold()
        try:
            self.t.result("nvmf_fault_inject", {"nqn": NQN, "action": "drop_connection",
                                                "cntlid": fn["cntlid"]})
            _, err = holder.communicate(timeout=10)
            self.assertEqual(holder.returncode, 1, err)
            self.assertTrue(wait_for(lambda: [
                f for f in self.t.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
                if f["vuid"] == vuid][0]["state"] == "listening"))
        finally:
            self.release(holder, vuid)

    def release(self, holder, vuid):
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
        self.t.result("nvmf_fault_clear")
        self.t.result("nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": {
            "trtype": "DOCA", "traddr": vuid}})
        self.t.result("nvmf_doca_destroy_function", {"dev_name": "nvemu0", "vuid": vuid})

    def test_cfs_on_a_pcie_function(self):
        vuid, holder, fn = self.plug_and_hold()
        try:
            self.t.result("nvmf_fault_inject", {"nqn": NQN, "action": "cfs"})
            _, err = holder.communicate(timeout=10)
            self.assertEqual(holder.returncode, 1, err)
            self.assertIn("CSTS.CFS=1", err)
        finally:
            self.release(holder, vuid)


if __name__ == "__main__":
    run_unittest_main()
