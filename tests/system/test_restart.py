#!/usr/bin/env python3
"""System test of a namespace's identity and data across kill -9 + restart,
FLUSH durability on the file backend, and --config-autosave.

A uring bdev on a file is exported over NVMe/TCP; nvemu-host writes, flushes
and reads Identify Namespace (UUID, NGUID, EUI64). The target is killed
with SIGKILL and started again (1) with the same RPCs replayed — the same
bdev_uring_create without a uuid must give the same namespace UUID — and
(2) with -c of the file --config-autosave kept. Each time the identifiers
are equal and the flushed data reads back. Also: the autosaved file equals
save_config, is replaced atomically (no temp files left), and a bad
--config-autosave path is refused at start with the reason.

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

HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
NQN = "nqn.2016-06.io.spdk:restart1"


def trid(port):
    return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"


def host(port, *args, timeout=30):
    return subprocess.run([HOST, "-r", trid(port), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def identify(port):
    r = host(port, "identify")
    assert r.returncode == 0, r.stderr
    ns = json.loads(r.stdout)["namespaces"][0]
    return {k: ns.get(k) for k in ("uuid", "nguid", "eui64", "nsze")}


def read(port, lba, blocks):
    with tempfile.NamedTemporaryFile() as f:
        r = host(port, "read", "--lba", lba, "--blocks", blocks, "--out", f.name)
        assert r.returncode == 0, r.stderr
        return open(f.name, "rb").read()


def setup_rpcs(t, path, port):
    t.result("bdev_uring_create", {"name": "U0", "filename": path})
    t.result("nvmf_create_transport", {"trtype": "TCP"})
    t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
    t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "U0"}})
    t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


def kill9(t):
    t.proc.kill()
    t.proc.wait()
    t.log.close()


class Restart(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nvemu-restart-", dir="/var/tmp")
        self.file = os.path.join(self.dir, "disk.img")
        with open(self.file, "wb") as f:
            f.truncate(16 << 20)
        self.auto = os.path.join(self.dir, "autosave.json")
        self.port = harness.free_port()
        self.targets = []

    def tearDown(self):
        for t in self.targets:
            if t.alive():
                t.stop()
        subprocess.run(["rm", "-rf", self.dir])

    def start(self, *args):
        t = harness.Target(("-m", "0x1", *args))
        self.targets.append(t)
        return t

    def saved_config(self, t):
        r = subprocess.run([harness.RPC, "-s", t.sock, "save_config"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def autosaved(self):
        try:
            with open(self.auto) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def test_1_flush_is_a_real_sync_and_identity_survives_kill9(self):
        t = self.start("--config-autosave", self.auto)
        setup_rpcs(t, self.file, self.port)
        uuid = t.result("bdev_get_bdevs", {"name": "U0"})[0]["uuid"]
        self.assertEqual(uuid[14], "5", "a name-based (v5) UUID without a uuid parameter")
        ids = identify(self.port)
        self.assertEqual(ids["uuid"], uuid)
        r = host(self.port, "write-verify", "--lba", 0, "--blocks", 64, "--seed", 7)
        self.assertEqual(r.returncode, 0, r.stderr)
        flushes = t.result("bdev_get_iostat", {"name": "U0"})["bdevs"][0]["num_flush_ops"]
        r = host(self.port, "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["flushed"], True)
        st = t.result("bdev_get_iostat", {"name": "U0"})["bdevs"][0]
        self.assertEqual(st["num_flush_ops"], flushes + 1, "FLUSH reached the file backend")
        data = read(self.port, 0, 64)

        # Each RPC's reply came after its autosave: the file equals save_config now.
        self.assertEqual(self.autosaved(), self.saved_config(t))
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [])

        kill9(t)
        # (1) the same RPCs again: the same identity, the same data.
        t2 = self.start()
        setup_rpcs(t2, self.file, self.port)
        self.assertEqual(identify(self.port), ids)
        self.assertEqual(read(self.port, 0, 64), data)
        kill9(t2)

        # (2) -c of the autosaved file, autosaving on into the same file.
        t3 = self.start("-c", self.auto, "--config-autosave", self.auto)
        self.assertEqual(identify(self.port), ids)
        self.assertEqual(read(self.port, 0, 64), data)
        # a change after the restart is autosaved too
        t3.result("bdev_malloc_create", {"name": "M9", "num_blocks": 64, "block_size": 512})
        self.assertIn("M9", json.dumps(self.autosaved()), "autosaved before the reply")
        t3.stop()

    def test_2_bad_autosave_paths_are_refused_at_start(self):
        def start_fails(*args):
            p = subprocess.run([harness.TGT, "-m", "0x1", "-r",
                                os.path.join(self.dir, "x.sock"), *args],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            return p.stdout + p.stderr
        out = start_fails("--config-autosave", "/nonexistent-dir/cfg.json")
        self.assertIn("directory /nonexistent-dir does not exist", out)
        with open(self.auto, "w") as f:
            f.write("{}")
        out = start_fails("--config-autosave", self.auto)
        self.assertIn("would be overwritten", out)
        self.assertIn(f"-c {self.auto}", out)
        out = start_fails("--config-autosave", self.dir)
        self.assertIn("is a directory", out)

    def test_3_help_names_the_option(self):
        p = subprocess.run([harness.TGT, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("--config-autosave FILE", p.stdout + p.stderr)

    def test_4_bad_uuid_for_uring(self):
        t = self.start()
        r = t.call("bdev_uring_create", {"name": "U1", "filename": self.file, "uuid": "nope"})
        self.assertEqual(r["error"]["code"], -32602)
        self.assertIn("uuid 'nope' is not a UUID", r["error"]["message"])
        self.assertEqual(t.call("bdev_get_bdevs", {"name": "U1"})["error"]["code"], -19)
        u = "abcdef01-2345-6789-abcd-ef0123456789"
        t.result("bdev_uring_create", {"name": "U1", "filename": self.file, "uuid": u})
        self.assertEqual(t.result("bdev_get_bdevs", {"name": "U1"})[0]["uuid"], u)


if __name__ == "__main__":
    harness.run_unittest_main()
