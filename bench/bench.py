#!/usr/bin/env python3
"""nvemu's benchmark matrix (issue #7); started by bench/run.sh.

Target pinned to core 0 (-m 0x1), initiator (nvemu-perf, or SPDK's perf) to
core 1 (-c 0x2). For each repetition: start a fresh target, configure a
512 MiB malloc namespace (Malloc0, 512 B blocks) on NVMe/TCP and vfio-user,
run every case over every transport with every initiator, stop it. With
SPDK_DIR the same for SPDK's nvmf_tgt in the same repetition (the two
targets alternate which goes first), and each initiator (nvemu-perf and
SPDK's perf, BENCH_INITIATORS) runs against both targets, so every
nvemu/SPDK ratio compares two targets under the same initiator. Then the
extras: one-core memcpy ceiling, idle CPU of a configured target, start-up
to RPC-ready time, 1024 null namespaces attached one RPC each. The chained
namespace of issue #15 (bench/chain.py) runs in the same repetitions: two
fresh targets per run, B attaching A's namespace with bdev_nvme.

Writes bench/results/runs/STAMP/*.json (one file per run) and
bench/results/summary.{json,md} + plot.png (gnuplot, when installed).
stdlib only.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from chain import CHAIN_CASES, NQN_A, NQN_B, SPDK_SHARED_CORE_ARGS, ProcCpu, configure_b
from rbd import RBD_CASES, ceph_cluster_module, configure_rbd, rbd_bench, start_cluster
from report import markdown, plot

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
NQN = NQN_A  # the one-target cases' subsystem is also the chain's target A's
CASES = [  # name, pattern, io size, queue depth
    ("randread-4k-qd1", "randread", 4096, 1),
    ("randread-4k-qd32", "randread", 4096, 32),
    ("randread-4k-qd128", "randread", 4096, 128),
    ("randwrite-4k-qd32", "randwrite", 4096, 32),
    ("read-128k-qd8", "read", 131072, 8),
]
def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_ticks():
    """(busy, steal) ticks of the whole machine from /proc/stat: busy is all
    but idle, iowait and steal; steal is time the hypervisor gave this VM's
    vCPUs to someone else, which slows both targets without showing as load."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4] - v[7], v[7]


def _proc_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def _children_ticks():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * os.sysconf("SC_CLK_TCK")


class Foreign:
    """CPU that processes other than the benchmark's own used over a window, in
    % of one core: machine busy ticks minus the target's and the (waited-for)
    initiator's. Measures how much a neighbour disturbed a run. A chain has
    two targets: both are ours."""

    def __init__(self, *target_pids):
        self.pids = target_pids
        self.t0 = time.monotonic()
        (self.b0, self.s0), self.c0 = _cpu_ticks(), _children_ticks()
        self.p0 = sum(_proc_ticks(p) for p in target_pids)

    def pct(self):
        """Others' CPU and the hypervisor's steal, each in % of one core."""
        dt = max(time.monotonic() - self.t0, 1e-3)
        ours = (sum(_proc_ticks(p) for p in self.pids) - self.p0) + (_children_ticks() - self.c0)
        busy, steal = _cpu_ticks()
        per_pct = 100.0 / os.sysconf("SC_CLK_TCK") / dt
        return max(0.0, (busy - self.b0 - ours) * per_pct), (steal - self.s0) * per_pct


class TargetLoad(threading.Thread):
    """The target reactor's busy share in the middle of a run, from
    framework_get_reactors (both targets count a pass as busy only when it
    found work, so a spinning reactor with nothing to do is idle). Sampled
    from 40 % to 90 % of the run, clear of either initiator's start-up. Below
    100 %, the target waited for its initiator."""

    def __init__(self, rpc, seconds):
        super().__init__(daemon=True)
        self.rpc, self.seconds, self.share = rpc, seconds, float("nan")

    def _sample(self):
        r = self.rpc.call("framework_get_reactors")["reactors"][0]
        return r["busy"], r["idle"]

    def run(self):
        try:
            time.sleep(0.4 * self.seconds)
            b0, i0 = self._sample()
            time.sleep(0.5 * self.seconds)
            b1, i1 = self._sample()
            if b1 + i1 > b0 + i0:
                self.share = (b1 - b0) / ((b1 - b0) + (i1 - i0))
        except (OSError, RuntimeError, KeyError, IndexError):
            pass  # reported as unknown (nan)

    def pct(self):
        self.join()
        return 100.0 * self.share


