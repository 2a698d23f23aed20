#!/usr/bin/env python3
"""nvemu-doctor finds each of the record's four failures when they are
staged — a hugepage shortage (the meminfo override preflight's tests use), a
stale and a live RPC socket, a DOCA function a host holds — and --explain maps
the record's error lines to cause and fix. Exit codes 0 / 1 / 2."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

DOCTOR = os.path.join(harness.BIN_DIR, "nvemu-doctor")
HOST = os.path.join(harness.BIN_DIR, "nvemu-host")
DATA = os.path.join(os.path.dirname(__file__), "data", "record-errors.log")


def doctor(*args, env=None):
    p = subprocess.run([DOCTOR, "--json", *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **(env or {})})
    return p.returncode, json.loads(p.stdout)


def findings(report, check):
    return [f for f in report["findings"] if f["check"] == check]


class Doctor(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nvemu-doctor-")
        self.free = os.path.join(self.dir, "free.sock")
        self.port = str(harness.free_port())

    def base(self):
        # Checks pointed at paths and ports of this test only.
        return ["-r", self.free, "-p", self.port]

    def test_clean_system_exits_0(self):
        rc, r = doctor(*self.base(), env=harness.no_hugepages_env())
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["exit_code"], 0)
        self.assertEqual(findings(r, "rpc-socket")[0]["status"], "ok")

    def test_hugepage_shortage_from_the_records_numbers(self):
        # The record: -s 1024 asked, 928 MB free (464 of 512 pages).
        mi = os.path.join(self.dir, "meminfo")
        with open(mi, "w") as f:
            f.write("MemTotal: 24000000 kB\nHugePages_Total: 512\nHugePages_Free: 464\n"
                    "Hugepagesize: 2048 kB\n")
        rc, r = doctor("-s", "1024", *self.base(), env={"NVEMU_MEMINFO": mi})
        self.assertEqual(rc, 1, r)
        h = findings(r, "hugepages")[0]
        self.assertEqual(h["status"], "problem")
        self.assertIn("only 464 of 512 are free", h["message"])
        self.assertIn("HugePages_Free", h["message"])
        self.assertIn("echo 560 > /proc/sys/vm/nr_hugepages", h["fix"])
        self.assertIn("at most 928 MB", h["fix"])
        # The same numbers with -s that fits: no problem.
        rc, r = doctor("-s", "900", *self.base(), env={"NVEMU_MEMINFO": mi})
        self.assertEqual(findings(r, "hugepages")[0]["status"], "ok", r)

    def test_stale_socket(self):
        path = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()  # the file stays, nobody listens: a dead daemon's leftover
        rc, r = doctor("-r", path, "-p", self.port, env=harness.no_hugepages_env())
        self.assertEqual(rc, 1, r)
        f = findings(r, "rpc-socket")[0]
        self.assertEqual(f["status"], "problem")
        self.assertIn("stale", f["message"])
        self.assertEqual(f["fix"], f"rm {path}")
        self.assertTrue(os.path.exists(path), "the doctor must not change anything")

    def test_port_in_use_is_a_problem_only_before_start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = str(s.getsockname()[1])
            rc, r = doctor("-r", self.free, "-p", port, env=harness.no_hugepages_env())
            self.assertEqual(rc, 0, r)
            f = findings(r, "ports")[0]
            self.assertEqual(f["status"], "warning", r)
            self.assertEqual(f["detail"]["listeners"][0]["pid"], os.getpid())
            rc, r = doctor("-b", "-r", self.free, "-p", port, env=harness.no_hugepages_env())
            self.assertEqual(rc, 1, r)
            self.assertEqual(findings(r, "ports")[0]["status"], "problem", r)

    def test_not_a_socket_and_bad_usage(self):
        path = os.path.join(self.dir, "file")
        open(path, "w").close()
        rc, r = doctor("-r", path, "-p", self.port, env=harness.no_hugepages_env())
        self.assertEqual(rc, 1)
        self.assertIn("not a socket", findings(r, "rpc-socket")[0]["message"])
        p = subprocess.run([DOCTOR, "-s", "lots"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("-s 'lots' must be a number of megabytes", p.stderr)

    def test_cpumask_outside_online_cpus(self):
        rc, r = doctor("-m", "0x80000000", *self.base(), env=harness.no_hugepages_env())
        self.assertEqual(rc, 1, r)
        f = findings(r, "cpumask")[0]
        self.assertIn("core(s) 31 are not online", f["message"])
        self.assertIn("start with -m 0x", f["fix"])

    def test_explain_unreadable_file_exits_2(self):
        rc, r = doctor("--explain", os.path.join(self.dir, "missing.log"))
        self.assertEqual(rc, 2, r)
        self.assertEqual(r["findings"][0]["status"], "unknown")

    def test_explain_the_records_log(self):
        rc, r = doctor("--explain", DATA)
        self.assertEqual(rc, 1, r)
        by = {f["detail"]["error"]: f for f in r["findings"]}
        errors = list(by)

        def one(prefix):
            hits = [e for e in errors if e.startswith(prefix)]
            self.assertEqual(len(hits), 1, (prefix, errors))
            return by[hits[0]]

        eal = one("EAL: 1024 MB requested, 928 MB")
        self.assertIn("HugePages_Free", eal["detail"]["cause"])
        self.assertIn("nr_hugepages", eal["fix"])
        sock = one("RPC socket /var/tmp/spdk.sock in use")
        self.assertIn("stale", sock["detail"]["cause"])
        self.assertIn("removes a stale socket", sock["detail"]["nvemu"])
        doca = one("Transport type 'DOCA' create failed")
        self.assertIn("hides the layer", doca["detail"]["cause"])
        fw = one("firmware BAD_RES_STATE_ERR (0x9) for PRM command 0xb2d (syndrome 0x83d555)")
        self.assertIn("only to real BlueField", fw["detail"]["bluefield"])
        self.assertIn("holder's pid", fw["detail"]["nvemu"])
        drv = one("emulated NVMe function 08:00.0 is bound to the nvme driver")
        self.assertIn("echo 08:00.0 > /sys/bus/pci/drivers/nvme/unbind", drv["fix"])
        pf = one("mlxconfig: NVME_EMULATION_NUM_PF=1 but NUM_OF_PF=2")
        self.assertIn("NVME_EMULATION_NUM_PF=2", pf["fix"])
        self.assertEqual(len(errors), 6, errors)
        # Each is reported at the line it stands on.
        with open(DATA) as f:
            lines = f.read().splitlines()
        self.assertIn("Not enough memory", lines[eal["detail"]["line"] - 1])
        self.assertIn("BAD_RES_STATE_ERR", lines[fw["detail"]["line"] - 1])

    def test_explain_a_clean_log(self):
        path = os.path.join(self.dir, "ok.log")
        with open(path, "w") as f:
            f.write("[2025-10-15] app.c: *NOTICE*: Total cores available: 2\n")
        rc, r = doctor("--explain", path)
        self.assertEqual(rc, 0, r)
        self.assertIn("no known error lines", r["findings"][0]["message"])


class DoctorWithTarget(unittest.TestCase):
    """A live socket and a held DOCA function: a real nvemu-tgt and nvemu-host."""

    def test_live_socket_and_held_function(self):
        doca_dir = tempfile.mkdtemp(prefix="nvemu-doca-")
        env = {**harness.no_hugepages_env(), "NVEMU_DOCA_DIR": doca_dir}
        with harness.Target(args=("-m", "0x1"), env=env) as tgt:
            nqn = "nqn.2016-06.io.spdk:cnode1"
            tgt.result("bdev_malloc_create", {"name": "Malloc0", "num_blocks": 8192,
                                              "block_size": 512})
            tgt.result("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True})
            tgt.result("nvmf_subsystem_add_ns", {"nqn": nqn,
                                                 "namespace": {"bdev_name": "Malloc0"}})
            tgt.result("nvmf_create_transport", {"trtype": "DOCA"})
            manager = tgt.result("nvmf_doca_get_managers")[0]["name"]
            vuid = tgt.result("nvmf_doca_create_function", {"dev_name": manager})
            tgt.result("nvmf_subsystem_add_listener",
                       {"nqn": nqn, "listen_address": {"trtype": "DOCA", "traddr": vuid}})
            port = str(harness.free_port())

            # Live socket, no holder yet.
            rc, r = doctor("-r", tgt.sock, "-p", port, env=env)
            live = findings(r, "rpc-socket")[0]
            self.assertEqual(live["status"], "warning", r)
            self.assertEqual(live["detail"]["pid"], tgt.proc.pid)
            self.assertIn("nvemu-tgt", live["detail"]["cmdline"])
            self.assertIn(f"kill {tgt.proc.pid}", live["fix"])
            fn = findings(r, "doca")[0]
            self.assertEqual(fn["status"], "ok", r)
            self.assertIn(f"function {vuid} of {manager} is 'listening'", fn["message"])
            self.assertEqual(rc, 0, r)
            # About to start a second target on that socket: the record's failure.
            rc, r = doctor("--before-start", "-r", tgt.sock, "-p", port, env=env)
            self.assertEqual(rc, 1, r)
            self.assertEqual(findings(r, "rpc-socket")[0]["status"], "problem", r)
            self.assertIn("in use", findings(r, "rpc-socket")[0]["message"])

            holder = subprocess.Popen(
                [HOST, "-r", f"trtype:VFIOUSER traddr:{doca_dir}/{vuid}", "hold", "--seconds",
                 "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = holder.stdout.readline()
                if not line:
                    self.fail(f"nvemu-host hold printed nothing: {holder.stderr.read()}")
                self.assertTrue(json.loads(line)["held"])
                rc, r = doctor("-r", tgt.sock, "-p", port, env=env)
                held = findings(r, "doca")[0]
                self.assertEqual(held["status"], "warning", r)
                self.assertIn(f"held by host pid {holder.pid}", held["message"])
                self.assertIn("nvemu-host", held["message"])
                self.assertIn(f"nvmf_subsystem_remove_listener {nqn} -t DOCA -a {vuid}",
                              held["fix"])
                # Human output says the same.
                p = subprocess.run([DOCTOR, "-r", tgt.sock, "-p", port], capture_output=True,
                                   text=True, env={**os.environ, **env})
                self.assertIn(f"held by host pid {holder.pid}", p.stdout)
            finally:
                holder.kill()
                holder.wait()
                holder.stdout.close()
                holder.stderr.close()


if __name__ == "__main__":
    harness.run_unittest_main()
