#!/usr/bin/env python3
"""nvemu's benchmark matrix (issue #7); started by bench/run.sh.

Target pinned to core 0 (-m 0x1), initiator (nvemu-perf, or SPDK's perf) to
core 1 (-c 0x2). For each repetition: start a fresh target, configure a
512 MiB malloc namespace (Malloc0, 512 B blocks) on NVMe/TCP and vfio-user,
run every case over every transport, stop it; with SPDK_DIR the same for
SPDK's nvmf_tgt and perf, right after (interleaved by repetition). Then the
extras: one-core memcpy ceiling, idle CPU of a configured target, start-up
to RPC-ready time, 1024 null namespaces attached one RPC each.

Writes bench/results/runs/STAMP/*.json (one file per run) and
bench/results/summary.{json,md} + plot.png (gnuplot, when installed).
stdlib only.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
NQN = "nqn.2016-06.io.spdk:cnode1"
CASES = [  # name, pattern, io size, queue depth
    ("randread-4k-qd1", "randread", 4096, 1),
    ("randread-4k-qd32", "randread", 4096, 32),
    ("randread-4k-qd128", "randread", 4096, 128),
    ("randwrite-4k-qd32", "randwrite", 4096, 32),
    ("read-128k-qd8", "read", 131072, 8),
]
# The SPDK v23.01 numbers on this machine kind: reference, not same-run.
SPDK_REFERENCE = {
    ("TCP", "randread-4k-qd1"): {"iops": 111e3, "lat_us": 9.0},
    ("TCP", "randread-4k-qd32"): {"iops": 683e3},
    ("TCP", "randread-4k-qd128"): {"iops": 735e3},
    ("TCP", "randwrite-4k-qd32"): {"iops": 459e3},
    ("TCP", "read-128k-qd8"): {"gbps": 4.1},
    ("VFIOUSER", "randread-4k-qd1"): {"iops": 703e3, "lat_us": 1.40},
    ("VFIOUSER", "randread-4k-qd32"): {"iops": 1.57e6},
    ("VFIOUSER", "randread-4k-qd128"): {"iops": 1.65e6},
    ("VFIOUSER", "randwrite-4k-qd32"): {"iops": 1.23e6},
    ("VFIOUSER", "read-128k-qd8"): {"gbps": 9.8},
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def __init__(self, binary, workdir, kind="nvemu", extra=()):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=workdir)
        self.sock = os.path.join(self.dir, "rpc.sock")
        self.log = open(os.path.join(self.dir, "tgt.log"), "wb")
        args = [binary, "-m", "0x1", "-r", self.sock, *extra]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
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


def trid(transport, port, vfu_dir):
    if transport == "TCP":
        return f"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"
    return f"trtype:VFIOUSER traddr:{vfu_dir} subnqn:{NQN}"


def run_nvemu_perf(perf, case, transport, port, vfu_dir, seconds, out_json):
    name, pattern, size, qd = case
    cmd = [perf, "-q", str(qd), "-o", str(size), "-w", pattern, "-t", str(seconds), "-c", "0x2",
           "-L", "--no-live", "-r", trid(transport, port, vfu_dir), "--json", out_json]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    with open(out_json) as f:
        doc = json.load(f)
    t = doc["total"]
    return {"iops": t["iops"], "mibps": t["mibps"], "lat_us": t["latency_us"]["avg"],
            "p99_us": t["latency_us"]["p99"], "cmd": " ".join(cmd)}


def run_spdk_perf(spdk_dir, case, transport, port, vfu_dir, seconds, out_txt):
    """SPDK's perf; parses the 'Total' line of its table."""
    name, pattern, size, qd = case
    perf = os.path.join(spdk_dir, "build", "bin", "spdk_nvme_perf")
    if not os.path.exists(perf):
        perf = os.path.join(spdk_dir, "build", "examples", "perf")
    cmd = [perf, "-q", str(qd), "-o", str(size), "-w", pattern, "-t", str(seconds), "-c", "0x2",
           "-r", trid(transport, port, vfu_dir)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    with open(out_txt, "w") as f:
        f.write(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    for line in p.stdout.splitlines():
        if line.startswith("Total"):
            v = line.split(":", 1)[1].split()
            return {"iops": float(v[0]), "mibps": float(v[1]), "lat_us": float(v[2]),
                    "cmd": " ".join(cmd)}
    raise RuntimeError("no Total line in SPDK perf output")


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
    vals = sorted(vals)
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals),
            "all": vals}