def wait_quiet(target_pids, max_pct, max_wait):
    """With BENCH_QUIET_PCT set: before a run, wait (up to BENCH_QUIET_MAX_WAIT s)
    until other processes use less than max_pct % of one core over 2 s."""
    if max_pct is None:
        return 0.0
    t0 = time.monotonic()
    said = False
    while True:
        f = Foreign(*target_pids)
        time.sleep(2)
        pct = f.pct()[0]
        if pct < max_pct:
            return time.monotonic() - t0
        if time.monotonic() - t0 > max_wait:
            log(f"machine still busy ({pct:.0f} % of a core by others) after {max_wait:.0f} s; "
                "running anyway")
            return time.monotonic() - t0
        if not said:
            log(f"waiting for a quiet machine: others use {pct:.0f} % of a core")
            said = True


class Rpc:
    """JSON-RPC over one Unix socket connection (SPDK framing: one object per request)."""

    def __init__(self, path):
        self.path = path
        self.s = None
        self.id = 0

    def connect(self, timeout=20.0, proc=None):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                self.s = s
                self.buf = b""
                return
            except OSError:
                s.close()
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"target exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    def call(self, method, params=None):
        self.id += 1
        req = {"jsonrpc": "2.0", "id": self.id, "method": method}
        if params is not None:
            req["params"] = params
        self.s.sendall(json.dumps(req).encode())
        dec = json.JSONDecoder()
        while True:
            text = self.buf.decode(errors="replace").lstrip()
            if text:
                try:
                    obj, end = dec.raw_decode(text)
                    self.buf = text[end:].encode()
                    if "error" in obj:
                        raise RuntimeError(f"{method}: {obj['error']}")
                    return obj.get("result")
                except json.JSONDecodeError:
                    pass
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"{method}: connection closed")
            self.buf += chunk

    def close(self):
        if self.s:
            self.s.close()
            self.s = None


class Target:
    """nvemu-tgt (or SPDK's nvmf_tgt) pinned to core 0 with a private RPC socket."""

    def __init__(self, binary, workdir, kind="nvemu", extra=(), env=None, mask="0x1"):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=workdir)
        self.sock = os.path.join(self.dir, "rpc.sock")
        self.log = open(os.path.join(self.dir, "tgt.log"), "wb")
        args = [binary, "-m", mask, "-r", self.sock, *extra]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.rpc = Rpc(self.sock)
        self.rpc.connect(proc=self.proc)
        self.rpc.call("spdk_get_version" if kind == "nvemu" else "rpc_get_methods")
        self.ready_s = time.monotonic() - self.t0

    def configure(self, tcp_port, vfu_dir, bdev_mb=512):
        c = self.rpc.call
        c("bdev_malloc_create", {"name": "Malloc0", "num_blocks": bdev_mb * 2048,
                                 "block_size": 512})
        c("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                    "serial_number": "SPDK00000000000001"})
        c("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "Malloc0"}})
        c("nvmf_create_transport", {"trtype": "TCP"})
        c("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(tcp_port)}})
        if vfu_dir:
            os.makedirs(vfu_dir, exist_ok=True)
            # QD128 needs 129 SQ entries: raise max_queue_depth above the default 128.
            c("nvmf_create_transport", {"trtype": "VFIOUSER", "max_queue_depth": 256})
            c("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
                "trtype": "VFIOUSER", "adrfam": "IPv4", "traddr": vfu_dir, "trsvcid": "0"}})

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)

    def stop(self):
        self.rpc.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def trid(transport, port, vfu_dir, nqn=NQN):
    if transport == "TCP":
        return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}"
    return f"trtype:VFIOUSER traddr:{vfu_dir} subnqn:{nqn}"


def run_nvemu_perf(perf, case, transport, port, vfu_dir, seconds, out_json, nqn=NQN):
    name, pattern, size, qd = case
    cmd = [perf, "-q", str(qd), "-o", str(size), "-w", pattern, "-t", str(seconds), "-c", "0x2",
           "-L", "--no-live", "-r", trid(transport, port, vfu_dir, nqn), "--json", out_json]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    with open(out_json) as f:
        doc = json.load(f)
    t = doc["total"]
    return {"iops": t["iops"], "mibps": t["mibps"], "lat_us": t["latency_us"]["avg"],
            "p99_us": t["latency_us"]["p99"], "cmd": " ".join(cmd)}


