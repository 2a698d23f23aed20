#!/usr/bin/env python3
"""The issue's "done when": the record's workflow (seed steps 4-10) runs to
the end. Same start command line, default socket /var/tmp/spdk.sock and the
record's own client, unchanged; where the record failed,
`nvmf_create_transport {"trtype":"DOCA"}` now succeeds, and the flow goes on:
create a function on the emulation manager, plug it with
nvmf_subsystem_add_listener -t DOCA, drive it with nvemu-host (nvemu's own
PCIe host driver over vfio-user), and check that a held function cannot be
destroyed (the record's BAD_RES_STATE_ERR, now a sentence naming the
function, its state, its holder and the fix).

Like test_record_flow.py, the test re-executes itself in a private mount
namespace with a temp dir over /var/tmp. Prints "N passed, N failed"."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

CLIENT = os.path.join(os.path.dirname(__file__), "record_client.py")
HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
RECORD_CMD = ["-m", "0x3", "--main-core", "0", "-s", "1024", "--no-pci", "--wait-for-rpc"]
NQN = "nqn.2016-06.io.spdk:cnode1"
DOCA_DIR = "/var/tmp/nvemu-doca"   # the default ($NVEMU_DOCA_DIR is unset below)
EBUSY, ENODEV = -16, -19


def client(method, params=None):
    """The record's client, as the record ran it: method [params-json]."""
    args = [sys.executable, CLIENT, method] + ([json.dumps(params)] if params is not None else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"record client failed: {out.stderr}")
    return json.loads(out.stdout)


def result(method, params=None):
    r = client(method, params)
    if "error" in r:
        raise AssertionError(f"{method} {params}: {r['error']}")
    return r["result"]


def error(method, params=None):
    r = client(method, params)
    if "error" not in r:
        raise AssertionError(f"{method} {params} succeeded ({r.get('result')!r}); "
                             "expected an error")
    return r["error"]


