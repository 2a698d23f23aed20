#!/usr/bin/env python3
"""System test of nvemu-rpc, nvemu's rpc.py, against the real nvemu-tgt.

Runs the record's configuration workflow through nvemu-rpc sub-commands on
a daemon started with --wait-for-rpc on a private socket, checks what each
prints and its exit status (0 ok, 1 error reply / no target, 2 bad command
line), and that save_config -> load_config into a second daemon reproduces
the same save_config.

Environment: NVEMU_BIN_DIR = the built apps directory (holds nvemu-tgt and
nvemu-rpc); defaults to ../../build/apps from this file.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("NVEMU_BIN_DIR", os.path.join(HERE, "..", "..", "build", "apps"))
TGT = os.path.join(BIN_DIR, "nvemu-tgt")
RPC = os.path.join(BIN_DIR, "nvemu-rpc")

NQN = "nqn.2016-06.io.spdk:cnode1"
SERIAL = "SPDK00000000000001"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"


class Target:
    """One nvemu-tgt on a private socket, started with --wait-for-rpc."""

    def __init__(self, workdir, name):
        self.sock = os.path.join(workdir, name + ".sock")
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([TGT, "-m", "0x1", "-r", self.sock, "--wait-for-rpc"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nvemu-tgt exited (%s); log:\n%s" % (self.proc.returncode,
                                                                      self.read_log()))
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nvemu-tgt did not open %s; log:\n%s" % (self.sock, self.read_log()))

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def rpc(self, *args, **kw):
        return rpc(*args, sock=self.sock, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def rpc(*args, sock=None, input=None, timeout=60):
    """Runs nvemu-rpc [-s sock] args...; returns the CompletedProcess."""
    cmd = [RPC] + (["-s", sock] if sock else []) + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcTestCase(unittest.TestCase):
    def ok(self, r, msg=""):
        self.assertEqual(r.returncode, 0, "%s\nstdout:\n%s\nstderr:\n%s" % (msg, r.stdout, r.stderr))
        return r.stdout

    def ok_json(self, r):
        return json.loads(self.ok(r))


class CommandLineTest(RpcTestCase):
    """What needs no target: help, usage errors, --dry-run, no socket."""

    def test_help_lists_commands(self):
        out = self.ok(rpc("-h"))
        for name in ("spdk_get_version", "bdev_malloc_create", "nvmf_subsystem_add_ns",
                     "nvmf_doca_create_function", "save_config", "load_config", "call"):
            self.assertIn("    " + name, out)

    def test_subcommand_help(self):
        out = self.ok(rpc("bdev_malloc_create", "-h"))
        self.assertIn("usage: nvemu-rpc [options] bdev_malloc_create [-h] [-b NAME]", out)
        self.assertIn("total_size", out)
        self.assertIn("-u UUID, --uuid UUID", out)

    def test_usage_errors_exit_2(self):
        cases = [
            (["bdev_malloc_create", "-b", "Malloc0"],
             "the following arguments are required: total_size, block_size"),
            (["bdev_malloc_create", "x", "512"], "argument total_size: invalid float value: 'x'"),
            (["nvmf_create_transport"], "the following arguments are required: -t/--trtype"),
            (["nvmf_subsystem_remove_ns", NQN, "one"], "argument nsid: invalid int value: 'one'"),
            (["bdev_get_bdevs", "--bogus"], "unrecognized arguments: --bogus"),
            (["no_such_method"], "invalid choice: 'no_such_method'"),
            (["call", "x", "{not json"], "argument params: invalid JSON object or array"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                r = rpc(*argv, sock="/nonexistent/never.sock")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)

    def test_dry_run_shows_rpc_py_params(self):
        r = rpc("--dry-run", "bdev_malloc_create", "-b", "Malloc0", "512", "512")
        out = self.ok(r)
        req = json.loads(out[out.index("{"):])
        self.assertEqual(req, {"method": "bdev_malloc_create",
                               "params": {"num_blocks": 1048576, "block_size": 512,
                                          "name": "Malloc0"}})
        out = self.ok(rpc("--dry-run", "nvmf_subsystem_add_listener", NQN, "-t", "tcp",
                          "-a", "127.0.0.1", "-s", "4420"))
        req = json.loads(out[out.index("{"):])
        self.assertEqual(req["params"], {"nqn": NQN, "listen_address": {
            "trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420"}})

    def test_no_target(self):
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "missing.sock")
            r = rpc("spdk_get_version", sock=sock)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Error while connecting to " + sock, r.stderr)
            self.assertIn("-s", r.stderr)


class WorkflowTest(RpcTestCase):
    """The record's workflow on one daemon, in order (test_NN_ names)."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="nvemu-rpc-test-")
        cls.tgt = Target(cls.workdir, "tgt")

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def rpc(self, *args, **kw):
        return self.tgt.rpc(*args, **kw)

    def test_01_version(self):
        v = self.ok_json(self.rpc("spdk_get_version"))
        self.assertIn("version", v)
        self.assertEqual(v["fields"]["major"], 23)

    def test_02_startup_methods(self):
        methods = self.ok_json(self.rpc("rpc_get_methods", "--current"))
        self.assertIn("framework_start_init", methods)
        self.assertNotIn("bdev_malloc_create", methods)

    def test_03_start_init(self):
        self.assertEqual(self.ok(self.rpc("framework_start_init")), "")
        self.ok(self.rpc("framework_wait_init"))
        methods = self.ok_json(self.rpc("rpc_get_methods", "-c"))
        self.assertIn("bdev_malloc_create", methods)
        self.assertNotIn("framework_start_init", methods)

    def test_04_malloc_bdev(self):
        self.assertEqual(self.ok(self.rpc("bdev_malloc_create", "-b", "Malloc0", "512", "512")),
                         "Malloc0\n")
        bdevs = self.ok_json(self.rpc("bdev_get_bdevs", "-b", "Malloc0"))
        self.assertEqual(len(bdevs), 1)
        self.assertEqual(bdevs[0]["num_blocks"], 1048576)
        self.assertEqual(bdevs[0]["block_size"], 512)
        stats = self.ok_json(self.rpc("bdev_get_iostat", "-b", "Malloc0"))
        self.assertIn("bdevs", stats)

    def test_05_null_bdev(self):
        self.assertEqual(self.ok(self.rpc("bdev_null_create", "Null0", "16", "4096")), "Null0\n")
        self.assertEqual(self.ok_json(self.rpc("bdev_get_bdevs", "-b", "Null0"))[0]["num_blocks"],
                         4096)
        self.assertEqual(self.ok(self.rpc("bdev_null_delete", "Null0")), "")

    def test_06_create_subsystem(self):
        self.assertEqual(self.ok(self.rpc("nvmf_create_subsystem", NQN, "-a", "-s", SERIAL)), "")

    def test_07_add_ns(self):
        self.assertEqual(self.ok(self.rpc("nvmf_subsystem_add_ns", NQN, "Malloc0")), "1\n")

    def test_08_get_subsystems(self):
        subs = self.ok_json(self.rpc("nvmf_get_subsystems"))
        sub = [s for s in subs if s["nqn"] == NQN]
        self.assertEqual(len(sub), 1)
        self.assertEqual(sub[0]["serial_number"], SERIAL)
        self.assertTrue(sub[0]["allow_any_host"])
        self.assertEqual([(n["nsid"], n["bdev_name"]) for n in sub[0]["namespaces"]],
                         [(1, "Malloc0")])
        one = self.ok_json(self.rpc("nvmf_get_subsystems", NQN))
        self.assertEqual([s["nqn"] for s in one], [NQN])
        self.assertEqual(self.ok_json(self.rpc("nvmf_subsystem_get_controllers", NQN)), [])
        self.assertEqual(self.ok_json(self.rpc("nvmf_subsystem_get_qpairs", NQN)), [])

    def test_09_hosts(self):
        self.ok(self.rpc("nvmf_subsystem_allow_any_host", NQN, "--disable"))
        sub = self.ok_json(self.rpc("nvmf_get_subsystems", NQN))[0]
        self.assertFalse(sub["allow_any_host"])
        self.ok(self.rpc("nvmf_subsystem_add_host", NQN, HOSTNQN))
        sub = self.ok_json(self.rpc("nvmf_get_subsystems", NQN))[0]
        self.assertEqual([h["nqn"] for h in sub["hosts"]], [HOSTNQN])
        self.ok(self.rpc("nvmf_subsystem_remove_host", NQN, HOSTNQN))
        self.ok(self.rpc("nvmf_subsystem_allow_any_host", NQN, "-e"))
        self.assertTrue(self.ok_json(self.rpc("nvmf_get_subsystems", NQN))[0]["allow_any_host"])

    def test_10_error_reply_exits_1(self):
        r = self.rpc("bdev_malloc_delete", "NoSuchBdev")
        self.assertEqual(r.returncode, 1)
        self.assertIn("request:", r.stderr)
        self.assertIn("Got JSON-RPC error response", r.stderr)
        self.assertIn('"method": "bdev_malloc_delete"', r.stderr)
        err = json.loads(r.stderr[r.stderr.index("response:\n") + len("response:\n"):])
        self.assertIn("code", err)
        self.assertIn("message", err)
        r = self.rpc("nvmf_create_subsystem", NQN, "-s", SERIAL)  # exists already
        self.assertEqual(r.returncode, 1)

    def test_11_raw_call(self):
        v = self.ok_json(self.rpc("call", "spdk_get_version"))
        self.assertIn("version", v)
        b = self.ok_json(self.rpc("call", "bdev_get_bdevs", '{"name": "Malloc0"}'))
        self.assertEqual(b[0]["name"], "Malloc0")
        r = self.rpc("call", "no_such_method")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Got JSON-RPC error response", r.stderr)

    def test_12_logs_and_framework(self):
        self.ok(self.rpc("log_set_flag", "nvmf"))
        self.assertTrue(self.ok_json(self.rpc("log_get_flags"))["nvmf"])
        self.ok(self.rpc("log_clear_flag", "nvmf"))
        self.assertFalse(self.ok_json(self.rpc("log_get_flags"))["nvmf"])
        self.ok(self.rpc("log_set_level", "INFO"))
        self.assertEqual(self.ok_json(self.rpc("log_get_level")), "INFO")
        self.ok(self.rpc("log_set_print_level", "NOTICE"))
        self.assertEqual(self.ok_json(self.rpc("log_get_print_level")), "NOTICE")
        self.assertTrue(self.ok_json(self.rpc("framework_get_reactors")))
        names = [s["subsystem"] for s in self.ok_json(self.rpc("framework_get_subsystems"))]
        self.assertIn("bdev", names)
        self.assertIn("nvmf", names)
        cfg = self.ok_json(self.rpc("framework_get_config", "bdev"))
        self.assertIn("bdev_malloc_create", [c["method"] for c in cfg])

    def test_13_tcp_transport_and_listener(self):
        # rpc.py v23.01's own params: every flag is sent (zcopy, no_srq,
        # c2h_success, ...) and SPDK ignores the ones TCP does not use.
        self.ok(self.rpc("nvmf_create_transport", "-t", "TCP", "-u", "16384", "-m", "8",
                         "-c", "8192"))
        t = self.ok_json(self.rpc("nvmf_get_transports", "--trtype", "TCP"))
        self.assertEqual(t[0]["trtype"], "TCP")
        self.assertEqual(t[0]["io_unit_size"], 16384)
        port = str(free_tcp_port())
        self.ok(self.rpc("nvmf_subsystem_add_listener", NQN, "-t", "tcp", "-a", "127.0.0.1",
                         "-s", port))
        ls = self.ok_json(self.rpc("nvmf_subsystem_get_listeners", NQN))
        self.assertEqual([l["address"]["trsvcid"] for l in ls], [port])
        self.ok(self.rpc("nvmf_subsystem_remove_listener", NQN, "-t", "tcp", "-a", "127.0.0.1",
                         "-s", port))
        self.assertEqual(self.ok_json(self.rpc("nvmf_subsystem_get_listeners", NQN)), [])
        self.assertIn("poll_groups", self.ok_json(self.rpc("nvmf_get_stats")))

    def test_14_doca_functions(self):
        managers = self.ok_json(self.rpc("nvmf_doca_get_managers"))
        self.assertTrue(managers)
        dev = managers[0]["name"]
        vuid = self.ok(self.rpc("nvmf_doca_create_function", "-d", dev)).strip()
        self.assertTrue(vuid)
        fns = self.ok_json(self.rpc("nvmf_doca_list_functions", "--dev-name", dev))
        self.assertIn(vuid, [f["vuid"] for f in fns])
        self.ok(self.rpc("nvmf_doca_destroy_function", "-d", dev, "-v", vuid))
        fns = self.ok_json(self.rpc("nvmf_doca_list_functions", "-d", dev))
        self.assertNotIn(vuid, [f["vuid"] for f in fns])

    def test_15_script_mode_and_verbose(self):
        out = self.ok(self.rpc(input="# comment\nspdk_get_version\nbdev_get_bdevs -b Malloc0\n"))
        self.assertIn('"version"', out)
        self.assertIn('"Malloc0"', out)
        r = self.rpc(input="spdk_get_version\nbdev_malloc_delete NoSuchBdev\nspdk_get_version\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bdev_malloc_delete NoSuchBdev <<<", r.stderr)
        r = rpc("-v", "bdev_get_bdevs", "-b", "Malloc0", sock=self.tgt.sock)
        self.ok(r)
        self.assertIn("INFO: Requests:", r.stderr)
        self.assertIn('"method": "bdev_get_bdevs"', r.stderr)

    def test_16_remove_and_delete(self):
        self.ok(self.rpc("bdev_malloc_create", "-b", "Malloc1", "8", "4096"))
        self.ok(self.rpc("nvmf_create_subsystem", "nqn.2016-06.io.spdk:cnode9", "-s", "SN9"))
        self.assertEqual(self.ok(self.rpc("nvmf_subsystem_add_ns", "nqn.2016-06.io.spdk:cnode9",
                                          "Malloc1", "-n", "7")), "7\n")
        self.ok(self.rpc("nvmf_subsystem_remove_ns", "nqn.2016-06.io.spdk:cnode9", "7"))
        self.ok(self.rpc("nvmf_delete_subsystem", "nqn.2016-06.io.spdk:cnode9"))
        self.ok(self.rpc("bdev_malloc_delete", "Malloc1"))
        self.assertEqual(self.rpc("bdev_get_bdevs", "-b", "Malloc1").returncode, 1)