def spdk_env(spdk_dir):
    """Environment for SPDK's binaries. A build against a packaged DPDK is a
    shared-library build (configure turns --with-shared on) with no rpath:
    its libspdk_*.so and libvfio-user.so need LD_LIBRARY_PATH."""
    env = dict(os.environ)
    libs = [os.path.join(spdk_dir, "build", "lib"),
            os.path.join(spdk_dir, "build", "libvfio-user", "usr", "local", "lib"),
            os.path.join(spdk_dir, "dpdk", "build", "lib")]
    libs = [d for d in libs if os.path.isdir(d)]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    return env


def spdk_bin(spdk_dir, *names):
    """First existing SPDK binary of NAMES (paths under SPDK_DIR); SPDK moved
    the examples to build/bin/spdk_nvme_* after v23.01."""
    for n in names:
        path = os.path.join(spdk_dir, n)
        if os.path.exists(path):
            return path
    raise RuntimeError(f"none of {names} in SPDK_DIR={spdk_dir}: is it built?")


def spdk_has_vfio_user(spdk_dir):
    """SPDK_VFIOUSER=1/0 if set, else the build's CONFIG_VFIO_USER."""
    if os.environ.get("SPDK_VFIOUSER") in ("0", "1"):
        return os.environ["SPDK_VFIOUSER"] == "1"
    try:
        with open(os.path.join(spdk_dir, "mk", "config.mk")) as f:
            return any(line.split("=", 1)[-1].strip() == "y" for line in f
                       if line.startswith("CONFIG_VFIO_USER?=") or
                       line.startswith("CONFIG_VFIO_USER="))
    except OSError:
        return False


def check_hugepages(need_mib):
    """SPDK's DPDK env allocates from hugetlbfs: fail early and clearly."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            info[k] = v.split()
    free_mib = int(info.get("HugePages_Free", ["0"])[0]) * int(
        info.get("Hugepagesize", ["2048"])[0]) // 1024
    if free_mib < need_mib:
        raise RuntimeError(
            f"SPDK needs about {need_mib} MiB of free hugepages, {free_mib} MiB are free: "
            "e.g. echo 1024 > /proc/sys/vm/nr_hugepages (and mount hugetlbfs on "
            "/dev/hugepages if it is not mounted); set it back to 0 afterwards")


def run_spdk_perf(spdk_dir, case, transport, port, vfu_dir, seconds, out_txt, nqn=NQN):
    """SPDK's perf; parses the 'Total' line of its table and, from -L's
    summary, the 99th percentile."""
    name, pattern, size, qd = case
    perf = spdk_bin(spdk_dir, "build/bin/spdk_nvme_perf", "build/examples/perf")
    # SPDK perf's -t takes whole seconds ("10.0" fails: "Converting a string to integer").
    cmd = [perf, "-q", str(qd), "-o", str(size), "-w", pattern, "-t", str(max(1, round(seconds))),
           "-c", "0x2", "-L", "-r", trid(transport, port, vfu_dir, nqn)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                       env=spdk_env(spdk_dir))
    with open(out_txt, "w") as f:
        f.write(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    res = None
    p99 = float("nan")
    for line in p.stdout.splitlines():
        if line.startswith("Total"):
            v = line.split(":", 1)[1].split()
            res = {"iops": float(v[0]), "mibps": float(v[1]), "lat_us": float(v[2]),
                   "cmd": " ".join(cmd)}
        elif line.strip().startswith("99.00000%") and p99 != p99:  # first device's summary
            p99 = float(line.split(":", 1)[1].strip().rstrip("us"))
    if res is None:
        raise RuntimeError("no Total line in SPDK perf output")
    res["p99_us"] = p99
    return res


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


def spread(vals):
    vals = sorted(v for v in vals if v == v)  # a nan (not measured) is left out
    if not vals:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0, "all": []}
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals),
            "all": vals}


def _moved(rates):
    """How far a rate moved over a pair: max/min - 1."""
    return max(rates) / min(rates) - 1


def copy_rate(bin_dir, out, name, seconds=2):
    """One core's copy rates (`nvemu-perf --memcpy-bench`): the wall every
    memory-bound case stands at, in the machine's state of the moment."""
    j = os.path.join(out, name)
    subprocess.run([os.path.join(bin_dir, "nvemu-perf"), "--memcpy-bench", "-c", "0x2", "-t",
                    str(seconds), "--json", j], check=True, stdout=subprocess.DEVNULL)
    with open(j) as f:
        return json.load(f)


