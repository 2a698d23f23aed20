"""The summary of a bench run: Markdown tables (bench/results/summary.md) and
the plot (gnuplot). Used by bench.py after a run and by `--render`. stdlib only.
"""
import os
import shutil
import subprocess
import sys

from chain import CHAIN_CASES, CHAIN_GOAL, chain_md
from rbd import rbd_md

# The issue's SPDK v23.01 numbers on this machine kind: reference, not same-run.
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


def _extras_md(x):
    return ["", "| extra | value |", "|---|---|",
            f"| memcpy 4 KiB, one core | {x['memcpy']['4k']['copies_per_s']:,.0f} copies/s "
            f"({x['memcpy']['4k']['gib_per_s']:.1f} GiB/s) |",
            f"| memcpy 128 KiB, one core | {x['memcpy']['128k']['copies_per_s']:,.0f} "
            f"copies/s ({x['memcpy']['128k']['gib_per_s']:.1f} GiB/s) |"] + (
        [f"| memcpy 4 KiB into the disk (writes, streaming stores), one core | "
         f"{x['memcpy']['4k_write']['copies_per_s']:,.0f} copies/s "
         f"({x['memcpy']['4k_write']['gib_per_s']:.1f} GiB/s) |"] if "4k_write" in x["memcpy"]
        else []) + [
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
            f"{x['attach_1024_ns']['namespaces']} attached) |"] + (
        [f"| TCP 4K randread, 2 namespaces x QD32: 1 reactor (-m 0x1) -> 2 reactors (-m 0x3) | "
         f"{x['scaling']['0x1']:,.0f} -> {x['scaling']['0x3']:,.0f} IOPS "
         f"({x['scaling']['ratio']:.2f}x; the initiator shares core 1 with reactor 1) |"]
        if "scaling" in x else [])


# Issue #7's goals and #15's chain: (case, metric, bound per transport). "iops" is the
# nvemu/SPDK IOPS ratio (at least), "lat" the average-latency ratio (at most).
GOALS = [
    ("randread-4k-qd32", "iops", {"TCP": 1.25, "VFIOUSER": 1.2}),
    ("randread-4k-qd128", "iops", {"TCP": 1.25, "VFIOUSER": 1.2}),
    ("randwrite-4k-qd32", "iops", {"TCP": 1.25, "VFIOUSER": 1.2}),
    ("randread-4k-qd1", "lat", {"TCP": 0.9, "VFIOUSER": 0.9}),
    ("read-128k-qd8", "iops", {"TCP": 1.0, "VFIOUSER": 1.0}),
] + [(c[0], "iops", {"TCP": CHAIN_GOAL}) for c in CHAIN_CASES]


def _goals_md(summary):
    """The goal table, judged on SPDK perf as initiator (the issue's terms) and
    shown for nvemu-perf too; each cell: median ratio (min-max over pairs)."""
    inis = [i for i in ("spdk-perf", "nvemu-perf") if i in summary["initiators"]]
    rows = {(r["initiator"], r["transport"], r["case"]): r for r in summary["matrix"]}
    hdr = "| goal | transport | bound |" + "".join(f" {i} ratio | met? |" for i in inis)
    lines = ["", "Goals (nvemu/SPDK, pairs of back-to-back runs):", "", hdr,
             "|---|---|---|" + "---|---|" * len(inis)]
    for case, metric, bounds in GOALS:
        for tr, bound in bounds.items():
            if not any((ini, tr, case) in rows for ini in inis):
                continue  # not measured in this run (BENCH_CASES, BENCH_TRANSPORTS)
            what = f"{case} {'avg latency' if metric == 'lat' else 'IOPS'}"
            row = f"| {what} | {tr} | {'<=' if metric == 'lat' else '>='} {bound} |"
            for ini in inis:
                r = rows.get((ini, tr, case), {})
                q = r.get("lat_ratio" if metric == "lat" else "ratio")
                if not q:
                    row += " – | – |"
                    continue
                ok = q["median"] <= bound if metric == "lat" else q["median"] >= bound
                row += (f" {q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f}) |"
                        f" {'yes' if ok else 'no'} |")
            lines.append(row)
    x = summary.get("extras")
    if x:
        ok = x["idle_cpu_percent"] < 2.0
        lines.append(f"| idle target CPU | both | < 2 % | {x['idle_cpu_percent']:.2f} % |"
                     f" {'yes' if ok else 'no'} |" + " |  |" * (len(inis) - 1))
    return lines if len(lines) > 5 else []  # no goal's case ran: no empty table


