#!/usr/bin/env python3
"""The bad-input matrix of the control plane: every JSON-RPC error class, bad
params per method, start-up refusals (hugepages, sockets). After each, the
daemon must keep serving."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class JsonRpcErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tgt = harness.Target(("-m", "0x1", "--wait-for-rpc"))

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()

    def setUp(self):
        self.assertTrue(self.tgt.alive())

    def tearDown(self):
        # Whatever the test sent, the daemon still answers.
        self.assertEqual(self.tgt.call("spdk_get_version")["result"]["fields"]["major"], 23)

    def err(self, method, params=None):
        reply = self.tgt.call(method, params)
        self.assertIn("error", reply, f"{method} {params} unexpectedly succeeded: {reply}")
        return reply["error"]

    def test_a_state_before_init(self):
        e = self.err("bdev_get_bdevs")
        self.assertEqual(e["code"], -1)
        self.assertEqual(e["message"], "Method may only be called after framework is initialized "
                         "using framework_start_init RPC.")
        names = self.tgt.result("rpc_get_methods", {"current": True})
        self.assertIn("framework_start_init", names)
        self.assertNotIn("bdev_malloc_create", names)
        e = self.err("sock_set_default_impl", {"impl_name": "ssl"})
        self.assertEqual(e["code"], -32602)
        self.assertIn("impl_name 'ssl'", e["message"])
        self.assertIn("no TLS sockets; use posix or uring", e["message"])
        self.assertEqual(self.tgt.result("sock_set_default_impl", {"impl_name": "posix"}), True)
        self.assertEqual(self.tgt.result("framework_start_init"), True)
        e = self.err("sock_set_default_impl", {"impl_name": "uring"})  # SPDK: start-up only
        self.assertEqual(e["code"], -1)
        e = self.err("framework_start_init")
        self.assertEqual(e["code"], -1)
        self.assertIn("before framework is initialized", e["message"])

    def test_parse_error_closes_only_that_connection(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.tgt.sock)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"spdk_get_version"} {"jsonrpc": 2.0,, }')
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        lines = [json.loads(x) for x in data.decode().splitlines()]
        self.assertIn("result", lines[0])
        self.assertEqual(lines[1]["error"], {"code": -32700, "message": "Parse error"})

    def test_garbage_outside_json(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.tgt.sock)
            s.sendall(b"hello\n")
            reply = json.loads(s.recv(65536).decode())
        self.assertEqual(reply["error"]["code"], -32700)

    def test_invalid_request(self):
        for bad in ({"jsonrpc": "1.0", "id": 1, "method": "spdk_get_version"},
                    {"jsonrpc": "2.0", "id": 1, "method": 5},
                    {"jsonrpc": "2.0", "id": 1},
                    {"jsonrpc": "2.0", "id": 1, "method": "spdk_get_version", "params": 3},
                    [1, 2]):
            reply = self.tgt.raw(json.dumps(bad).encode())
            self.assertEqual(reply["error"]["code"], -32600, bad)
            self.assertEqual(reply["error"]["message"], "Invalid request")

    def test_method_not_found(self):
        e = self.err("no_such_method")
        self.assertEqual(e, {"code": -32601, "message": "Method not found"})

    def test_notification_gets_no_reply(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.tgt.sock)
            s.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version"}'
                      b'{"jsonrpc":"2.0","id":7,"method":"spdk_get_version"}')
            reply = s.recv(65536).decode()
        lines = reply.splitlines()
        self.assertEqual(len(lines), 1)
        self.assertEqual(json.loads(lines[0])["id"], 7)

    def test_split_and_back_to_back(self):
        req = json.dumps({"jsonrpc": "2.0", "id": "abc", "method": "spdk_get_version"}).encode()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.tgt.sock)
            for i in range(0, len(req), 7):  # trickled in 7-byte pieces
                s.sendall(req[i:i + 7])
                time.sleep(0.005)
            s.sendall(req + b"\n" + req)     # two at once
            data = b""
            while data.count(b"\n") < 3:
                data += s.recv(65536)
        replies = [json.loads(x) for x in data.decode().splitlines()]
        self.assertEqual([r["id"] for r in replies], ["abc"] * 3)

    def test_concurrent_clients(self):
        errors = []

        def worker(n):
            try:
                for i in range(40):
                    r = self.tgt.call("spdk_get_version", req_id=n * 1000 + i)
                    if r["id"] != n * 1000 + i:
                        errors.append(r)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class BadParams(unittest.TestCase):
    """Wrong or missing parameters for every method: -32602 naming the field,
    or SPDK's errno codes where SPDK uses them."""

    @classmethod
    def setUpClass(cls):
        cls.tgt = harness.Target(("-m", "0x1",))
        cls.tgt.result("bdev_malloc_create", {"name": "M0", "num_blocks": 64, "block_size": 512})
        cls.tgt.result("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:c1"})

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()

    def tearDown(self):
        self.assertTrue(self.tgt.alive())

    def expect(self, method, params, code, *words):
        reply = self.tgt.call(method, params)
        self.assertIn("error", reply, f"{method} {params}: {reply}")
        self.assertEqual(reply["error"]["code"], code, f"{method} {params}: {reply}")
        for w in words:
            self.assertIn(w, reply["error"]["message"], f"{method} {params}")

    def test_bdev_params(self):
        self.expect("bdev_malloc_create", {"name": "X", "block_size": 512}, -32602, "num_blocks")
        self.expect("bdev_malloc_create", {"name": "X", "num_blocks": "8", "block_size": 512},
                    -32602, "num_blocks", "unsigned integer")
        self.expect("bdev_malloc_create", {"name": "X", "num_blocks": -8, "block_size": 512},
                    -32602, "num_blocks")
        self.expect("bdev_malloc_create", {"name": "X", "num_blocks": 8, "block_size": 512,
                                           "colour": "red"}, -32602, "colour")
        self.expect("bdev_malloc_create", {"name": "X", "num_blocks": 8, "block_size": 500},
                    -22, "block_size")
        self.expect("bdev_malloc_create", {"name": "X", "num_blocks": 0, "block_size": 512},
                    -22, "num_blocks")
        self.expect("bdev_malloc_create", {"name": "M0", "num_blocks": 8, "block_size": 512},
                    -17, "File exists", "M0")
        self.expect("bdev_malloc_create", {"name": "U", "num_blocks": 8, "block_size": 512,
                                           "uuid": "not-a-uuid"}, -32602, "uuid")
        self.expect("bdev_malloc_delete", {"name": "nope"}, -19, "No such device", "nope")
        self.expect("bdev_malloc_delete", {}, -32602, "name")
        self.expect("bdev_null_create", {"name": "N", "num_blocks": 8}, -32602, "block_size")
        self.expect("bdev_null_delete", {"name": "M0"}, -19, "malloc")
        self.expect("bdev_uring_create", {"name": "R", "filename": "/nonexistent/file"}, -22,
                    "/nonexistent/file")
        self.expect("bdev_get_bdevs", {"name": "nope"}, -19, "nope")
        self.expect("bdev_get_iostat", {"name": 3}, -32602, "name")

    def test_nvmf_params(self):
        nqn = "nqn.2016-06.io.spdk:c1"
        self.expect("nvmf_create_subsystem", {}, -32602, "nqn")
        self.expect("nvmf_create_subsystem", {"nqn": "bad"}, -32603, "nqn.")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.16-06.io.spdk:x"}, -32603, "date")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk"}, -32603, "':'")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:" + "x" * 220},
                    -32603, "223")
        self.expect("nvmf_create_subsystem", {"nqn": nqn}, -32603, "already exists")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:c2",
                                              "serial_number": "x" * 21}, -32602, "SN")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:c2",
                                              "min_cntlid": 5, "max_cntlid": 2}, -32602, "cntlid")
        self.expect("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.spdk:c2",
                                              "allow_any_host": "yes"}, -32602, "allow_any_host")
        self.expect("nvmf_delete_subsystem", {"nqn": "nqn.2016-06.io.spdk:none"}, -32602,
                    "nqn.2016-06.io.spdk:none")
        self.expect("nvmf_subsystem_add_ns", {"nqn": nqn}, -32602, "namespace")
        self.expect("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {}}, -32602, "bdev_name")
        self.expect("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": "nope"}},
                    -32602, "nope")
        self.expect("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": "M0",
                                                                        "nguid": "12"}},
                    -32602, "nguid")
        self.expect("nvmf_subsystem_add_ns", {"nqn": "nqn.2014-08.org.nvmexpress.discovery",
                                              "namespace": {"bdev_name": "M0"}}, -32602,
                    "discovery")
        self.assertEqual(self.tgt.result("nvmf_subsystem_add_ns",
                                         {"nqn": nqn, "namespace": {"bdev_name": "M0",
                                                                    "nsid": 5}}), 5)
        self.expect("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": "M0"}},
                    -32602, "already used")
        self.expect("nvmf_subsystem_remove_ns", {"nqn": nqn, "nsid": 9}, -32602, "9")
        self.expect("nvmf_subsystem_add_host", {"nqn": nqn, "host": "bad"}, -32602, "host")
        self.expect("nvmf_subsystem_remove_host", {"nqn": nqn,
                                                   "host": "nqn.2014-08.org.nvmexpress:uuid:"
                                                   "11111111-2222-3333-4444-555555555555"},
                    -32602, "allow list")
        self.expect("nvmf_subsystem_allow_any_host", {"nqn": nqn}, -32602, "allow_any_host")
        self.expect("nvmf_create_transport", {}, -32602, "trtype")
        self.expect("nvmf_create_transport", {"trtype": "PCIE"}, -32602, "PCIE")
        self.expect("nvmf_create_transport", {"trtype": "TCP", "max_queue_depth": "x"}, -32602,
                    "max_queue_depth")
        self.expect("nvmf_subsystem_add_listener",
                    {"nqn": nqn, "listen_address": {"trtype": "TCP", "traddr": "127.0.0.1",
                                                    "trsvcid": "99999"}}, -32602, "trsvcid")
        self.expect("nvmf_subsystem_remove_listener",
                    {"nqn": nqn, "listen_address": {"trtype": "TCP", "traddr": "127.0.0.1",
                                                    "trsvcid": "4420"}}, -32602, "no listener")
        self.expect("nvmf_subsystem_get_controllers", {"nqn": "nqn.2016-06.io.spdk:none"},
                    -32602, "none")
        self.expect("log_set_flag", {"flag": "nonsense"}, -32602, "nonsense")
        self.expect("log_set_level", {"level": "LOUD"}, -32602, "LOUD")
        self.expect("spdk_kill_instance", {"sig_name": "SIGFOO"}, -32602, "SIGFOO")
        self.expect("framework_get_config", {"name": "nope"}, -32602, "nope")