def extras(bin_dir, work, reps, out):
    tgt_bin = os.path.join(bin_dir, "nvemu-tgt")
    res = {"memcpy": copy_rate(bin_dir, out, "memcpy.json")}
    log("memcpy:", res["memcpy"])
    # Start-up to RPC-ready (spdk_get_version answers), --wait-for-rpc and not.
    for mode, extra in (("wait_for_rpc", ["--wait-for-rpc"]), ("direct", [])):
        times = []
        for _ in range(max(reps, 5)):
            t = Target(tgt_bin, work, extra=extra)
            times.append(t.ready_s * 1000)
            t.stop()
        res[f"startup_ms_{mode}"] = spread(times)
    log("startup:", {k: v["median"] for k, v in res.items() if k.startswith("startup")})
    # Idle CPU of a configured target over 10 s.
    t = Target(tgt_bin, work)
    t.configure(free_port(), os.path.join(t.dir, "vfu"))
    time.sleep(1)
    hz = os.sysconf("SC_CLK_TCK")
    c0, w0 = t.cpu_ticks(), time.monotonic()
    time.sleep(10)
    c1, w1 = t.cpu_ticks(), time.monotonic()
    res["idle_cpu_percent"] = 100.0 * (c1 - c0) / hz / (w1 - w0)
    t.stop()
    log("idle cpu %:", res["idle_cpu_percent"])
    # 1024 null namespaces, one nvmf_subsystem_add_ns RPC each, one connection.
    t = Target(tgt_bin, work)
    c = t.rpc.call
    c("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True, "max_namespaces": 1024})
    for i in range(1024):
        c("bdev_null_create", {"name": f"Null{i}", "num_blocks": 2048, "block_size": 512})
    t0 = time.monotonic()
    for i in range(1024):
        c("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": f"Null{i}"}})
    dt = time.monotonic() - t0
    n = len(c("nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"])
    t.stop()
    res["attach_1024_ns"] = {"seconds": dt, "per_rpc_us": dt / 1024 * 1e6, "namespaces": n}
    log("attach 1024 ns:", res["attach_1024_ns"])
    res["scaling"] = scaling(bin_dir, work, out)
    log("scaling 1 -> 2 reactors:", res["scaling"])
    return res


