#!/usr/bin/env python3
"""A DOCA function survives kill -9 + restart from --config-autosave: the
restarted target recreates the function with the same VUID (also when an
earlier function was destroyed, so a replay in creation order would number
them differently), plugs it on the same socket path at once (the killed
target's socket file is stale), and nvemu-host attached over vfio-user reads
back the bytes it wrote before the kill. Prints "N passed, N failed"."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
NQN = "nqn.2016-06.io.spdk:docarestart"


class DocaRestart(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="nvemu-doca-restart-")
        self.doca = os.path.join(self.work, "doca")
        self.auto = os.path.join(self.work, "config.json")
        self.env = {"NVEMU_DOCA_DIR": self.doca}
        self.tgts = []

    def tearDown(self):
        for t in self.tgts:
            if t.alive():
                t.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def target(self, *args):
        t = harness.Target(("-m", "0x1", *args, "--config-autosave", self.auto), env=self.env)
        self.tgts.append(t)
        return t

    def error(self, t, method, params):
        r = t.call(method, params)
        self.assertIn("error", r, r)
        return r["error"]

    def host(self, vuid, *args):
        trid = f"trtype:VFIOUSER traddr:{self.doca}/{vuid}"
        out = subprocess.run([HOST, "-r", trid, *args], capture_output=True, text=True,
                             timeout=60)
        return out.returncode, out.stdout, out.stderr

    def test_function_comes_back_with_its_vuid_socket_and_data(self):
        t = self.target()
        backing = os.path.join(self.work, "ns.img")
        with open(backing, "wb") as f:
            f.truncate(8 << 20)
        t.result("bdev_uring_create", {"name": "File0", "filename": backing,
                                       "block_size": 512})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                           "serial_number": "NVEMU00000000RESTART"})
        t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "File0"}})
        t.result("nvmf_create_transport", {"trtype": "DOCA"})
        first = t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        vuid = t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        t.result("nvmf_doca_destroy_function", {"dev_name": "nvemu0", "vuid": first})
        t.result("nvmf_subsystem_add_listener",
                 {"nqn": NQN, "listen_address": {"trtype": "DOCA", "traddr": vuid}})
        rc, out, err = self.host(vuid, "write-verify", "--nsid", "1", "--lba", "64",
                                 "--blocks", "256", "--seed", "5")
        self.assertEqual(rc, 0, err + out)
        with tempfile.NamedTemporaryFile() as f:
            rc, _, err = self.host(vuid, "read", "--nsid", "1", "--lba", "64", "--blocks", "256",
                                   "--out", f.name)
            self.assertEqual(rc, 0, err)
            before = f.read()
        with open(self.auto) as f:
            saved = json.load(f)
        entries = [e for s in saved["subsystems"] if s["subsystem"] == "nvmf"
                   for e in s["config"]]
        self.assertIn({"method": "nvmf_doca_create_function",
                       "params": {"dev_name": "nvemu0", "vuid": vuid}}, entries)

        t.proc.kill()  # SIGKILL: the socket file stays behind, stale
        t.proc.wait()
        sock = os.path.join(self.doca, vuid, "cntrl")
        self.assertTrue(os.path.exists(sock))
        t2 = self.target("-c", self.auto)
        fns = t2.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
        self.assertEqual([(f["vuid"], f["state"]) for f in fns], [(vuid, "listening")])
        rc, out, err = self.host(vuid, "identify")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["sn"], "NVEMU00000000RESTART")
        with tempfile.NamedTemporaryFile() as f:
            rc, _, err = self.host(vuid, "read", "--nsid", "1", "--lba", "64", "--blocks", "256",
                                   "--out", f.name)
            self.assertEqual(rc, 0, err)
            self.assertEqual(f.read(), before)
        # A new function after the restart does not take the restored VUID.
        self.assertNotEqual(t2.result("nvmf_doca_create_function", {"dev_name": "nvemu0"}), vuid)

    def test_vuid_param_is_checked(self):
        t = self.target()
        vuid = t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        err = self.error(t, "nvmf_doca_create_function", {"dev_name": "nvemu0", "vuid": vuid})
        self.assertEqual(err["code"], -17, err)
        self.assertIn(f"function {vuid} already exists", err["message"])
        err = self.error(t, "nvmf_doca_create_function", {"dev_name": "nvemu0", "vuid": "a/b"})
        self.assertEqual(err["code"], -32602, err)
        self.assertIn("without '/'", err["message"])
        fns = t.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
        self.assertEqual([f["vuid"] for f in fns], [vuid])


if __name__ == "__main__":
    harness.run_unittest_main()