def host(vuid, *args, timeout=60):
    trid = f"trtype:VFIOUSER traddr:{DOCA_DIR}/{vuid}"
    out = subprocess.run([HOST, "-r", trid, *args], capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def pattern(seed, byte_addr, length):
    """nvemu-host's write-verify pattern (splitmix64 of the 8-byte word index)."""
    mask = (1 << 64) - 1
    out = bytearray()
    for word in range(byte_addr // 8, (byte_addr + length) // 8):
        z = (seed + (word + 1) * 0x9e3779b97f4a7c15) & mask
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out)


class DocaFlow(unittest.TestCase):
    failed_step = None
    st = {}

    @classmethod
    def setUpClass(cls):
        cls.tgt = harness.Target(RECORD_CMD, sock="/var/tmp/spdk.sock",
                                 env=harness.no_hugepages_env())

    @classmethod
    def tearDownClass(cls):
        holder = cls.st.get("holder")
        if holder and holder.poll() is None:
            holder.kill()
            holder.wait()
        # Stop it here (not in stop(), which deletes its log) so the log
        # holds whatever it printed on the way out, e.g. a sanitizer report.
        cls.tgt.interrupt()
        log = cls.tgt.output()
        rc = cls.tgt.stop()
        if cls.failed_step or rc != 0:
            print(f"first failed step: {cls.failed_step}; nvemu-tgt exited {rc}; its log:\n"
                  + log[-4000:])
        if rc != 0:
            raise AssertionError(f"nvemu-tgt exited {rc} on SIGINT (a crash or sanitizer "
                                 "report?)")

    def setUp(self):
        if DocaFlow.failed_step:
            self.skipTest(f"an earlier step failed: {DocaFlow.failed_step}")

    def run(self, result=None):
        # Steps depend on each other: remember the first failure.
        r = super().run(result)
        res = result or r
        if res and (res.failures or res.errors) and not DocaFlow.failed_step:
            DocaFlow.failed_step = self.id().rsplit(".", 1)[-1]
        return r

    def functions(self):
        return result("nvmf_doca_list_functions", {"dev_name": self.st["manager"]})

    def function(self):
        fns = [f for f in self.functions() if f["vuid"] == self.st["vuid"]]
        self.assertEqual(len(fns), 1, fns)
        return fns[0]

    def test_1_record_steps_4_to_10(self):
        r = client("spdk_get_version")
        self.assertEqual(r["result"]["fields"],
                         {"major": 23, "minor": 1, "patch": 0, "suffix": ""})
        self.assertEqual(client("framework_start_init"),
                         {"jsonrpc": "2.0", "id": 1, "result": True})
        self.assertEqual(result("bdev_malloc_create",
                                {"name": "Malloc0", "num_blocks": 1048576, "block_size": 512}),
                         "Malloc0")
        self.assertIs(result("nvmf_create_subsystem",
                             {"nqn": NQN, "allow_any_host": True,
                              "serial_number": "SPDK00000000000001"}), True)
        self.assertEqual(result("nvmf_subsystem_add_ns",
                                {"nqn": NQN, "namespace": {"bdev_name": "Malloc0"}}), 1)
        managers = result("nvmf_doca_get_managers")
        self.assertGreaterEqual(len(managers), 1, managers)
        self.st["manager"] = managers[0]["name"]

    def test_2_create_doca_transport(self):
        # The record's failing step, exactly as it was sent.
        self.assertEqual(client("nvmf_create_transport", {"trtype": "DOCA"}),
                         {"jsonrpc": "2.0", "id": 1, "result": True})
        transports = result("nvmf_get_transports")
        self.assertIn("DOCA", [t["trtype"] for t in transports])

    def test_3_create_function(self):
        vuid = result("nvmf_doca_create_function", {"dev_name": self.st["manager"]})
        self.assertIsInstance(vuid, str)
        self.assertTrue(vuid)
        self.st["vuid"] = vuid
        f = self.function()
        self.assertEqual(f["state"], "created")
        self.assertIsNone(f["socket"])
        self.assertFalse(os.path.exists(f"{DOCA_DIR}/{vuid}/cntrl"))

    def test_4_plug_function(self):
        vuid = self.st["vuid"]
        self.assertIs(result("nvmf_subsystem_add_listener",
                             {"nqn": NQN, "listen_address": {"trtype": "DOCA",
                                                             "traddr": vuid}}), True)
        sock = f"{DOCA_DIR}/{vuid}/cntrl"
        harness.wait_for(lambda: os.path.exists(sock), f"{sock} to appear")
        f = self.function()
        self.assertEqual(f["state"], "listening")
        self.assertEqual(f["socket"], sock)
        self.assertEqual(f["subnqn"], NQN)
        subs = result("nvmf_get_subsystems")
        cnode1 = [s for s in subs if s["nqn"] == NQN][0]
        self.assertIn({"trtype": "DOCA", "traddr": vuid},
                      [{k: a.get(k) for k in ("trtype", "traddr")}
                       for a in cnode1["listen_addresses"]])

    def test_5_host_identify_and_io(self):
        vuid = self.st["vuid"]
        rc, out, err = host(vuid, "identify")
        self.assertEqual(rc, 0, err)
        ident = json.loads(out)
        self.assertEqual(ident["sn"], "SPDK00000000000001")
        self.assertEqual(ident["subnqn"], NQN)
        ns1 = [n for n in ident["namespaces"] if n["nsid"] == 1][0]
        self.assertEqual(ns1["nsze"], 1048576)
        self.assertEqual(ns1["lbads"], 9)
        # 4 MiB pattern, written, read back and compared by nvemu-host.
        rc, out, err = host(vuid, "write-verify", "--nsid", "1", "--lba", "2048",
                            "--blocks", "8192", "--seed", "97")
        self.assertEqual(rc, 0, err + out)
        wv = json.loads(out)
        self.assertTrue(wv["ok"], wv)
        self.assertEqual(wv["bytes"], 8192 * 512)
        # And independently: a later attach reads the same bytes.
        with tempfile.NamedTemporaryFile() as f:
            rc, out, err = host(vuid, "read", "--nsid", "1", "--lba", "4000", "--blocks", "64",
                                "--out", f.name)
            self.assertEqual(rc, 0, err)
            self.assertEqual(f.read(), pattern(97, 4000 * 512, 64 * 512))
        f = self.function()
        self.assertEqual(f["state"], "listening")   # nvemu-host detached again

    def test_5b_write_verify_catches_lost_data(self):
        # nvemu-host's check has teeth: a namespace that drops writes (null
        # bdev) fails write-verify with the first mismatching offset.
        vuid = self.st["vuid"]
        self.assertEqual(result("bdev_null_create",
                                {"name": "Null1", "num_blocks": 2048, "block_size": 512}),
                         "Null1")
        self.assertEqual(result("nvmf_subsystem_add_ns",
                                {"nqn": NQN, "namespace": {"bdev_name": "Null1", "nsid": 2}}), 2)
        rc, out, err = host(vuid, "write-verify", "--nsid", "2", "--lba", "16", "--blocks", "8")
        self.assertEqual(rc, 1, out + err)
        self.assertFalse(json.loads(out)["ok"])
        self.assertIn("mismatch at byte offset 0 from LBA 16", err)
        self.assertIs(result("nvmf_subsystem_remove_ns", {"nqn": NQN, "nsid": 2}), True)
        self.assertIs(result("bdev_null_delete", {"name": "Null1"}), True)

    def test_6_held_function_refuses_destroy(self):
        vuid, m = self.st["vuid"], self.st["manager"]
        trid = f"trtype:VFIOUSER traddr:{DOCA_DIR}/{vuid}"
        holder = subprocess.Popen([HOST, "-r", trid, "hold", "--seconds", "120"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.st["holder"] = holder
        line = holder.stdout.readline()
        if not line:
            self.fail(f"nvemu-host hold printed nothing: {holder.stderr.read()}")
        self.assertTrue(json.loads(line)["held"])
        f = self.function()
        self.assertIn(f["state"], ("host attached", "enabled"))
        self.assertEqual(f["state"], "enabled")   # hold sets CC.EN and waits for RDY
        self.assertEqual(f["host_pid"], holder.pid)
        e = error("nvmf_doca_destroy_function", {"dev_name": m, "vuid": vuid})
        self.assertEqual(e["code"], EBUSY, e)
        msg = e["message"]
        for part in (vuid, "'enabled'", f"pid {holder.pid}", "nvmf_subsystem_remove_listener",
                     "detach the host driver"):
            self.assertIn(part, msg)
        # The function is still there and still held.
        self.assertEqual(self.function()["state"], "enabled")

        holder.send_signal(signal.SIGTERM)
        self.assertEqual(holder.wait(10), 0, holder.stderr.read())
        harness.wait_for(lambda: self.function()["state"] == "listening", "the holder to detach")
        self.assertNotIn("host_pid", self.function())

    def test_7_listening_function_refuses_destroy(self):
        vuid, m = self.st["vuid"], self.st["manager"]
        e = error("nvmf_doca_destroy_function", {"dev_name": m, "vuid": vuid})
        self.assertEqual(e["code"], EBUSY, e)
        for part in (vuid, "'listening'", f"nvmf_subsystem_remove_listener {NQN} -t DOCA "
                                          f"-a {vuid}"):
            self.assertIn(part, e["message"])

    def test_8_unplug_and_destroy(self):
        vuid, m = self.st["vuid"], self.st["manager"]
        self.assertIs(result("nvmf_subsystem_remove_listener",
                             {"nqn": NQN, "listen_address": {"trtype": "DOCA",
                                                             "traddr": vuid}}), True)
        sock = f"{DOCA_DIR}/{vuid}/cntrl"
        harness.wait_for(lambda: not os.path.exists(sock), f"{sock} to go away")
        f = self.function()
        self.assertEqual(f["state"], "created")
        self.assertIsNone(f["socket"])
        self.assertIs(result("nvmf_doca_destroy_function", {"dev_name": m, "vuid": vuid}), True)
        self.assertEqual(self.functions(), [])
        self.assertTrue(self.tgt.alive())

    def test_9_unknown_function_and_manager(self):
        m = self.st["manager"]
        e = error("nvmf_doca_destroy_function", {"dev_name": m, "vuid": "NOSUCHVUID"})
        self.assertEqual(e["code"], ENODEV, e)
        self.assertIn("NOSUCHVUID", e["message"])
        e = error("nvmf_doca_create_function", {"dev_name": "mlx5_0"})
        self.assertEqual(e["code"], ENODEV, e)
        self.assertIn("mlx5_0", e["message"])
        for known in result("nvmf_doca_get_managers"):
            self.assertIn(known["name"], e["message"])
        self.assertTrue(self.tgt.alive())


def in_private_var_tmp():
    """Re-executes this file with a fresh dir bound over /var/tmp."""
    if os.environ.get("NVEMU_PRIVATE_VAR_TMP") == "1":
        return
    scratch = tempfile.mkdtemp(prefix="nvemu-vartmp-")
    script = (f'mount --bind "{scratch}" /var/tmp && '
              f'exec "{sys.executable}" "{os.path.abspath(__file__)}"')
    env = {k: v for k, v in os.environ.items() if k != "NVEMU_DOCA_DIR"}
    env["NVEMU_PRIVATE_VAR_TMP"] = "1"
    rc = subprocess.call(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         env=env)
    subprocess.call(["rm", "-rf", scratch])
    raise SystemExit(rc)


if __name__ == "__main__":
    in_private_var_tmp()
    harness.run_unittest_main()
