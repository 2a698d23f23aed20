#!/usr/bin/env python3
"""The record's workflow (seed steps 4-10), run exactly as the record ran it:
the record's start command line, the default socket /var/tmp/spdk.sock and
the record's own client, unchanged. The test re-executes itself in a private
mount namespace with a temp dir over /var/tmp, so the host's /var/tmp and
any target already running there are untouched."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

CLIENT = os.path.join(os.path.dirname(__file__), "record_client.py")
RECORD_CMD = ["-m", "0x3", "--main-core", "0", "-s", "1024", "--no-pci", "--wait-for-rpc"]


def client(*args):
    out = subprocess.run([sys.executable, CLIENT, *args], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"record client failed: {out.stderr}")
    return json.loads(out.stdout)


class RecordFlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The record's exact command line; it brings its own default socket.
        cls.tgt = harness.Target(RECORD_CMD, sock="/var/tmp/spdk.sock",
                                 env=harness.no_hugepages_env())

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()

    def test_steps_4_to_10(self):
        # Step 5: spdk_get_version, SPDK's shape; the string says nvemu.
        r = client("spdk_get_version")
        self.assertEqual(r["jsonrpc"], "2.0")
        self.assertEqual(r["id"], 1)
        self.assertIn("nvemu", r["result"]["version"])
        self.assertEqual(r["result"]["fields"],
                         {"major": 23, "minor": 1, "patch": 0, "suffix": ""})

        # Before framework_start_init, runtime methods are refused as SPDK does.
        r = client("bdev_malloc_create", '{"name":"Early","num_blocks":8,"block_size":512}')
        self.assertEqual(r["error"]["code"], -1)
        self.assertIn("framework_start_init", r["error"]["message"])

        # Step 6.
        self.assertEqual(client("framework_start_init"),
                         {"jsonrpc": "2.0", "id": 1, "result": True})
        # Step 7.
        self.assertEqual(
            client("bdev_malloc_create",
                   '{"name":"Malloc0","num_blocks":1048576,"block_size":512}'),
            {"jsonrpc": "2.0", "id": 1, "result": "Malloc0"})
        # Step 8.
        self.assertEqual(
            client("nvmf_create_subsystem",
                   '{"nqn":"nqn.2016-06.io.spdk:cnode1","allow_any_host":true,'
                   '"serial_number":"SPDK00000000000001"}'),
            {"jsonrpc": "2.0", "id": 1, "result": True})
        # Step 9.
        self.assertEqual(
            client("nvmf_subsystem_add_ns",
                   '{"nqn":"nqn.2016-06.io.spdk:cnode1","namespace":{"bdev_name":"Malloc0"}}'),
            {"jsonrpc": "2.0", "id": 1, "result": 1})
        # Step 10: the emulation managers.
        r = client("nvmf_doca_get_managers")
        self.assertIsInstance(r["result"], list)
        self.assertGreaterEqual(len(r["result"]), 1)
        for m in r["result"]:
            self.assertIsInstance(m["name"], str)

        # What the target now holds, through the same client.
        subs = client("nvmf_get_subsystems")["result"]
        cnode1 = [s for s in subs if s["nqn"] == "nqn.2016-06.io.spdk:cnode1"][0]
        self.assertEqual(cnode1["serial_number"], "SPDK00000000000001")
        self.assertTrue(cnode1["allow_any_host"])
        self.assertEqual(cnode1["namespaces"][0]["nsid"], 1)
        self.assertEqual(cnode1["namespaces"][0]["bdev_name"], "Malloc0")
        bdevs = client("bdev_get_bdevs", '{"name":"Malloc0"}')["result"]
        self.assertEqual(bdevs[0]["num_blocks"], 1048576)
        self.assertEqual(bdevs[0]["block_size"], 512)
        self.assertTrue(bdevs[0]["claimed"])
        self.assertTrue(self.tgt.alive())


def in_private_var_tmp():
    """Re-executes this file with a fresh tmpfs-like dir bound over /var/tmp."""
    if os.environ.get("NVEMU_PRIVATE_VAR_TMP") == "1":
        return False
    scratch = tempfile.mkdtemp(prefix="nvemu-vartmp-")
    script = (f'mount --bind "{scratch}" /var/tmp && '
              f'exec "{sys.executable}" "{os.path.abspath(__file__)}"')
    env = {**os.environ, "NVEMU_PRIVATE_VAR_TMP": "1"}
    rc = subprocess.call(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         env=env)
    subprocess.call(["rm", "-rf", scratch])
    raise SystemExit(rc)


if __name__ == "__main__":
    in_private_var_tmp()
    harness.run_unittest_main()