class SaveLoadConfigTest(RpcTestCase):
    """save_config from a configured daemon, load_config into a fresh one
    (started with --wait-for-rpc): both then save the same configuration."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="nvemu-rpc-cfg-")
        self.targets = []

    def tearDown(self):
        for t in self.targets:
            t.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, name):
        t = Target(self.workdir, name)
        self.targets.append(t)
        return t

    def test_round_trip(self):
        a = self.start("a")
        for args in (["framework_start_init"],
                     ["bdev_malloc_create", "-b", "Malloc0", "512", "512"],
                     ["bdev_null_create", "Null0", "8", "512"],
                     ["nvmf_create_subsystem", NQN, "-a", "-s", SERIAL, "-d", "nvemu test"],
                     ["nvmf_subsystem_add_ns", NQN, "Malloc0"],
                     ["nvmf_subsystem_add_ns", NQN, "Null0", "-n", "5"],
                     ["nvmf_create_subsystem", "nqn.2016-06.io.spdk:cnode2", "-s", "SN2"],
                     ["nvmf_subsystem_add_host", "nqn.2016-06.io.spdk:cnode2", HOSTNQN]):
            self.ok(a.rpc(*args), " ".join(args))
        saved = self.ok(a.rpc("save_config"))
        config = json.loads(saved)
        methods = [c["method"] for s in config["subsystems"] for c in (s["config"] or [])]
        for m in ("bdev_malloc_create", "bdev_null_create", "nvmf_create_subsystem",
                  "nvmf_subsystem_add_ns", "nvmf_subsystem_add_host"):
            self.assertIn(m, methods)

        path = os.path.join(self.workdir, "config.json")
        self.ok(a.rpc("save_config", "-o", path))
        with open(path) as f:
            self.assertEqual(f.read(), saved)

        b = self.start("b")
        self.ok(b.rpc("load_config", "-j", path))
        self.assertEqual(self.ok(b.rpc("save_config")), saved)

        # From stdin too, into a third daemon.
        c = self.start("c")
        self.ok(c.rpc("load_config", input=saved))
        self.assertEqual(self.ok(c.rpc("save_config")), saved)

    def test_load_into_running_target_skips_startup_methods(self):
        a = self.start("a")
        self.ok(a.rpc("framework_start_init"))
        self.ok(a.rpc("bdev_malloc_create", "-b", "Malloc0", "16", "512"))
        saved = self.ok(a.rpc("save_config"))
        b = self.start("b")
        self.ok(b.rpc("framework_start_init"))
        r = b.rpc("load_config", input=saved)
        self.ok(r)
        # bdev_set_options may only run before framework_start_init: skipped, said so.
        self.assertIn("Some configs were skipped", r.stderr)
        self.assertIn("bdev_set_options", r.stderr)
        self.assertEqual(self.ok_json(b.rpc("bdev_get_bdevs", "-b", "Malloc0"))[0]["name"],
                         "Malloc0")


if __name__ == "__main__":
    for path in (TGT, RPC):
        if not os.access(path, os.X_OK):
            print("missing %s (set NVEMU_BIN_DIR to the built apps directory)" % path,
                  file=sys.stderr)
            sys.exit(1)
    unittest.main(verbosity=2)