def extras(bin_dir, work, reps, out):
    tgt_bin = os.path.join(bin_dir, "nvemu-tgt")
    perf = os.path.join(bin_dir, "nvemu-perf")
    res = {}
    j = os.path.join(out, "memcpy.json")
    subprocess.run([perf, "--memcpy-bench", "-c", "0x2", "-t", "2", "--json", j], check=True,
                   stdout=subprocess.DEVNULL)
    with open(j) as f:
        res["memcpy"] = json.load(f)
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
    return res


def markdown(summary):
    lines = []
    have_spdk = summary["spdk_same_run"]
    hdr = "| transport | case | nvemu IOPS (median, min–max) | MiB/s | avg lat us | p99 us |"
    sep = "|---|---|---|---|---|---|"
    if have_spdk:
        hdr += " SPDK IOPS (median, min–max) | nvemu/SPDK (min–max) |"
        sep += "---|---|"
    else:
        hdr += " SPDK reference (not same-run) |"
        sep += "---|"
    lines += [hdr, sep]
    for r in summary["matrix"]:
        n = r["nvemu"]
        row = (f"| {r['transport']} | {r['case']} | {n['iops']['median']:,.0f} "
               f"({n['iops']['min']:,.0f}–{n['iops']['max']:,.0f}) | "
               f"{n['mibps']['median']:,.0f} | {n['lat_us']['median']:.2f} | "
               f"{n['p99_us']['median']:.2f} |")
        if have_spdk and "spdk" in r:
            s = r["spdk"]
            row += (f" {s['iops']['median']:,.0f} ({s['iops']['min']:,.0f}–"
                    f"{s['iops']['max']:,.0f}) | {r['ratio']['median']:.2f} "
                    f"({r['ratio']['min']:.2f}–{r['ratio']['max']:.2f}) |")
        elif have_spdk:
            row += " – | – |"
        else:
            ref = SPDK_REFERENCE.get((r["transport"], r["case"]), {})
            parts = []
            if "iops" in ref:
                parts.append(f"{ref['iops']:,.0f} IOPS")
            if "lat_us" in ref:
                parts.append(f"{ref['lat_us']} us")
            if "gbps" in ref:
                parts.append(f"{ref['gbps']} GB/s")
            row += f" {', '.join(parts)} |"
        lines.append(row)
    x = summary.get("extras")
    if x:
        lines += ["", "| extra | value |", "|---|---|",
                  f"| memcpy 4 KiB, one core | {x['memcpy']['4k']['copies_per_s']:,.0f} copies/s "
                  f"({x['memcpy']['4k']['gib_per_s']:.1f} GiB/s) |",
                  f"| memcpy 128 KiB, one core | {x['memcpy']['128k']['copies_per_s']:,.0f} "
                  f"copies/s ({x['memcpy']['128k']['gib_per_s']:.1f} GiB/s) |",
                  f"| idle CPU, configured target, 10 s | {x['idle_cpu_percent']:.2f} % |",
                  f"| start-up to RPC-ready (--wait-for-rpc) | "
                  f"{x['startup_ms_wait_for_rpc']['median']:.1f} ms "
                  f"({x['startup_ms_wait_for_rpc']['min']:.1f}–"
                  f"{x['startup_ms_wait_for_rpc']['max']:.1f}) |",
                  f"| start-up to RPC-ready (no --wait-for-rpc) | "
                  f"{x['startup_ms_direct']['median']:.1f} ms "
                  f"({x['startup_ms_direct']['min']:.1f}–{x['startup_ms_direct']['max']:.1f}) |",
                  f"| attach 1024 null namespaces, one RPC each | "
                  f"{x['attach_1024_ns']['seconds'] * 1000:.0f} ms "
                  f"({x['attach_1024_ns']['per_rpc_us']:.0f} us/RPC, "
                  f"{x['attach_1024_ns']['namespaces']} attached) |"]
    return "\n".join(lines) + "\n"


