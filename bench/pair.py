#!/usr/bin/env python3
"""Plain alternating pairs, the way a user checks bench/run.sh's figures: a
fresh target per run (nvemu-tgt, then SPDK's nvmf_tgt, the order swapped
every repetition), target on core 0, SPDK's perf on core 1, nothing else
running against the target (no RPC sampling, no second initiator). With
--profile DIR, `perf record -g` samples each target for 4 s in the middle of
its run (the figures of a profiled run are lower: compare profiles, not
their IOPS).

  bench/pair.py --spdk-dir DIR [--bin-dir build/apps] [--case randread-4k-qd32]
                [--transport TCP|VFIOUSER] [--reps 4] [--seconds 5] [--profile DIR]

Prints each run and the median and range of the per-pair nvemu/SPDK ratios."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from chain import SPDK_SHARED_CORE_ARGS  # noqa: E402


def profile(pid, out, delay, seconds=4):
    time.sleep(delay)
    subprocess.run(["perf", "record", "-g", "-p", str(pid), "-o", out, "--", "sleep",
                    str(seconds)], capture_output=True)


def one_run(impl, args, case, work, rep):
    spdk = impl == "spdk"
    binary = (os.path.join(args.spdk_dir, "build/bin/nvmf_tgt") if spdk
              else os.path.join(args.bin_dir, "nvemu-tgt"))
    extra = ["--wait-for-rpc"] + (SPDK_SHARED_CORE_ARGS if spdk else [])
    t = bench.Target(binary, work, kind=impl, extra=extra,
                     env=bench.spdk_env(args.spdk_dir) if spdk else None)
    try:
        t.rpc.call("framework_start_init")
        if spdk:
            t.rpc.call("framework_wait_init")
        port = bench.free_port()
        vfu = os.path.join(t.dir, "vfu", "cnode1")
        t.configure(port, vfu if args.transport == "VFIOUSER" else None)
        prof = None
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            out = os.path.join(args.profile, f"{impl}-{case[0]}-{args.transport}-{rep + 1}.data")
            prof = threading.Thread(target=profile,
                                    args=(t.proc.pid, out, max(0.0, args.seconds / 2 - 2)))
            prof.start()
        r = bench.run_spdk_perf(args.spdk_dir, case, args.transport, port, vfu, args.seconds,
                                os.path.join(work, f"{impl}-{rep + 1}.txt"))
        if prof:
            prof.join()
        return r
    finally:
        t.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spdk-dir", required=True)
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                      "apps"))
    ap.add_argument("--case", default="randread-4k-qd32",
                    choices=[c[0] for c in bench.CASES])
    ap.add_argument("--transport", default="TCP", choices=["TCP", "VFIOUSER"])
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--profile", metavar="DIR")
    args = ap.parse_args()
    case = next(c for c in bench.CASES if c[0] == args.case)
    work = tempfile.mkdtemp(prefix="nvemu-pair-")
    iops = {"nvemu": [], "spdk": []}
    for rep in range(args.reps):
        for impl in (("nvemu", "spdk") if rep % 2 == 0 else ("spdk", "nvemu")):
            r = one_run(impl, args, case, work, rep)
            iops[impl].append(r["iops"])
            print(f"rep {rep + 1} {impl:5} {args.transport:8} {case[0]:18} "
                  f"{r['iops']:12,.0f} IOPS {r['lat_us']:8.2f} us", flush=True)
    ratios = sorted(a / b for a, b in zip(iops["nvemu"], iops["spdk"]))
    print(f"{case[0]} {args.transport}: nvemu/SPDK median {statistics.median(ratios):.2f} "
          f"({ratios[0]:.2f}-{ratios[-1]:.2f}) over {len(ratios)} pairs of {args.seconds} s")


if __name__ == "__main__":
    main()