def _ceiling_md(summary):
    """vfio-user moves each I/O with one copy between the bdev and host memory:
    nvemu's and SPDK's rates against one core's measured copy rate."""
    x = summary.get("extras")
    per_run = summary.get("copy_per_run")
    if not x and not per_run:
        return []
    # Measured before every target's run when the run did so (the median over
    # the run), else once at its end.
    rates = ({k: v["median"] for k, v in per_run.items()} if per_run else
             {k: v["copies_per_s"] for k, v in x["memcpy"].items() if isinstance(v, dict)})
    lines = ["", "vfio-user against the one-core copy ceiling (`nvemu-perf --memcpy-bench`, "
             + ("median of the measurements before each run" if per_run else "once, after the run")
             + "):", "",
             "| initiator | case | ceiling (copies/s) | nvemu | of ceiling | SPDK | of ceiling |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["matrix"]:
        if r["transport"] != "VFIOUSER" or r["case"].startswith("randread-4k-qd1"):
            continue
        key = "128k" if "128k" in r["case"] else "4k"
        if "write" in r["case"] and "4k_write" in rates:
            key = "4k_write"
        cap = rates[key]
        cells = []
        for impl in ("nvemu", "spdk"):
            v = r.get(impl, {}).get("iops")
            cells += ([f"{v['median']:,.0f}", f"{v['median'] / cap:.0%}"] if v else ["–", "–"])
        lines.append(f"| {r['initiator']} | {r['case']} | {cap:,.0f} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 5 else []  # no vfio-user case ran: no table


def _state_md(summary):
    """The machine's copy rate before each target's run, and each case's
    ratio in the pairs that saw the faster and the slower half of it."""
    c = summary.get("copy_per_run", {}).get("4k")
    if not c:
        return []
    lines = [f"The machine's state: one core copied {c['median']:,.0f} random 4 KiB blocks/s "
             f"of a 512 MiB disk, measured for 0.3 s before each target's run "
             f"({c['min']:,.0f}–{c['max']:,.0f}, {c['n']} measurements). Ratios of the pairs "
             f"that saw the faster and the slower half of that (the two runs' mean against "
             f"the median), and how far apart a pair's two runs were:", "",
             "| initiator | transport | case | faster half | slower half | "
             "copy-rate gap within a pair, median (max) |", "|---|---|---|---|---|---|"]
    st = summary.get("settle")
    if st and st["pairs"]:
        again = sum(1 for p in st["pairs"] if p["attempts"] > 1)
        loose = [p for p in st["pairs"] if not p["settled"]]
        lines[0:0] = [f"Pairs under the same conditions: a pair is kept when the copy rate, "
                      f"measured before each of its runs and after the last, stays within "
                      f"{st['pct']:g} %; otherwise it is measured again (at most {st['tries']} "
                      f"attempts). {len(st['pairs'])} pairs, {again} measured again, "
                      f"{len(loose)} kept unsettled"
                      + (": " + ", ".join(f"{p['transport']} {p['case']} rep {p['rep']} "
                                          f"({p['drift']:.0%})" for p in loose) if loose else "")
                      + ".", ""]
    for r in summary["matrix"]:
        h = r.get("ratio_by_copy")
        if not h:
            continue
        cells = [f"{v['median']:.2f} ({v['min']:.2f}–{v['max']:.2f}), {v['n']} pairs"
                 if v["n"] else "–" for v in (h["faster"], h["slower"])]
        g = r["copy_gap"]
        lines.append(f"| {r['initiator']} | {r['transport']} | {r['case']} | {cells[0]} | "
                     f"{cells[1]} | {g['median']:.0%} ({g['max']:.0%}) |")
    return lines + [""]


def _num(v, fmt):
    return "–" if v != v else format(v, fmt)  # NaN: not reported


def markdown(summary):
    lines = []
    have_spdk = summary["spdk_same_run"]
    initiators = sorted({r["initiator"] for r in summary["matrix"]},
                        key=lambda i: 0 if i == "nvemu-perf" else 1)
    for ini in initiators:
        rows = [r for r in summary["matrix"] if r["initiator"] == ini]
        if len(initiators) > 1 or have_spdk:
            lines += [f"Initiator: `{ini}` (core 1) against each target (core 0).", ""]
        hdr = ("| transport | case | nvemu IOPS (median, min–max) | MiB/s | avg lat us | "
               "p99 us |")
        sep = "|---|---|---|---|---|---|"
        if have_spdk:
            hdr += (" SPDK IOPS (median, min–max) | SPDK avg lat us | SPDK p99 us | "
                    "nvemu/SPDK IOPS (min–max) | target busy % (nvemu / SPDK) | "
                    "others' CPU % max (nvemu / SPDK runs) | steal % max (nvemu / SPDK runs) |")
            sep += "---|---|---|---|---|---|---|"
        else:
            hdr += " SPDK reference (not same-run) |"
            sep += "---|"
        lines += [hdr, sep]
        for r in rows:
            n = r.get("nvemu")
            if n:
                row = (f"| {r['transport']} | {r['case']} | {n['iops']['median']:,.0f} "
                       f"({n['iops']['min']:,.0f}–{n['iops']['max']:,.0f}) | "
                       f"{n['mibps']['median']:,.0f} | {n['lat_us']['median']:.2f} | "
                       f"{_num(n['p99_us']['median'], '.2f')} |")
            else:
                row = f"| {r['transport']} | {r['case']} | – | – | – | – |"
            if have_spdk and "spdk" in r:
                sp = r["spdk"]
                row += (f" {sp['iops']['median']:,.0f} ({sp['iops']['min']:,.0f}–"
                        f"{sp['iops']['max']:,.0f}) | {sp['lat_us']['median']:.2f} | "
                        f"{_num(sp['p99_us']['median'], '.2f')} |")
                row += (f" {r['ratio']['median']:.2f} ({r['ratio']['min']:.2f}–"
                        f"{r['ratio']['max']:.2f}) |" if "ratio" in r else " – |")
            elif have_spdk:
                row += " – | – | – | – |"
            if have_spdk:
                tb = [r[i]["target_busy_pct"]["median"] if i in r and "target_busy_pct" in r[i]
                      else float("nan") for i in ("nvemu", "spdk")]
                row += f" {_num(tb[0], '.0f')} / {_num(tb[1], '.0f')} |"
                fc = [r[i]["foreign_cpu_pct"]["max"] if i in r and "foreign_cpu_pct" in r[i]
                      else float("nan") for i in ("nvemu", "spdk")]
                row += f" {_num(fc[0], '.0f')} / {_num(fc[1], '.0f')} |"
                st = [r[i]["steal_pct"]["max"] if i in r and "steal_pct" in r[i]
                      else float("nan") for i in ("nvemu", "spdk")]
                row += f" {_num(st[0], '.1f')} / {_num(st[1], '.1f')} |"
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
        lines.append("")
    lines += _state_md(summary)
    if summary.get("failures"):
        lines += ["Failed runs (not in the medians above):", "",
                  "| target | initiator | transport | case | rep | error |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {f['target']} | {f['initiator']} | {f['transport']} | {f['case']} | "
                  f"{f['rep']} | {f['error'][:120]} |" for f in summary["failures"]]
        lines.append("")
    x = summary.get("extras")
    if x:
        lines += _extras_md(x)
    if summary["spdk_same_run"]:
        lines += _goals_md(summary)
    lines += _ceiling_md(summary)
    lines += chain_md(summary)
    lines += rbd_md(summary)
    return "\n".join(lines).rstrip("\n") + "\n"


def plot(summary, out_png, workdir):
    """IOPS per case (median, min-max error bars) under the first initiator:
    nvemu per transport, and SPDK's nvmf_tgt beside it when it ran."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("gnuplot not found (apt-get install gnuplot-nox): no plot", file=sys.stderr)
        return False
    # SPDK perf when it ran: the issue's goals are stated in its terms.
    inis = summary.get("initiators", ["nvemu-perf"])
    ini = "spdk-perf" if "spdk-perf" in inis else inis[0]
    series = [("nvemu", "TCP", "nvemu NVMe/TCP"), ("nvemu", "VFIOUSER", "nvemu vfio-user")]
    if summary["spdk_same_run"]:
        series = [("nvemu", "TCP", "nvemu NVMe/TCP"), ("spdk", "TCP", "SPDK NVMe/TCP"),
                  ("nvemu", "VFIOUSER", "nvemu vfio-user"),
                  ("spdk", "VFIOUSER", "SPDK vfio-user")]
    ini_rows = [r for r in summary["matrix"] if r.get("initiator", ini) == ini]
    # gnuplot refuses a histogram column with no valid point: drop empty series.
    series = [x for x in series if any(r["transport"] == x[1] and x[0] in r for r in ini_rows)]
    if not series:
        return False
    dat = os.path.join(workdir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# case " + " ".join(f"{i}-{t} min max" for i, t, _ in series) + "\n")
        for case in dict.fromkeys(r["case"] for r in summary["matrix"]):  # in run order
            rows = {r["transport"]: r for r in summary["matrix"]
                    if r["case"] == case and r.get("initiator", ini) == ini}
            if not rows:
                continue
            cols = []
            for impl, tr, _ in series:
                v = rows.get(tr, {}).get(impl, {}).get("iops")
                cols += ([v["median"] / 1e3, v["min"] / 1e3, v["max"] / 1e3] if v else
                         ["NaN", "NaN", "NaN"])
            f.write(case + " " + " ".join(str(c) for c in cols) + "\n")
    plots = ", ".join(
        (f"'{dat}'" if n == 0 else "''") +
        f" using {2 + 3 * n}:{3 + 3 * n}:{4 + 3 * n}" + (":xtic(1)" if n == 0 else "") +
        f" title '{title}'" for n, (_, _, title) in enumerate(series))
    script = f"""
set terminal pngcairo size 1100,560 noenhanced font ",10"
set output '{out_png}'
set title '{ini} on core 1, target on core 0 (median, error bars min-max)'
set ylabel 'kIOPS'
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set key top right
set grid ytics
set yrange [0:*]
plot {plots}
"""
    p = subprocess.run([gp], input=script, text=True, capture_output=True)
    if p.returncode != 0 and "pngcairo" in p.stderr:
        p = subprocess.run([gp], input=script.replace("pngcairo", "png"), text=True,
                           capture_output=True)
    if p.returncode != 0:
        print("gnuplot failed:", p.stderr, file=sys.stderr)
        return False
    return True