class StartupRefusals(unittest.TestCase):
    def run_tgt(self, args, env=None, timeout=10):
        return subprocess.run([harness.TGT, *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})

    def test_hugepage_shortage_with_the_records_numbers(self):
        with tempfile.NamedTemporaryFile("w", suffix=".meminfo") as f:
            f.write("MemTotal: 131000000 kB\nHugePages_Total:    1024\nHugePages_Free:      464\n"
                    "HugePages_Rsvd:        0\nHugePages_Surp:        0\n"
                    "Hugepagesize:       2048 kB\n")
            f.flush()
            sock = tempfile.mktemp(prefix="nvemu-hp-", suffix=".sock")
            out = self.run_tgt(["-m", "0x1", "-s", "1024", "-r", sock, "--wait-for-rpc"],
                               env={"NVEMU_MEMINFO": f.name})
        self.assertEqual(out.returncode, 1, out.stderr)
        msg = out.stderr
        self.assertIn("needs 512 pages of 2048 kB", msg)
        self.assertIn("only 464 of 1024 are free", msg)
        self.assertIn("HugePages_Free", msg)
        self.assertIn("echo 1072 > /proc/sys/vm/nr_hugepages", msg)
        self.assertIn("48 missing pages", msg)
        self.assertFalse(os.path.exists(sock))

    def test_enough_hugepages_and_none_configured(self):
        with tempfile.NamedTemporaryFile("w", suffix=".meminfo") as f:
            f.write("HugePages_Total: 2048\nHugePages_Free: 1488\nHugepagesize: 2048 kB\n")
            f.flush()
            with harness.Target(("-m", "0x1", "-s", "1024"), env={"NVEMU_MEMINFO": f.name}) as t:
                self.assertTrue(t.alive())
        with tempfile.NamedTemporaryFile("w", suffix=".meminfo") as f:
            f.write("HugePages_Total: 0\nHugePages_Free: 0\nHugepagesize: 2048 kB\n")
            f.flush()
            with harness.Target(("-m", "0x1", "-s", "1024"), env={"NVEMU_MEMINFO": f.name}) as t:
                self.assertIn("no hugepages configured", t.output())

    def test_second_daemon_on_a_live_socket_is_refused(self):
        with harness.Target(("-m", "0x1",)) as first:
            out = self.run_tgt(["-m", "0x1", "-r", first.sock])
            self.assertEqual(out.returncode, 1)
            self.assertIn(f"pid {first.proc.pid}", out.stderr)
            self.assertIn("-r ", out.stderr)
            self.assertTrue(first.alive())
            self.assertEqual(first.call("spdk_get_version")["id"], 1)

    def test_foreign_live_owner_is_refused(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "spdk.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        try:
            out = self.run_tgt(["-m", "0x1", "-r", path])
            self.assertEqual(out.returncode, 1)
            self.assertIn(f"pid {os.getpid()}", out.stderr)
            self.assertTrue(os.path.exists(path))
        finally:
            srv.close()

    def test_stale_socket_is_removed(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "spdk.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the file stays, nobody listens: what a crashed target leaves
        with harness.Target(("-m", "0x1", "-r", path), sock=path) as t:
            self.assertIn("removed stale RPC socket", t.output())
            self.assertEqual(t.call("spdk_get_version")["id"], 1)

    def test_bad_command_lines(self):
        for args, words in ((["-m", "0xZ"], ["-m/--cpumask", "hex"]),
                            (["-m", "0x1", "--main-core", "1"], ["--main-core 1", "not in"]),
                            (["-m", "0x400"], ["core 10", "not available"]),
                            (["-s", "lots"], ["-s/--mem-size"]),
                            (["--bogus"], ["unknown option --bogus"])):
            out = self.run_tgt(args + ["-r", tempfile.mktemp(suffix=".sock")])
            self.assertEqual(out.returncode, 1, args)
            for w in words:
                self.assertIn(w, out.stderr, args)


if __name__ == "__main__":
    harness.run_unittest_main()