def scaling(bin_dir, work, out, seconds=5):
    """One reactor against two: two 256 MiB malloc namespaces over NVMe/TCP,
    nvemu-perf with one QD32 I/O queue each. With -m 0x3 the target spreads
    the queues (round robin) over reactors on cores 0 and 1; this machine has
    two cores, so the initiator on core 1 then shares it with a reactor."""
    res = {}
    for mask in ("0x1", "0x3"):
        t = Target(os.path.join(bin_dir, "nvemu-tgt"), work, mask=mask)
        c = t.rpc.call
        c("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        for i in range(2):
            c("bdev_malloc_create", {"name": f"Malloc{i}", "num_blocks": 256 * 2048,
                                     "block_size": 512})
            c("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": f"Malloc{i}"}})
        port = free_port()
        c("nvmf_create_transport", {"trtype": "TCP"})
        c("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
            "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})
        try:
            r = run_nvemu_perf(os.path.join(bin_dir, "nvemu-perf"),
                               ("scaling", "randread", 4096, 32), "TCP", port, None, seconds,
                               os.path.join(out, f"scaling-{mask}.json"))
        finally:
            t.stop()
        res[mask] = r["iops"]
    res["ratio"] = res["0x3"] / res["0x1"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--render", metavar="SUMMARY_JSON",
                    help="only write summary.md and plot.png again from a run's summary.json")
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            summary = json.load(f)
        with open(os.path.join(RESULTS, "summary.md"), "w") as f:
            f.write(markdown(summary))
        work = tempfile.mkdtemp(prefix="nvemu-bench-")
        try:
            plot(summary, os.path.join(RESULTS, "plot.png"), work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    reps = int(os.environ.get("BENCH_REPS", "3"))
    want = os.environ.get("BENCH_CASES")
    cases = [c for c in CASES if not want or c[0] in want.split(",")]
    transports = os.environ.get("BENCH_TRANSPORTS", "TCP,VFIOUSER").split(",")
    # The chain is NVMe/TCP end to end: it runs when TCP is among the transports.
    chain_cases = [c for c in CHAIN_CASES
                   if (not want or c[0] in want.split(",")) and "TCP" in transports]
    rbd_cases = [c for c in RBD_CASES
                 if (not want or c[0] in want.split(",")) and "TCP" in transports]
    ceph_module = None
    if rbd_cases:
        ceph_module, why = ceph_cluster_module(os.path.dirname(HERE))
        if not ceph_module:
            log(f"skipping {', '.join(c[0] for c in rbd_cases)}: {why}")
            rbd_cases = []
    do_extras = os.environ.get("BENCH_EXTRAS", "1") == "1"
    spdk_dir = os.environ.get("SPDK_DIR")
    if spdk_dir:
        spdk_dir = os.path.abspath(spdk_dir)
    bin_dir = os.path.abspath(a.bin_dir)
    initiators = os.environ.get("BENCH_INITIATORS",
                                "nvemu-perf,spdk-perf" if spdk_dir else "nvemu-perf").split(",")
    if "spdk-perf" in initiators and not spdk_dir:
        raise SystemExit("BENCH_INITIATORS has spdk-perf but SPDK_DIR is not set")
    spdk_vfu = bool(spdk_dir) and spdk_has_vfio_user(spdk_dir)
    quiet_pct = (float(os.environ["BENCH_QUIET_PCT"]) if os.environ.get("BENCH_QUIET_PCT")
                 else None)
    quiet_wait = float(os.environ.get("BENCH_QUIET_MAX_WAIT", "600"))
    if spdk_dir:
        # nvmf_tgt: 512 MiB malloc bdev + TCP buffers; perf: its own buffers.
        check_hugepages(1024)
        spdk_tgt = spdk_bin(spdk_dir, "build/bin/nvmf_tgt")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.join(RESULTS, "runs", stamp)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nvemu-bench-")
    log(f"results: {out}")
    raw = {}  # (target, initiator, transport, case) -> [result], one per repetition
    copies = []  # copy_rate() before each matrix run
    # A pair is two targets under the same conditions only if the machine
    # held still across it; see run_pair.
    settle_pct = float(os.environ.get("BENCH_SETTLE_PCT", "10"))
    settle_tries = int(os.environ.get("BENCH_SETTLE_TRIES", "3"))
    pairs_seen = []  # one per matrix pair: attempts it took, drift kept
    librbd = {}  # (case, rep) -> rbd bench IOPS straight on librbd
    ceph = None
    failures = []

    def record(impl, ini, tr, case, rep, r, foreign, loads, waited, into=None):
        r["rep"] = rep
        r["foreign_cpu_pct"], r["steal_pct"] = foreign.pct()
        r["target_busy_pct"] = loads[-1].pct()  # the target the initiator talks to
        r["waited_for_quiet_s"] = waited
        with open("/proc/loadavg") as f:  # how busy the machine was
            r["loadavg_after"] = [float(x) for x in f.read().split()[:3]]
        (raw if into is None else into).setdefault((impl, ini, tr, case[0]), []).append(r)

    def fail(impl, ini, tr, case, rep, base, e):
        # One failed pairing (e.g. an initiator that loses a completion, or a
        # target without bdev_nvme) must not throw away the rest of the matrix.
        msg = str(e).strip().splitlines()
        tail = [ln for ln in msg if ln.strip()][-1:] or ["?"]
        failures.append({"target": impl, "initiator": ini, "transport": tr,
                         "case": case[0], "rep": rep + 1, "error": tail[0]})
        with open(os.path.join(out, base + ".error.txt"), "w") as f:
            f.write(str(e))
        log(f"rep {rep + 1} {impl:5} <- {ini:10} {tr:8} {case[0]:18} FAILED: {tail[0]}")

    def run_case(impl, tgt_bin, rep, case, tr, into):
        # The machine's copy rate just before this target's run: the two runs
        # of a pair are seconds apart, and this says whether they saw the same
        # state (the memory-bound ratios move with it).
        copy = copy_rate(bin_dir, out, f"memcpy-{impl}-{tr}-{case[0]}-rep{rep + 1}.json",
                         seconds=0.3)
        copies.append(copy)
        port = free_port()
        env = spdk_env(spdk_dir) if impl == "spdk" else None
        extra = ["--wait-for-rpc"] + (SPDK_SHARED_CORE_ARGS if impl == "spdk" else [])
        t = Target(tgt_bin, work, kind=impl, extra=extra, env=env)
        t.rpc.call("framework_start_init")
        if impl == "spdk":
            t.rpc.call("framework_wait_init")
        vfu = os.path.join(t.dir, "vfu", "cnode1")
        t.configure(port, vfu if tr == "VFIOUSER" else None)
        try:
            for ini in initiators:
                base = f"{impl}-{ini}-{tr}-{case[0]}-rep{rep + 1}"
                waited = wait_quiet([t.proc.pid], quiet_pct, quiet_wait)
                foreign = Foreign(t.proc.pid)
                load = TargetLoad(t.rpc, seconds)
                load.start()
                try:
                    if ini == "nvemu-perf":
                        r = run_nvemu_perf(os.path.join(bin_dir, "nvemu-perf"), case, tr, port,
                                           vfu, seconds, os.path.join(out, base + ".json"))
                    else:
                        r = run_spdk_perf(spdk_dir, case, tr, port, vfu, seconds,
                                          os.path.join(out, base + ".txt"))
                        with open(os.path.join(out, base + ".json"), "w") as f:
                            json.dump(r, f, indent=2)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    load.pct()  # its next run must not share the RPC socket with it
                    fail(impl, ini, tr, case, rep, base, e)
                    continue
                r["copy_4k_per_s"] = copy["4k"]["copies_per_s"]
                record(impl, ini, tr, case, rep, r, foreign, [load], waited, into)
                log(f"rep {rep + 1} {impl:5} <- {ini:10} {tr:8} {case[0]:18} "
                    f"{r['iops']:12,.0f} IOPS {r['mibps']:9,.0f} MiB/s "
                    f"{r['lat_us']:8.2f} us  target busy {r['target_busy_pct']:3.0f} %  "
                    f"others {r['foreign_cpu_pct']:3.0f} %  steal {r['steal_pct']:4.1f} %")
        finally:
            t.stop()

    def measure(impl, ini, case, rep, port, nqn, targets):
        """One initiator over NVMe/TCP against the last of TARGETS (fresh,
        configured); records the result with each target's CPU (/proc/PID/stat)
        and reactor busy share. A chain's two targets are A and B."""
        base = f"{impl}-{ini}-TCP-{case[0]}-rep{rep + 1}"
        pids = [t.proc.pid for t in targets]
        waited = wait_quiet(pids, quiet_pct, quiet_wait)
        foreign = Foreign(*pids)
        loads = [TargetLoad(t.rpc, seconds) for t in targets]
        cpu = ProcCpu(pids, seconds, os.sysconf("SC_CLK_TCK"))
        for th in loads + [cpu]:
            th.start()
        try:
            if ini == "nvemu-perf":
                r = run_nvemu_perf(os.path.join(bin_dir, "nvemu-perf"), case, "TCP", port, None,
                                   seconds, os.path.join(out, base + ".json"), nqn)
            else:
                r = run_spdk_perf(spdk_dir, case, "TCP", port, None, seconds,
                                  os.path.join(out, base + ".txt"), nqn)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            for th in loads + [cpu]:
                th.join()  # the next run must not share an RPC socket with it
            fail(impl, ini, "TCP", case, rep, base, e)
            return None
        pct = cpu.result()
        if len(targets) == 2:
            r["cpu_a_pct"], r["cpu_b_pct"] = pct
            r["busy_a_pct"] = loads[0].pct()
        else:
            r["cpu_pct"] = pct[0]
        record(impl, ini, "TCP", case, rep, r, foreign, loads, waited)
        if ini != "nvemu-perf":  # nvemu-perf wrote its own JSON there
            with open(os.path.join(out, base + ".json"), "w") as f:
                json.dump(r, f, indent=2)
        cpus = " ".join(f"{p:3.0f}" for p in pct)
        log(f"rep {rep + 1} {impl:5} <- {ini:10} TCP      {case[0]:18} "
            f"{r['iops']:12,.0f} IOPS {r['lat_us']:8.2f} us  target CPU % {cpus}  "
            f"busy {r['target_busy_pct']:3.0f} %  others {r['foreign_cpu_pct']:3.0f} %  "
            f"steal {r['steal_pct']:4.1f} %")
        return r

    def start_targets(impl, tgt_bin, n):
        """N fresh targets on core 0, initialised (--wait-for-rpc, then
        framework_start_init, as run_case does)."""
        env = spdk_env(spdk_dir) if impl == "spdk" else None
        extra = ["--wait-for-rpc"] + (SPDK_SHARED_CORE_ARGS if impl == "spdk" else [])
        targets = []
        try:
            for _ in range(n):
                t = Target(tgt_bin, work, kind=impl, extra=extra, env=env)
                targets.append(t)
                t.rpc.call("framework_start_init")
                if impl == "spdk":
                    t.rpc.call("framework_wait_init")
        except BaseException:
            for t in targets:
                t.stop()
            raise
        return targets

    def set_up_failed(impl, case, rep, e, targets):
        for ini in initiators:
            fail(impl, ini, "TCP", case, rep, f"{impl}-{ini}-TCP-{case[0]}-rep{rep + 1}", e)
        for t in reversed(targets):
            t.stop()

    def run_chain_case(impl, tgt_bin, rep, case):
        """Fresh targets A and B (both -m 0x1), B attaching A's namespace; each
        initiator runs against B."""
        targets = []
        try:
            targets = start_targets(impl, tgt_bin, 2)
            a, b = targets
            port_a = free_port()
            a.configure(port_a, None)
            port_b = free_port()  # asked once A listens: it cannot be A's port
            configure_b(b.rpc.call, port_a, port_b)
        except (RuntimeError, OSError) as e:
            set_up_failed(impl, case, rep, e, targets)
            return
        try:
            for ini in initiators:
                measure(impl, ini, case, rep, port_b, NQN_B, [a, b])
        finally:
            b.stop()  # B first: its controller to A goes away before A does
            a.stop()

    def run_rbd_case(impl, tgt_bin, rep, case, ceph):
        """A fresh target exporting the cluster's image (bdev_rbd) over NVMe/TCP."""
        targets = []
        try:
            targets = start_targets(impl, tgt_bin, 1)
            port = free_port()
            configure_rbd(targets[0].rpc.call, ceph, port, NQN)
        except (RuntimeError, OSError) as e:
            set_up_failed(impl, case, rep, e, targets)
            return
        try:
            for ini in initiators:
                measure(impl, ini, case, rep, port, NQN, targets)
        finally:
            targets[0].stop()

    def run_pair(impls, rep, case, tr):
        """Both targets' runs of one case, kept only if the machine's copy rate
        stayed within settle_pct across them (measured before each run and
        after the last): a pair whose conditions moved under it is measured
        again, up to settle_tries times, and the last attempt is kept and
        counted as unsettled if none held still."""
        for attempt in range(1, settle_tries + 1):
            pending = {}
            first = len(copies)
            for impl, tgt_bin in impls:
                run_case(impl, tgt_bin, rep, case, tr, pending)
            after = copy_rate(bin_dir, out, f"memcpy-after-{tr}-{case[0]}-rep{rep + 1}.json",
                              seconds=0.3)
            drift = _moved([c["4k"]["copies_per_s"] for c in copies[first:] + [after]])
            settled = len(impls) < 2 or drift <= settle_pct / 100
            if settled or attempt == settle_tries:
                break
            log(f"rep {rep + 1} {tr:8} {case[0]:18} the copy rate moved {drift:.0%} within "
                f"the pair (more than {settle_pct:g} %): measuring the pair again")
            del copies[first:]
        pairs_seen.append({"transport": tr, "case": case[0], "rep": rep + 1,
                           "attempts": attempt, "drift": drift, "settled": settled})
        for key, rs in pending.items():
            for r in rs:
                r["pair_drift"] = drift
            raw.setdefault(key, []).extend(rs)

    try:
        # Interleaved as finely as a target restart allows: for every case and
        # transport, a fresh nvemu target and a fresh SPDK target run back to
        # back (alternating which goes first), each serving every initiator.
        # A shared VM drifts between faster and slower states over minutes;
        # pairs measured seconds apart see the same state.
        pair = 0
        for rep in range(reps):
            for case in cases:
                for tr in transports:
                    impls = [("nvemu", os.path.join(bin_dir, "nvemu-tgt"))]
                    if spdk_dir and (tr == "TCP" or spdk_vfu):
                        impls.append(("spdk", spdk_tgt))
                        if pair % 2:
                            impls.reverse()
                    pair += 1
                    run_pair(impls, rep, case, tr)
            for case in chain_cases:
                impls = [("nvemu", os.path.join(bin_dir, "nvemu-tgt"))]
                if spdk_dir:
                    impls.append(("spdk", spdk_tgt))
                    if pair % 2:
                        impls.reverse()
                pair += 1
                for impl, tgt_bin in impls:
                    run_chain_case(impl, tgt_bin, rep, case)
            for case in rbd_cases:
                if ceph is None:
                    log("starting a single-node Ceph cluster (tests/system/ceph_cluster.py)")
                    ceph = start_cluster(ceph_module)
                librbd[(case[0], rep)] = rbd_bench(ceph, case, seconds)
                log(f"rep {rep + 1} rbd bench (librbd)        {case[0]:18} "
                    f"{librbd[(case[0], rep)]:12,.0f} IOPS")
                impls = [("nvemu", os.path.join(bin_dir, "nvemu-tgt"))]
                if spdk_dir:
                    impls.append(("spdk", spdk_tgt))
                    if pair % 2:
                        impls.reverse()
                pair += 1
                for impl, tgt_bin in impls:
                    run_rbd_case(impl, tgt_bin, rep, case, ceph)
        if ceph is not None:
            ceph.stop()
            ceph = None
        summary = {"machine": machine(), "seconds": seconds, "reps": reps, "stamp": stamp,
                   "command": "bench/run.sh", "env": {k: v for k, v in os.environ.items()
                                                      if k.startswith("BENCH_") or k == "SPDK_DIR"},
                   "spdk_same_run": bool(spdk_dir), "initiators": initiators,
                   "failures": failures, "matrix": [],
                   "settle": {"pct": settle_pct, "tries": settle_tries, "pairs": pairs_seen},
                   "copy_per_run": {k: spread([c[k]["copies_per_s"] for c in copies])
                                    for k, v in copies[0].items()
                                    if isinstance(v, dict) and "copies_per_s" in v}
                   if copies else {}}
        keys = ("iops", "mibps", "lat_us", "p99_us")
        combos = [(c, tr) for c in cases for tr in transports] + [
            (c, "TCP") for c in chain_cases + rbd_cases]
        for ini in initiators:
            for case, tr in combos:
                rs = raw.get(("nvemu", ini, tr, case[0]))
                ss = raw.get(("spdk", ini, tr, case[0]))
                if not rs and not ss:
                    continue
                row = {"initiator": ini, "transport": tr, "case": case[0]}
                more = ("foreign_cpu_pct", "target_busy_pct", "steal_pct")
                if case in chain_cases:
                    more += ("cpu_a_pct", "cpu_b_pct", "busy_a_pct")
                if case in rbd_cases:
                    more += ("cpu_pct", "of_librbd")
                    for r in (rs or []) + (ss or []):
                        r["of_librbd"] = r["iops"] / librbd[(case[0], r["rep"])]
                    row["librbd_iops"] = spread([v for (c, _), v in librbd.items()
                                                 if c == case[0]])
                if rs:
                    row["nvemu"] = {k: spread([r[k] for r in rs]) for k in keys + more}
                if ss:
                    row["spdk"] = {k: spread([r[k] for r in ss]) for k in keys + more}
                if rs and ss:
                    # Ratios of same-repetition pairs (the two targets ran back to back).
                    by_rep = {s["rep"]: s for s in ss}
                    pairs = [(n, by_rep[n["rep"]]) for n in rs if n["rep"] in by_rep]
                    row["ratio"] = spread([n["iops"] / s["iops"] for n, s in pairs])
                    # The pairs split by the copy rate their two runs saw
                    # (their mean) at the run's median.
                    if copies and all("copy_4k_per_s" in r for pr in pairs for r in pr):
                        mid = summary["copy_per_run"]["4k"]["median"]
                        mean = [(n["copy_4k_per_s"] + s["copy_4k_per_s"]) / 2 for n, s in pairs]
                        row["ratio_by_copy"] = {
                            half: spread([n["iops"] / s["iops"] for (n, s), m in zip(pairs, mean)
                                          if (m >= mid) == (half == "faster")])
                            for half in ("faster", "slower")}
                        row["copy_gap"] = spread([abs(n["copy_4k_per_s"] - s["copy_4k_per_s"]) /
                                                  max(n["copy_4k_per_s"], s["copy_4k_per_s"])
                                                  for n, s in pairs])
                    row["lat_ratio"] = spread([n["lat_us"] / s["lat_us"] for n, s in pairs])
                summary["matrix"].append(row)
        if do_extras:
            summary["extras"] = extras(bin_dir, work, reps, out)
        md = markdown(summary)
        for d in (out, RESULTS):
            with open(os.path.join(d, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
            with open(os.path.join(d, "summary.md"), "w") as f:
                f.write(md)
        if plot(summary, os.path.join(out, "plot.png"), work):
            shutil.copy(os.path.join(out, "plot.png"), os.path.join(RESULTS, "plot.png"))
        print(md)
    finally:
        if ceph is not None:
            ceph.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