def plot(summary, out_png, workdir):
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found (apt-get install gnuplot-nox): no plot")
        return False
    dat = os.path.join(workdir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# case TCP TCPmin TCPmax VFIOUSER VFmin VFmax\n")
        for case in [c[0] for c in CASES]:
            vals = {}
            for r in summary["matrix"]:
                if r["case"] == case:
                    vals[r["transport"]] = r["nvemu"]["iops"]
            if not vals:
                continue
            cols = []
            for t in ("TCP", "VFIOUSER"):
                v = vals.get(t)
                cols += ([v["median"] / 1e3, v["min"] / 1e3, v["max"] / 1e3] if v else
                         ["NaN", "NaN", "NaN"])
            f.write(case + " " + " ".join(str(c) for c in cols) + "\n")
    script = f"""
set terminal pngcairo size 1000,560 noenhanced font ",10"
set output '{out_png}'
set title 'nvemu-perf, target on core 0, initiator on core 1 (median, error bars min-max)'
set ylabel 'kIOPS'
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set key top right
set grid ytics
set yrange [0:*]
plot '{dat}' using 2:3:4:xtic(1) title 'NVMe/TCP', '' using 5:6:7 title 'vfio-user'
"""
    p = subprocess.run([gp], input=script, text=True, capture_output=True)
    if p.returncode != 0 and "pngcairo" in p.stderr:
        p = subprocess.run([gp], input=script.replace("pngcairo", "png"), text=True,
                           capture_output=True)
    if p.returncode != 0:
        log("gnuplot failed:", p.stderr)
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    a = ap.parse_args()
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    reps = int(os.environ.get("BENCH_REPS", "3"))
    want = os.environ.get("BENCH_CASES")
    cases = [c for c in CASES if not want or c[0] in want.split(",")]
    transports = os.environ.get("BENCH_TRANSPORTS", "TCP,VFIOUSER").split(",")
    do_extras = os.environ.get("BENCH_EXTRAS", "1") == "1"
    spdk_dir = os.environ.get("SPDK_DIR")
    bin_dir = os.path.abspath(a.bin_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.join(RESULTS, "runs", stamp)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nvemu-bench-")
    log(f"results: {out}")
    raw = {}  # (impl, transport, case) -> [result]
    try:
        for rep in range(reps):
            impls = [("nvemu", os.path.join(bin_dir, "nvemu-tgt"))]
            if spdk_dir:
                impls.append(("spdk", os.path.join(spdk_dir, "build", "bin", "nvmf_tgt")))
            for impl, tgt_bin in impls:
                port = free_port()
                extra = ["--wait-for-rpc"] if impl == "nvemu" else ["--wait-for-rpc"]
                t = Target(tgt_bin, work, kind=impl, extra=extra)
                t.rpc.call("framework_start_init")
                if impl == "spdk":
                    time.sleep(0.5)
                vfu = os.path.join(t.dir, "vfu", "cnode1")
                impl_transports = [x for x in transports
                                   if impl == "nvemu" or x == "TCP"
                                   or os.environ.get("SPDK_VFIOUSER") == "1"]
                t.configure(port, vfu if "VFIOUSER" in impl_transports else None)
                try:
                    for case in cases:
                        for tr in impl_transports:
                            base = f"{impl}-{tr}-{case[0]}-rep{rep + 1}"
                            if impl == "nvemu":
                                r = run_nvemu_perf(os.path.join(bin_dir, "nvemu-perf"), case, tr,
                                                   port, vfu, seconds,
                                                   os.path.join(out, base + ".json"))
                            else:
                                r = run_spdk_perf(spdk_dir, case, tr, port, vfu, seconds,
                                                  os.path.join(out, base + ".txt"))
                                with open(os.path.join(out, base + ".json"), "w") as f:
                                    json.dump(r, f, indent=2)
                            raw.setdefault((impl, tr, case[0]), []).append(r)
                            log(f"rep {rep + 1} {impl:5} {tr:8} {case[0]:18} "
                                f"{r['iops']:12,.0f} IOPS {r['mibps']:9,.0f} MiB/s "
                                f"{r['lat_us']:8.2f} us")
                finally:
                    t.stop()
        summary = {"machine": machine(), "seconds": seconds, "reps": reps, "stamp": stamp,
                   "command": "bench/run.sh", "env": {k: v for k, v in os.environ.items()
                                                      if k.startswith("BENCH_") or k == "SPDK_DIR"},
                   "spdk_same_run": bool(spdk_dir), "matrix": []}
        for case in cases:
            for tr in transports:
                rs = raw.get(("nvemu", tr, case[0]))
                if not rs:
                    continue
                row = {"transport": tr, "case": case[0], "nvemu": {
                    k: spread([r[k] for r in rs]) for k in ("iops", "mibps", "lat_us", "p99_us")}}
                ss = raw.get(("spdk", tr, case[0]))
                if ss:
                    row["spdk"] = {k: spread([r[k] for r in ss]) for k in ("iops", "mibps",
                                                                           "lat_us")}
                    # Ratios of same-repetition pairs (interleaved runs).
                    row["ratio"] = spread([n["iops"] / s["iops"] for n, s in zip(rs, ss)])
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
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
