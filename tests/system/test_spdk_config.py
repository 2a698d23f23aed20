#!/usr/bin/env python3
"""A configuration written by SPDK's own save_config replays in nvemu-tgt.

data/spdk-v23.01.1-nvmf_tgt-save_config.json is what SPDK v23.01.1's
nvmf_tgt wrote after the record's flow (a 512 MiB malloc bdev, one
subsystem with it as namespace 1, TCP and VFIOUSER transports and
listeners). It carries the methods every SPDK config has: the sock and
scheduler subsystems' options, bdev_nvme's, nvmf_set_max_subsystems and
nvmf_set_crdt. The test starts nvemu-tgt with `-c` on it (only the vfio-user
directory and the TCP port are changed) and checks what each entry set:
the subsystem and its listeners, the transports' options, the socket options
as reported and as applied to a connection's socket (ss), the CRDTs in
Identify Controller, the scheduler. Then the start-up-only and refused
cases of the new methods.
"""
import copy
import json
import os
import re
import subprocess
import time
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "data", "spdk-v23.01.1-nvmf_tgt-save_config.json")
NQN = "nqn.2016-06.io.spdk:cnode1"
HOST = os.path.join(harness.BIN_DIR, "nvemu-host")


def entries(cfg, method):
    return [e for s in cfg["subsystems"] for e in (s["config"] or []) if e["method"] == method]


def tcp_trid(port):
    return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"


