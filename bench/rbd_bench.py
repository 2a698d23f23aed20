#!/usr/bin/env python3
"""nvemu's rbd bdev against librbd itself, on one single-node Ceph cluster.

One run: a test cluster (tests/system/ceph_cluster.py) with a 256 MiB image,
filled once so reads hit stored objects; then

  1. librbd straight: `rbd bench --io-type read --io-pattern rand
     --io-size 4K --io-threads 16` (16 reads in flight from one client);
  2. nvemu-tgt -m 0x1 (core 0) with that image as a namespace over NVMe/TCP,
     driven by nvemu-perf on core 1 at QD16, 4 KiB random reads;

and prints both IOPS, the ratio nvemu/librbd (goal >= 0.9) and the target's
CPU use during its run (utime+stime from /proc/PID/stat: nvemu's reactor
sleeps while librbd works, so the Ceph daemons get the cycles; SPDK's
reactor would spin at 100 %).

    bench/rbd.sh [BUILD_DIR]       (BENCH_SECONDS, default 10)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
import ceph_cluster  # noqa: E402
import harness  # noqa: E402

NQN = "nqn.2016-06.io.spdk:cnode1"
IMAGE_MIB = 256


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def thread_ticks(pid):
    """utime+stime per thread name (comm) of a process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[comm] = out.get(comm, 0) + int(fields[11]) + int(fields[12])
    return out


def librbd_run(ceph, seconds, pin=None):
    """rbd bench stops after --io-total bytes: size it from a short probe."""
    def bench(total):
        run = ceph.run
        if pin:
            def run(tool, *args, **kw):
                r = subprocess.run(["taskset", "-c", pin, tool, "--conf", ceph.conf,
                                    "--keyring", ceph.keyring, *args], capture_output=True,
                                   text=True, timeout=kw.get("timeout", 60))
                if r.returncode:
                    raise RuntimeError(r.stderr)
                return r.stdout
        out = run("rbd", "bench", "--io-type", "read", "--io-pattern", "rand",
                       "--io-size", "4K", "--io-threads", "16", "--io-total", str(total),
                       f"{ceph.pool}/bench", timeout=600)
        m = re.search(r"elapsed:\s*([\d.]+)\s+ops:\s*(\d+)\s+ops/sec:\s*([\d.]+)", out)
        if not m:
            raise RuntimeError(f"cannot parse rbd bench output:\n{out}")
        return float(m.group(3)), float(m.group(1)), out
    probe, _, _ = bench(4096 * 4000)
    iops, elapsed, out = bench(int(probe * seconds) * 4096)
    return iops, elapsed


def nvemu_run(ceph, bin_dir, seconds):
    tgt_bin = os.path.join(bin_dir, "nvemu-tgt")
    perf = os.path.join(bin_dir, "nvemu-perf")
    harness.TGT = tgt_bin
    port = harness.free_port()
    with harness.Target(args=("-m", "0x1")) as t:
        t.result("bdev_rbd_register_cluster", {"name": "ceph", "config_file": ceph.conf,
                                               "key_file": ceph.keyring})
        t.result("bdev_rbd_create", {"name": "rbd0", "pool_name": ceph.pool,
                                     "rbd_name": "bench", "block_size": 4096,
                                     "cluster_name": "ceph"})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "rbd0"}})
        t.result("nvmf_create_transport", {"trtype": "TCP"})
        t.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})
        trid = f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"
        cmd = [perf, "-q", "16", "-o", "4096", "-w", "randread", "-t", str(seconds),
               "-c", "0x2", "-r", trid, "--no-live"]
        with tempfile.NamedTemporaryFile(suffix=".json") as jf:
            hz = os.sysconf("SC_CLK_TCK")
            c0, w0, th0 = cpu_ticks(t.proc.pid), time.time(), thread_ticks(t.proc.pid)
            r0 = os.times()
            p = subprocess.run([*cmd, "--json", jf.name], capture_output=True, text=True,
                               timeout=seconds + 120)
            c1, w1, th1 = cpu_ticks(t.proc.pid), time.time(), thread_ticks(t.proc.pid)
            r1 = os.times()
            if p.returncode != 0:
                raise RuntimeError(f"nvemu-perf failed: {p.stderr}\n{t.output()[-3000:]}")
            doc = json.load(open(jf.name))
        wall = w1 - w0
        cpu = (c1 - c0) / hz / wall * 100
        threads = {k: round((th1.get(k, 0) - v) / hz / wall * 100)
                   for k, v in th0.items() if th1.get(k, 0) - v > 0}
        perf_cpu = ((r1.children_user - r0.children_user) +
                    (r1.children_system - r0.children_system)) / wall * 100
        print(f"target threads (% of a core): {threads}; nvemu-perf {perf_cpu:.0f} %",
              flush=True)
        ns = doc["namespaces"][0]
        return ns["iops"], ns.get("latency_us", {}).get("avg"), cpu, " ".join(cmd)


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "apps")
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    t0 = time.time()
    with ceph_cluster.CephCluster(osd_mib=IMAGE_MIB * 3) as ceph:
        print(f"cluster healthy in {time.time() - t0:.1f} s ({ceph.dir})", flush=True)
        ceph.create_image("bench", IMAGE_MIB)
        ceph.run("rbd", "bench", "--io-type", "write", "--io-pattern", "seq", "--io-size", "4M",
                 "--io-threads", "4", "--io-total", f"{IMAGE_MIB}M", f"{ceph.pool}/bench",
                 timeout=600)
        lib_iops, lib_s = librbd_run(ceph, seconds)
        print(f"librbd (rbd bench, 16 threads): {lib_iops:,.0f} IOPS over {lib_s:.1f} s",
              flush=True)
        if os.environ.get("BENCH_RBD_ONE_CORE", "1") == "1":
            # The CPU budget nvemu's side has: nvemu-perf holds core 1, so
            # rbd bench and the cluster's daemons share core 0 only.
            pids = subprocess.run(["pgrep", "-f", ceph.dir], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                subprocess.run(["taskset", "-a", "-p", "-c", "0", pid], capture_output=True)
            one_iops, _ = librbd_run(ceph, seconds, pin="0")
            for pid in pids:
                subprocess.run(["taskset", "-a", "-p", "-c", "0-1", pid], capture_output=True)
            print(f"librbd with nvemu's CPU budget (rbd bench and the cluster on core 0): "
                  f"{one_iops:,.0f} IOPS", flush=True)
        nv_iops, nv_lat, cpu, cmd = nvemu_run(ceph, bin_dir, seconds)
        print(f"nvemu (nvemu-perf QD16 over NVMe/TCP): {nv_iops:,.0f} IOPS, avg latency "
              f"{nv_lat} us, target CPU {cpu:.0f} % of one core")
        print(f"ratio nvemu/librbd: {nv_iops / lib_iops:.2f} (goal >= 0.9)")
        print(f"reproduce: bench/rbd.sh  (nvemu side: {cmd})")
        print(json.dumps({"librbd_iops": lib_iops, "nvemu_iops": nv_iops,
                          "ratio": nv_iops / lib_iops, "target_cpu_pct": cpu,
                          "nvemu_avg_latency_us": nv_lat, "seconds": seconds}))


if __name__ == "__main__":
    main()
