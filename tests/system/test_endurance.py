"""Endurance: NVMe/TCP connect/disconnect cycles and DOCA function
create/plug/unplug/destroy cycles leave nvemu-tgt's open fds, threads and RSS
flat. Counts come from NVEMU_ENDURANCE_TCP / NVEMU_ENDURANCE_DOCA (defaults
small enough for `make test`); scripts/endurance.sh runs the full 10,000 /
1,000 and prints the figures docs/faults.md quotes."""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Target, free_port, run_unittest_main, stop_clean  # noqa: E402
from nvme_tcp_client import connect  # noqa: E402

NQN = "nqn.2016-06.io.spdk:endurance"
TCP_CYCLES = int(os.environ.get("NVEMU_ENDURANCE_TCP", "3000"))
DOCA_CYCLES = int(os.environ.get("NVEMU_ENDURANCE_DOCA", "300"))
RSS_GROWTH = 0.05


def usage(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"fds": fds, "threads": threads, "rss_kb": rss}


def settle(t, pid, pred, timeout=10.0):
    """Waits until the target has let go of what the last cycle used."""
    deadline = time.time() + timeout
    while time.time() < deadline and not pred():
        time.sleep(0.05)
    return usage(pid)


class Endurance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doca_dir = tempfile.mkdtemp(prefix="nvemu-doca-")
        # Under ASan, freed memory sits in its quarantine and reads as RSS
        # growth; without the quarantine RSS measures what nvemu keeps.
        asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                                    "thread_local_quarantine_size_kb=0") if o)
        cls.t = Target(("-m", "0x3"), env={"NVEMU_DOCA_DIR": cls.doca_dir, "ASAN_OPTIONS": asan})
        cls.pid = cls.t.proc.pid
        cls.port = free_port()
        t = cls.t
        t.result("bdev_malloc_create", {"name": "M0", "num_blocks": 2048, "block_size": 512})
        t.result("nvmf_create_transport", {"trtype": "TCP"})
        t.result("nvmf_create_transport", {"trtype": "DOCA"})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M0"}})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(cls.port)}})
        cls.figures = {}

    @classmethod
    def tearDownClass(cls):
        print("ENDURANCE " + json.dumps(cls.figures), file=sys.stderr)
        stop_clean(cls.t)
        shutil.rmtree(cls.doca_dir, ignore_errors=True)

    def check_flat(self, name, cycles, one_cycle):
        no_ctrlrs = lambda: not self.t.result("nvmf_subsystem_get_controllers", {"nqn": NQN})  # noqa
        warm = max(cycles // 10, 20)
        for _ in range(warm):
            one_cycle()
        base = settle(self.t, self.pid, no_ctrlrs)
        t0 = time.time()
        for _ in range(cycles):
            one_cycle()
        secs = time.time() - t0
        # Sockets close a pass after their controller goes: a leak stays.
        end = settle(self.t, self.pid,
                     lambda: no_ctrlrs() and usage(self.pid)["fds"] <= base["fds"])
        growth = (end["rss_kb"] - base["rss_kb"]) / base["rss_kb"]
        self.figures[name] = {"cycles": cycles, "warmup": warm, "seconds": round(secs, 1),
                              "before": base, "after": end,
                              "rss_growth_pct": round(growth * 100, 2)}
        # A leak is growth. The baseline may still hold the last warm-up
        # socket (it closes a pass after its controller), so fewer is fine.
        self.assertLessEqual(end["fds"], base["fds"], self.figures[name])
        self.assertEqual(end["threads"], base["threads"], self.figures[name])
        self.assertLess(growth, RSS_GROWTH, self.figures[name])
        self.assertTrue(self.t.alive())

    def test_tcp_connect_disconnect(self):
        def cycle():
            admin, ios = connect(self.port, NQN, io_queues=1)
            c = ios[0].wait(ios[0].read(1, 0, 1))
            assert c.ok, c
            for q in (*ios, admin):
                q.close()

        self.check_flat("tcp", TCP_CYCLES, cycle)

    def test_doca_function_cycles(self):
        t = self.t

        def cycle():
            vuid = t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
            addr = {"trtype": "DOCA", "traddr": vuid}
            t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": addr})
            assert os.path.exists(os.path.join(self.doca_dir, vuid, "cntrl"))
            t.result("nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": addr})
            t.result("nvmf_doca_destroy_function", {"dev_name": "nvemu0", "vuid": vuid})

        self.check_flat("doca", DOCA_CYCLES, cycle)
        self.assertEqual(t.result("nvmf_doca_list_functions", {"dev_name": "nvemu0"}), [])


if __name__ == "__main__":
    run_unittest_main()