def skmem(port):
    """ss's skmem of the target's end of a connection to `port`."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"skmem:\(([^)]*)\)", out)
    if not m:
        return None
    return {re.match(r"[a-z_]+", f).group(0): int(re.sub(r"^[a-z_]+", "", f))
            for f in m.group(1).split(",")}


def doubled_buf(requested, max_path):
    """What the kernel reports for SO_RCVBUF/SO_SNDBUF = requested: capped at
    net.core.{r,w}mem_max, then doubled."""
    with open(max_path) as f:
        cap = int(f.read())
    return 2 * min(requested, cap)


class SpdkConfigReplay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(FIXTURE) as f:
            cls.spdk = json.load(f)
        cfg = copy.deepcopy(cls.spdk)
        cls.port = harness.free_port()
        cls.tmp = harness.tempfile.mkdtemp(prefix="nvemu-spdkcfg-")
        cls.vfu = os.path.join(cls.tmp, "vfu")
        os.makedirs(cls.vfu)
        for e in entries(cfg, "nvmf_subsystem_add_listener"):
            a = e["params"]["listen_address"]
            if a["trtype"] == "TCP":
                a["trsvcid"] = str(cls.port)
            else:
                a["traddr"] = cls.vfu
        for e in entries(cfg, "nvmf_set_crdt"):
            e["params"] = {"crdt1": 5, "crdt2": 10, "crdt3": 20}
        cls.path = os.path.join(cls.tmp, "spdk.json")
        with open(cls.path, "w") as f:
            json.dump(cfg, f)
        cls.tgt = harness.Target(("-m", "0x1", "-c", cls.path))

    @classmethod
    def tearDownClass(cls):
        cls.tgt.stop()
        harness.shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_subsystem_listeners_and_namespace(self):
        subs = {s["nqn"]: s for s in self.tgt.result("nvmf_get_subsystems")}
        s = subs[NQN]
        want = entries(self.spdk, "nvmf_create_subsystem")[0]["params"]
        self.assertEqual(s["serial_number"], want["serial_number"])
        self.assertEqual(s["model_number"], want["model_number"])
        self.assertEqual([n["bdev_name"] for n in s["namespaces"]], ["Malloc0"])
        self.assertEqual(sorted((a["trtype"], a["trsvcid"]) for a in s["listen_addresses"]),
                         [("TCP", str(self.port)), ("VFIOUSER", "0")])
        bdev = self.tgt.result("bdev_get_bdevs", {"name": "Malloc0"})[0]
        self.assertEqual(bdev["num_blocks"] * bdev["block_size"], 512 << 20)

    def test_transport_options(self):
        got = {t["trtype"]: t for t in self.tgt.result("nvmf_get_transports")}
        for e in entries(self.spdk, "nvmf_create_transport"):
            want = e["params"]
            for key in ("max_queue_depth", "in_capsule_data_size", "max_io_size", "io_unit_size"):
                self.assertEqual(got[want["trtype"]][key], want[key], (want["trtype"], key))

    def test_socket_options_reported_and_applied(self):
        for e in entries(self.spdk, "sock_impl_set_options"):
            want = dict(e["params"])
            name = want.pop("impl_name")
            self.assertEqual(self.tgt.result("sock_impl_get_options", {"impl_name": name}), want)
        posix = entries(self.spdk, "sock_impl_set_options")[0]["params"]
        host = subprocess.Popen([HOST, "-r", tcp_trid(self.port), "hold", "--seconds", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            mem = None
            deadline = time.time() + 5
            while mem is None and time.time() < deadline:
                time.sleep(0.1)
                mem = skmem(self.port)
            self.assertIsNotNone(mem, "no established connection on the target's port")
            self.assertEqual(mem["rb"], doubled_buf(posix["recv_buf_size"],
                                                    "/proc/sys/net/core/rmem_max"))
            self.assertEqual(mem["tb"], doubled_buf(posix["send_buf_size"],
                                                    "/proc/sys/net/core/wmem_max"))
        finally:
            host.terminate()
            host.wait(10)

    def test_crdt_in_identify_controller(self):
        out = subprocess.run([HOST, "-r", tcp_trid(self.port), "identify"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual(json.loads(out.stdout)["crdt"], [5, 10, 20])

    def test_scheduler_and_saved_config(self):
        self.assertEqual(self.tgt.result("framework_get_scheduler"),
                         {"scheduler_name": "static", "scheduler_period": 1000000})
        saved = self.tgt.result("save_config")
        names = [s["subsystem"] for s in saved["subsystems"]]
        self.assertEqual(names, ["keyring", "sock", "bdev", "scheduler", "nvmf"])
        self.assertEqual(entries(saved, "nvmf_set_crdt")[0]["params"],
                         {"crdt1": 5, "crdt2": 10, "crdt3": 20})
        self.assertEqual(entries(saved, "nvmf_set_max_subsystems")[0]["params"],
                         {"max_subsystems": 1024})
        self.assertEqual({e["params"]["impl_name"] for e in entries(saved,
                                                                   "sock_impl_set_options")},
                         {"posix", "uring", "ssl"})


class NewMethodRefusals(unittest.TestCase):
    def setUp(self):
        self.tgt = harness.Target(("-m", "0x1", "--wait-for-rpc"))

    def tearDown(self):
        self.assertEqual(self.tgt.call("spdk_get_version")["result"]["fields"]["major"], 23)
        self.tgt.stop()

    def err(self, method, params=None):
        reply = self.tgt.call(method, params)
        self.assertIn("error", reply, f"{method} {params} unexpectedly succeeded: {reply}")
        return reply["error"]

    def test_start_up_methods_check_and_then_close(self):
        e = self.err("sock_impl_set_options", {"impl_name": "epoll"})
        self.assertEqual(e["code"], -32602)
        self.assertIn("impl_name 'epoll'", e["message"])
        e = self.err("sock_impl_set_options", {"impl_name": "posix", "tls_version": 11})
        self.assertEqual(e["code"], -32602)
        self.assertIn("tls_version 11", e["message"])
        e = self.err("sock_impl_set_options", {"impl_name": "posix", "recv_buf_sz": 1})
        self.assertEqual(e["code"], -32602)
        # A refused call changed nothing; a good one changes only what it names.
        before = self.tgt.result("sock_impl_get_options", {"impl_name": "posix"})
        self.assertEqual(self.tgt.result("sock_impl_set_options",
                                         {"impl_name": "posix", "send_buf_size": 4 << 20}), True)
        after = self.tgt.result("sock_impl_get_options", {"impl_name": "posix"})
        self.assertEqual(after, {**before, "send_buf_size": 4 << 20})
        e = self.err("sock_set_default_impl", {"impl_name": "ssl"})
        self.assertIn("no TLS", e["message"])
        e = self.err("framework_set_scheduler", {"name": "dynamic"})
        self.assertEqual(e["code"], -32602)
        self.assertIn("static scheduler only", e["message"])
        e = self.err("nvmf_set_max_subsystems", {"max_subsystems": 0})
        self.assertEqual(e["code"], -32602)
        e = self.err("bdev_nvme_set_hotplug", {"enable": True})
        self.assertIn("no local PCIe devices to hot plug", e["message"])
        self.assertEqual(self.tgt.result("nvmf_set_max_subsystems", {"max_subsystems": 2}), True)
        self.assertEqual(self.tgt.result("framework_start_init"), True)
        for method, params in (("sock_impl_set_options", {"impl_name": "posix"}),
                               ("nvmf_set_max_subsystems", {"max_subsystems": 8}),
                               ("nvmf_set_crdt", {"crdt1": 1})):
            self.assertEqual(self.err(method, params)["code"], -1, method)
        # Two subsystems in all, discovery included: one more NVMe subsystem.
        self.assertEqual(self.tgt.result("nvmf_create_subsystem", {"nqn": NQN}), True)
        e = self.err("nvmf_create_subsystem", {"nqn": NQN + "-2"})
        self.assertEqual(e["code"], -32603)
        self.assertIn("maximum of 2", e["message"])
        self.assertIn("nvmf_set_max_subsystems", e["message"])


if __name__ == "__main__":
    harness.run_unittest_main()
