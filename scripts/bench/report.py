#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Aggregate the benchmark records written by scripts/bench/guest.sh
(phases B1 to B6).

Usage: report.py BENCH_DIR [--smoke]

Reads BENCH_DIR/records.jsonl (one JSON object per measurement) and
BENCH_DIR/raw/B4/series/*.iops, writes BENCH_DIR/results.json (every
figure as min/median/max plus the ratios), BENCH_DIR/table.txt (the text
table, also printed) and gnuplot PNGs in BENCH_DIR/plots/.  Never fails on
timing; exits 1 only when there is nothing to report.
"""
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict

PEERS = ["linear", "dm-mirror", "fm-always", "fm-gen", "fm-gen-md",
         "fm-gen-bg"]
FM = ["fm-always", "fm-gen", "fm-gen-md", "fm-gen-bg"]


def spread(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": statistics.median(vals),
            "max": max(vals), "n": len(vals)}


def med(s):
    return None if s is None else s["median"]


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def fnum(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)


def fspread(s, fmt="{:.0f}"):
    if s is None:
        return "-"
    if s["n"] == 1:
        return fmt.format(s["median"])
    return "%s [%s-%s]" % (fmt.format(s["median"]), fmt.format(s["min"]),
                           fmt.format(s["max"]))


def fratio(v):
    return "-" if v is None else "%.2f" % v


def load(bench):
    recs = []
    path = os.path.join(bench, "records.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass
    return recs


def host_load(bench):
    """The host's load average at the start and end of each phase."""
    out = {}
    raw = os.path.join(bench, "raw")
    for ph in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
        try:
            with open(os.path.join(raw, ph, "host.txt")) as f:
                out[ph] = [l.strip() for l in f
                           if l.startswith(("kernel", "module", "start",
                                            "end"))]
        except OSError:
            pass
    return out


def guest_params(bench):
    params = {}
    raw = os.path.join(bench, "raw")
    for ph in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
        try:
            with open(os.path.join(raw, ph, "guest.log")) as f:
                for line in f:
                    if "bench guest:" in line and "phases=" in line:
                        params[ph] = line.split("bench guest:", 1)[1].strip()
                        break
        except OSError:
            pass
    return params


def enrich(bench, recs):
    """Fill sync_p50_us / sync_mean_us from the raw fio JSON when a record
    (from an older guest.sh) lacks them."""
    for r in recs:
        if r.get("phase") not in ("B1", "B2") or "sync_p50_us" in r:
            continue
        f = os.path.join(bench, "raw", r["phase"], "fio", "%s-%s-d%d-j%d-r%d.json"
                         % (r["phase"], r["peer"], r["delay_ms"], r["jobs"],
                            r["run"]))
        try:
            with open(f) as fh:
                sync = json.load(fh)["jobs"][0]["sync"]["lat_ns"]
            r["sync_p50_us"] = sync["percentile"]["50.000000"] / 1000
            r["sync_mean_us"] = sync["mean"] / 1000
        except (OSError, ValueError, KeyError, IndexError):
            pass


def fio_phase(recs, phase):
    groups = defaultdict(list)
    for r in recs:
        if r.get("phase") == phase:
            groups[(r["delay_ms"], r["jobs"], r["peer"])].append(r)
    out = []
    def order(item):
        (d, j, peer), _ = item
        return (d, j, PEERS.index(peer) if peer in PEERS else 99, peer)
    for (d, j, peer), rs in sorted(groups.items(), key=order):
        fpg = []
        copy_mibs = []
        for r in rs:
            if r.get("guest_flushes"):
                fpg.append(r["dst_flushes"] / r["guest_flushes"])
            if r.get("copied_before") is not None and r.get("regions") and \
                    r.get("wall_s"):
                copy_mibs.append((r["copied_after"] - r["copied_before"]) *
                                 r["region_sectors"] * 512 / 2**20 /
                                 r["wall_s"])
        out.append({
            "delay_ms": d, "jobs": j, "peer": peer,
            "iops": spread([r.get("iops") for r in rs]),
            "sync_p99_us": spread([r.get("sync_p99_us") for r in rs]),
            "sync_p50_us": spread([r.get("sync_p50_us") for r in rs]),
            "sync_mean_us": spread([r.get("sync_mean_us") for r in rs]),
            "write_p99_us": spread([r.get("write_p99_us") for r in rs]),
            "dst_flushes": spread([r.get("dst_flushes") for r in rs]),
            "guest_flushes": spread([r.get("guest_flushes") for r in rs]),
            "dst_flushes_per_guest_flush": spread(fpg),
            "fm_dest_flushes": spread([r.get("fm_dest_flushes") for r in rs]),
            "fm_issued_per_guest_flush": spread(
                [r["fm_dest_flushes"] / r["guest_flushes"] for r in rs
                 if r.get("fm_dest_flushes") is not None and
                 r.get("guest_flushes")]),
            "copy_mib_s": spread(copy_mibs) if phase == "B2" else None,
            "phase_after": sorted({r.get("phase_after") for r in rs}),
            "fio_errors": sum(1 for r in rs if r.get("fio_rc")),
            # with a metadata device: its writes (bitmap blocks and
            # superblocks) per guest write, commits, writes held for intent
            "md_writes_per_write": spread(
                [r["md_writes"] / r["writes"] for r in rs
                 if r.get("md_writes") is not None and r.get("writes")]),
            "md_commits": spread([r.get("md_commits") for r in rs]),
            "md_held_per_write": spread(
                [r["md_held_writes"] / r["writes"] for r in rs
                 if r.get("md_held_writes") is not None and r.get("writes")]),
        })
    # ratios against the ceiling (linear, from B1) and dm-mirror
    b1 = {(g["delay_ms"], g["jobs"], g["peer"]): g
          for g in (out if phase == "B1" else fio_phase(recs, "B1"))} \
        if phase == "B2" else {(g["delay_ms"], g["jobs"], g["peer"]): g
                               for g in out}
    here = {(g["delay_ms"], g["jobs"], g["peer"]): g for g in out}
    for g in out:
        k = (g["delay_ms"], g["jobs"])
        ceil = b1.get(k + ("linear",))
        mir = here.get(k + ("dm-mirror",))
        g["iops_vs_ceiling"] = ratio(med(g["iops"]),
                                     med(ceil["iops"]) if ceil else None)
        g["iops_vs_dm_mirror"] = ratio(med(g["iops"]),
                                       med(mir["iops"]) if mir else None)
        # the metadata's cost: against the same target without it
        nomd = here.get(k + ("fm-gen",))
        g["iops_vs_no_md"] = ratio(med(g["iops"]),
                                   med(nomd["iops"]) if nomd else None) \
            if g["peer"] == "fm-gen-md" else None
    return out


def b3(recs):
    groups = defaultdict(list)
    for r in recs:
        if r.get("phase") == "B3" and r.get("ok"):
            groups[r["peer"]].append(r)
    out = []
    dd = spread([r["time_s"] for r in groups.get("dd", [])])
    mir = spread([r["time_s"] for r in groups.get("dm-mirror", [])])
    order = ["dd", "dm-mirror"] + sorted(
        (k for k in groups if k.startswith(("fm-j", "fm-md-j"))),
        key=lambda k: (k.startswith("fm-md-"), int(k.rsplit("j", 1)[1])))
    for peer in order:
        rs = groups.get(peer)
        if not rs:
            continue
        t = spread([r["time_s"] for r in rs])
        mib = rs[0]["bytes"] / 2**20
        out.append({
            "peer": peer, "mib": mib, "time_s": t,
            "mib_s": mib / t["median"] if t["median"] else None,
            "rate_vs_device_limit": ratio(med(dd), t["median"]),
            "time_vs_dm_mirror": ratio(t["median"], med(mir)),
            "dst_flushes": spread([r.get("dst_flushes") for r in rs]),
            "md_writes": spread([r.get("md_writes") for r in rs]),
        })
    # the metadata's cost: copy rate against the same copy_jobs without it
    by = {g["peer"]: g for g in out}
    for g in out:
        nomd = by.get("fm-j" + g["peer"][7:]) \
            if g["peer"].startswith("fm-md-j") else None
        g["rate_vs_no_md"] = ratio(g["mib_s"], nomd["mib_s"]) \
            if nomd else None
    return out


def b4(recs):
    groups = defaultdict(list)
    for r in recs:
        if r.get("phase") == "B4":
            groups[r["peer"]].append(r)
    out = []
    ceil = spread([r.get("iops_during") for r in groups.get("linear", [])])
    mir = groups.get("dm-mirror", [])
    mir_t = spread([r.get("time_to_synced_s") for r in mir if r.get("ok")])
    for peer in PEERS:
        rs = groups.get(peer)
        if not rs:
            continue
        t = spread([r.get("time_to_synced_s") for r in rs if r.get("ok")])
        during = spread([r.get("iops_during") for r in rs])
        out.append({
            "peer": peer, "delay_ms": rs[0].get("delay_ms"),
            "mib": rs[0]["bytes"] / 2**20,
            "time_to_synced_s": t,
            "iops_before": spread([r.get("iops_before") for r in rs]),
            "iops_during": during,
            "iops_after": spread([r.get("iops_after") for r in rs]),
            "dst_flushes_per_guest_flush": spread(
                [r["dst_flushes"] / r["guest_flushes"] for r in rs
                 if r.get("guest_flushes")]),
            "iops_during_vs_ceiling": ratio(med(during), med(ceil)),
            "time_vs_dm_mirror": ratio(med(t), med(mir_t)),
            "failed_runs": sum(1 for r in rs if not r.get("ok")),
        })
    return out


def b6(recs):
    """pgbench per (delay, mode, peer): TPS, latency, destination flushes
    per transaction, and for flushmirror the share of guest flushes that
    needed no destination flush (1 - dest_flushes / guest_flushes, its own
    status counters)."""
    groups = defaultdict(list)
    for r in recs:
        if r.get("phase") == "B6" and not r.get("pgbench_rc") and r.get("tps"):
            groups[(r["delay_ms"], r["mode"], r["peer"])].append(r)
    out = []
    def order(item):
        (d, m, peer), _ = item
        return (d, 0 if m == "synced" else 1,
                PEERS.index(peer) if peer in PEERS else 99, peer)
    for (d, m, peer), rs in sorted(groups.items(), key=order):
        out.append({
            "delay_ms": d, "mode": m, "peer": peer,
            "clients": rs[0].get("clients"), "scale": rs[0].get("scale"),
            "tps": spread([r.get("tps") for r in rs]),
            "lat_avg_ms": spread([r.get("lat_avg_ms") for r in rs]),
            "src_flushes_per_txn": spread(
                [r["src_flushes"] / r["txns"] for r in rs if r.get("txns")]),
            "dst_flushes_per_txn": spread(
                [r["dst_flushes"] / r["txns"] for r in rs if r.get("txns")]),
            "fm_guest_flushes": spread([r.get("fm_guest_flushes") for r in rs]),
            "fm_dest_flushes": spread([r.get("fm_dest_flushes") for r in rs]),
            "fm_saved_share": spread(
                [1 - r["fm_dest_flushes"] / r["fm_guest_flushes"] for r in rs
                 if r.get("fm_guest_flushes")]),
            "phase_after": sorted({r.get("phase_after") for r in rs}),
        })
    ceil = {(g["delay_ms"],): g for g in out
            if g["peer"] == "linear" and g["mode"] == "synced"}
    here = {(g["delay_ms"], g["mode"], g["peer"]): g for g in out}
    for g in out:
        c = ceil.get((g["delay_ms"],))
        mir = here.get((g["delay_ms"], g["mode"], "dm-mirror"))
        g["tps_vs_ceiling"] = ratio(med(g["tps"]), med(c["tps"]) if c else None)
        g["tps_vs_dm_mirror"] = ratio(med(g["tps"]),
                                      med(mir["tps"]) if mir else None)
    return out


def b5(recs):
    """B5, the remote destination over NBD, per round trip: the idle copy
    (dd over the link, dm-mirror, flushmirror per copy_jobs), the fio
    fsync load synced and copying (and the source alone), and the
    migration under that load; plus the issue's goals, checked."""
    rs5 = [r for r in recs if r.get("phase") == "B5"]
    if not rs5:
        return None
    rtts = sorted({r["rtt_ms"] for r in rs5 if r.get("rtt_ms") is not None})
    out = {"rtts": rtts, "link": [], "copy": [], "fio": [], "load": [],
           "goals": []}
    copies = defaultdict(list)
    fios = defaultdict(list)
    loads = defaultdict(list)
    meas = defaultdict(list)
    for r in rs5:
        kind = r.get("kind") or "fio"
        if r.get("rtt_measured_ms") is not None:
            meas[r["rtt_ms"]].append(r["rtt_measured_ms"])
        if kind == "copy" and r.get("ok"):
            copies[(r["rtt_ms"], r["peer"])].append(r)
        elif kind == "load":
            loads[(r["rtt_ms"], r["peer"])].append(r)
        elif kind == "fio":
            fios[(r["rtt_ms"], r["jobs"], r["mode"], r["peer"])].append(r)

    def corder(p):
        if p.startswith("dd-"):
            return (0, p)
        if p == "dm-mirror":
            return (1, p)
        return (2, int(p[4:]) if p[4:].isdigit() else 99)

    idx_copy = {}
    for rtt in rtts:
        peers = sorted({p for (t, p) in copies if t == rtt}, key=corder)
        mibs = {}
        for p in peers:
            rs = copies[(rtt, p)]
            t = spread([r["time_s"] for r in rs])
            mib = rs[0]["bytes"] / 2**20
            mibs[p] = mib / t["median"] if t and t["median"] else None
            g = {"rtt_ms": rtt, "peer": p, "mib": mib, "time_s": t,
                 "mib_s": mibs[p],
                 "dst_flushes": spread([r.get("dst_flushes") for r in rs])}
            out["copy"].append(g)
            idx_copy[(rtt, p)] = g
        dds = [v for p, v in mibs.items() if p.startswith("dd-") and v]
        link = max(dds) if dds else None
        mir = idx_copy.get((rtt, "dm-mirror"))
        for p in peers:
            g = idx_copy[(rtt, p)]
            g["rate_vs_dd"] = ratio(g["mib_s"], link)
            g["time_vs_dm_mirror"] = ratio(med(g["time_s"]),
                                           med(mir["time_s"]) if mir else None)
        out["link"].append({"rtt_ms": rtt, "rtt_measured_ms": spread(meas[rtt]),
                            "dd_mib_s": link})

    def forder(k):
        rtt, j, m, p = k
        return (rtt, j, 0 if m == "synced" else 1,
                PEERS.index(p) if p in PEERS else 99)
    idx = {}
    for k in sorted(fios, key=forder):
        rtt, j, m, p = k
        rs = fios[k]
        copy_mibs = [(r["copied_after"] - r["copied_before"]) *
                     r["region_sectors"] * 512 / 2**20 / r["wall_s"]
                     for r in rs if r.get("regions") and r.get("wall_s")
                     and r.get("copied_before") is not None]
        g = {"rtt_ms": rtt, "jobs": j, "mode": m, "peer": p,
             "iops": spread([r.get("iops") for r in rs]),
             "sync_p50_us": spread([r.get("sync_p50_us") for r in rs]),
             "sync_p99_us": spread([r.get("sync_p99_us") for r in rs]),
             "dst_flushes_per_guest_flush": spread(
                 [r["dst_flushes"] / r["guest_flushes"] for r in rs
                  if r.get("guest_flushes")]),
             "fm_issued_per_guest_flush": spread(
                 [r["fm_dest_flushes"] / r["guest_flushes"] for r in rs
                  if r.get("fm_dest_flushes") is not None and
                  r.get("guest_flushes")]),
             "copy_mib_s": spread(copy_mibs) if m == "copy" else None,
             "phase_after": sorted({r.get("phase_after") for r in rs}),
             "fio_errors": sum(1 for r in rs if r.get("fio_rc"))}
        out["fio"].append(g)
        idx[k] = g
    for g in out["fio"]:
        src = idx.get((g["rtt_ms"], g["jobs"], "synced", "linear"))
        mir = idx.get((g["rtt_ms"], g["jobs"], g["mode"], "dm-mirror"))
        g["iops_vs_source"] = ratio(med(g["iops"]),
                                    med(src["iops"]) if src else None)
        g["iops_vs_dm_mirror"] = ratio(med(g["iops"]),
                                       med(mir["iops"]) if mir else None)

    for rtt in rtts:
        src = loads.get((rtt, "linear"), [])
        ceil = spread([r.get("iops_during") for r in src])
        for p in PEERS:
            rs = loads.get((rtt, p))
            if not rs:
                continue
            t = spread([r.get("time_to_synced_s") for r in rs if r.get("ok")])
            # the idle copy of the same copier: dm-mirror's resync, or
            # flushmirror with its default copy_jobs (8)
            idle = idx_copy.get((rtt, "dm-mirror" if p == "dm-mirror"
                                 else "fm-j8"))
            during = spread([r.get("iops_during") for r in rs])
            out["load"].append({
                "rtt_ms": rtt, "peer": p, "jobs": rs[0].get("jobs"),
                "mib": rs[0]["bytes"] / 2**20,
                "time_to_synced_s": t,
                "idle_time_s": idle["time_s"] if idle and p != "linear" else None,
                "time_vs_idle": ratio(med(t), med(idle["time_s"]))
                if idle and p != "linear" else None,
                "iops_before": spread([r.get("iops_before") for r in rs]),
                "iops_during": during,
                "iops_after": spread([r.get("iops_after") for r in rs]),
                "iops_during_vs_source": ratio(med(during), med(ceil)),
                "dst_flushes_per_guest_flush": spread(
                    [r["dst_flushes"] / r["guest_flushes"] for r in rs
                     if r.get("guest_flushes")]),
                "failed_runs": sum(1 for r in rs if not r.get("ok"))})

    # the goals of issue 11, at every round trip (the are at 2 ms)
    G = out["goals"]
    def goal(rtt, what, value, target, met):
        G.append({"rtt_ms": rtt, "goal": what, "value": value,
                  "target": target, "met": met})
    for rtt in rtts:
        fm = [g for g in out["copy"] if g["rtt_ms"] == rtt and
              g["peer"].startswith("fm-j") and g["rate_vs_dd"] is not None]
        if fm:
            best = max(fm, key=lambda g: g["rate_vs_dd"])
            goal(rtt, "idle copy >= 0.9x dd over the link (best copy_jobs: %s)"
                 % best["peer"][4:], best["rate_vs_dd"], 0.9,
                 best["rate_vs_dd"] >= 0.9)
        for g in out["fio"]:
            if g["rtt_ms"] != rtt or g["peer"] not in ("fm-gen", "fm-gen-bg"):
                continue
            # copy_mode background is for the copy phase: synced, it
            # mirrors as the default does
            if g["peer"] == "fm-gen-bg" and g["mode"] != "copy":
                continue
            if g["mode"] == "copy":
                for what, v, tgt in (("copying IOPS >= 0.5x the source alone",
                                      g["iops_vs_source"], 0.5),
                                     ("copying IOPS >= 10x dm-mirror",
                                      g["iops_vs_dm_mirror"], 10)):
                    if v is not None:
                        goal(rtt, "%s (%s, jobs %d)" % (what, g["peer"],
                                                        g["jobs"]),
                             v, tgt, v >= tgt)
            elif g["iops_vs_dm_mirror"] is not None:
                goal(rtt, "synced IOPS >= dm-mirror (%s, jobs %d)" %
                     (g["peer"], g["jobs"]),
                     g["iops_vs_dm_mirror"], 1.0,
                     g["iops_vs_dm_mirror"] >= 1.0)
        for g in out["load"]:
            if g["rtt_ms"] == rtt and g["peer"] in FM:
                goal(rtt, "converges under load (%s)" % g["peer"],
                     g["time_vs_idle"], None, g["failed_runs"] == 0 and
                     g["time_to_synced_s"] is not None)
    return out


def b5_table(res, w):
    r5 = res.get("B5")
    if not r5:
        return
    mib = r5["copy"][0]["mib"] if r5["copy"] else None
    w("")
    w("B5 remote destination over NBD: veth + netem round trip, nbd-server "
      "(other network namespace) exporting a null_blk, %s MiB" %
      fnum(mib))
    w("srvfl: flushes the server's null_blk completed (stat field 16); "
      "/dd: copy rate / the fastest dd over the link; /source: IOPS / the "
      "source alone (dm-linear)")
    w("%-6s %-12s %-18s" % ("RTT", "measured ms", "dd over link MiB/s"))
    for l in r5["link"]:
        w("%-6s %-12s %-18s" % ("%gms" % l["rtt_ms"],
                                fnum(med(l["rtt_measured_ms"]), "{:.2f}"),
                                fnum(l["dd_mib_s"], "{:.1f}")))
    w("")
    w("B5 idle copy to synced")
    w("%-6s %-10s %-22s %-8s %-6s %-10s %-6s" % (
        "RTT", "copier", "time s", "MiB/s", "/dd", "/dm-mirror", "srvfl"))
    for g in r5["copy"]:
        w("%-6s %-10s %-22s %-8s %-6s %-10s %-6s" % (
            "%gms" % g["rtt_ms"], g["peer"], fspread(g["time_s"], "{:.2f}"),
            fnum(g["mib_s"], "{:.1f}"), fratio(g["rate_vs_dd"]),
            fratio(g["time_vs_dm_mirror"]), fnum(med(g["dst_flushes"]))))
    w("")
    w("B5 fio randwrite 4k direct fsync=1, synced and copying (flushmirror "
      "copy_rate %s KiB/s; dm-mirror resyncs at full speed)" %
      res["meta"].get("b5_copy_rate_kib", "?"))
    w("%-6s %-4s %-6s %-10s %-20s %-7s %-7s %-9s %-7s %-7s %-7s %s" % (
        "RTT", "jobs", "mode", "peer", "IOPS", "p50 ms", "p99 ms",
        "srvfl/gfl", "issued", "/source", "/mirror", "copy MiB/s"))
    for g in r5["fio"]:
        p50, p99 = med(g["sync_p50_us"]), med(g["sync_p99_us"])
        w("%-6s %-4s %-6s %-10s %-20s %-7s %-7s %-9s %-7s %-7s %-7s %s" % (
            "%gms" % g["rtt_ms"], g["jobs"], g["mode"], g["peer"],
            fspread(g["iops"]),
            fnum(p50 / 1000 if p50 is not None else None, "{:.2f}"),
            fnum(p99 / 1000 if p99 is not None else None, "{:.2f}"),
            fnum(med(g["dst_flushes_per_guest_flush"]), "{:.2f}"),
            fnum(med(g["fm_issued_per_guest_flush"]), "{:.2f}"),
            fratio(g["iops_vs_source"]), fratio(g["iops_vs_dm_mirror"]),
            fspread(g["copy_mib_s"], "{:.1f}") if g["mode"] == "copy" else ""))
    if r5["load"]:
        w("")
        w("B5 migration under fio randwrite 4k fsync=1, %s jobs (linear: the "
          "source alone); idle: the same copier's idle copy" %
          r5["load"][0]["jobs"])
        w("%-6s %-10s %-20s %-8s %-8s %-16s %-16s %-16s %-8s %-9s" % (
            "RTT", "peer", "time to synced s", "idle s", "/idle",
            "IOPS before", "IOPS during", "IOPS after", "/source",
            "srvfl/gfl"))
        for g in r5["load"]:
            w("%-6s %-10s %-20s %-8s %-8s %-16s %-16s %-16s %-8s %-9s" % (
                "%gms" % g["rtt_ms"], g["peer"],
                fspread(g["time_to_synced_s"], "{:.1f}"),
                fnum(med(g["idle_time_s"]), "{:.1f}"),
                fratio(g["time_vs_idle"]), fspread(g["iops_before"]),
                fspread(g["iops_during"]), fspread(g["iops_after"]),
                fratio(g["iops_during_vs_source"]),
                fnum(med(g["dst_flushes_per_guest_flush"]), "{:.2f}")))
    if r5["goals"]:
        w("")
        w("B5 goals of issue 11 (flushmirror generation; the issue sets them "
          "at 2 ms)")
        for g in r5["goals"]:
            w("%-6s %-72s %-8s %s" % (
                "%gms" % g["rtt_ms"], g["goal"], fratio(g["value"]),
                "met" if g["met"] else "NOT met"))


def table(res):
    L = []
    w = L.append
    w("dm-flushmirror benchmarks (UML, memory-backed null_blk, destination "
      "behind dm-delay)")
    w("figures: median [min-max] over runs; ratios use medians")
    w("dstfl/gfl: flushes the destination device completed (null_blk stat "
      "field 16) per guest flush (fio fsync count);")
    w("issued: destination flushes flushmirror issued per guest flush (its "
      "status counter; blk-mq may merge concurrent ones below it)")
    w("/ceil: IOPS / dm-linear on the source alone; /mirror: IOPS / dm-mirror")
    w("p50/p99 ms: fsync latency percentiles (fio, medians over runs)")
    for ph, title in (("B1", "B1 synced, fio randwrite 4k direct fsync=1"),
                      ("B2", "B2 copying (flushmirror copy_rate %s KiB/s), "
                       "same load" % res["meta"].get("b2_copy_rate_kib", "?"))):
        rows = res.get(ph) or []
        if not rows:
            continue
        w("")
        w(title)
        hdr = "%-5s %-4s %-10s %-22s %-8s %-8s %-17s %-7s %-7s %-7s" % (
            "delay", "jobs", "peer", "IOPS", "p50 ms", "p99 ms",
            "dstfl/gfl", "issued", "/ceil", "/mirror")
        if ph == "B2":
            hdr += " copy MiB/s"
        w(hdr)
        for g in rows:
            p50, p99 = med(g["sync_p50_us"]), med(g["sync_p99_us"])
            line = "%-5s %-4s %-10s %-22s %-8s %-8s %-17s %-7s %-7s %-7s" % (
                "%dms" % g["delay_ms"], g["jobs"], g["peer"],
                fspread(g["iops"]),
                fnum(p50 / 1000 if p50 is not None else None, "{:.2f}"),
                fnum(p99 / 1000 if p99 is not None else None, "{:.2f}"),
                fspread(g["dst_flushes_per_guest_flush"], "{:.2f}"),
                fnum(med(g["fm_issued_per_guest_flush"]), "{:.2f}"),
                fratio(g["iops_vs_ceiling"]),
                fratio(g["iops_vs_dm_mirror"]))
            if ph == "B2":
                line += " " + fspread(g["copy_mib_s"], "{:.1f}")
            w(line)
    if res.get("B3"):
        w("")
        w("B3 idle copy of %.0f MiB, region %s sectors, flush delay 0" % (
            res["B3"][0]["mib"], res["meta"].get("region_sectors", "?")))
        w("fm-md-jN: with a metadata device (checkpoints every 5 s); "
          "/no md: its rate / fm-jN's; mdwr: metadata writes")
        w("%-10s %-24s %-9s %-13s %-10s %-8s %-7s %s" % (
            "copier", "time to synced s", "MiB/s", "/device limit",
            "/dm-mirror", "dstfl", "/no md", "mdwr"))
        for g in res["B3"]:
            w("%-10s %-24s %-9s %-13s %-10s %-8s %-7s %s" % (
                g["peer"], fspread(g["time_s"], "{:.2f}"),
                fnum(g["mib_s"], "{:.0f}"),
                fratio(g["rate_vs_device_limit"]),
                fratio(g["time_vs_dm_mirror"]),
                fspread(g["dst_flushes"]), fratio(g.get("rate_vs_no_md")),
                fnum(med(g.get("md_writes"))) if g["peer"].startswith(
                    "fm-md-") else ""))
    md_rows = [(ph, g) for ph in ("B1", "B2") for g in res.get(ph) or []
               if g["peer"] == "fm-gen-md"]
    if md_rows:
        w("")
        w("B1/B2 the metadata's cost: fm-gen-md (metadata on a null_blk of "
          "its own, checkpoint_interval 5) against fm-gen")
        w("mdwr/wr: metadata writes per guest write (bitmap blocks and "
          "superblocks at the metadata device); held/wr: guest writes that "
          "waited for an intent commit, per write")
        w("%-5s %-5s %-4s %-22s %-7s %-8s %-8s %-8s %-8s" % (
            "phase", "delay", "jobs", "IOPS", "/no md", "p99 ms",
            "mdwr/wr", "held/wr", "commits"))
        for ph, g in md_rows:
            p99 = med(g["sync_p99_us"])
            w("%-5s %-5s %-4s %-22s %-7s %-8s %-8s %-8s %-8s" % (
                ph, "%dms" % g["delay_ms"], g["jobs"], fspread(g["iops"]),
                fratio(g["iops_vs_no_md"]),
                fnum(p99 / 1000 if p99 is not None else None, "{:.2f}"),
                fnum(med(g["md_writes_per_write"]), "{:.4f}"),
                fnum(med(g["md_held_per_write"]), "{:.4f}"),
                fnum(med(g["md_commits"]))))
    if res.get("B4"):
        w("")
        w("B4 migration under fio randwrite 4k fsync=1 (1 job) of %.0f MiB, "
          "flush delay %s ms" % (res["B4"][0]["mib"],
                                 res["B4"][0]["delay_ms"]))
        w("%-10s %-22s %-18s %-18s %-18s %-13s %-9s" % (
            "peer", "time to synced s", "IOPS before", "IOPS during",
            "IOPS after", "during/ceil", "t/mirror"))
        for g in res["B4"]:
            w("%-10s %-22s %-18s %-18s %-18s %-13s %-9s" % (
                g["peer"], fspread(g["time_to_synced_s"], "{:.1f}"),
                fspread(g["iops_before"]), fspread(g["iops_during"]),
                fspread(g["iops_after"]),
                fratio(g["iops_during_vs_ceiling"]),
                fratio(g["time_vs_dm_mirror"])))
    if res.get("B6"):
        g0 = res["B6"][0]
        w("")
        w("B6 PostgreSQL 15 on ext4, pgbench TPC-B-like, scale %s, %s clients; "
          "copy: flushmirror copy_rate %s KiB/s" % (
              g0["scale"], g0["clients"],
              res["meta"].get("b6_copy_rate_kib", "?")))
        w("srcfl/txn, dstfl/txn: flushes the source / destination device "
          "completed per transaction; no-dest: share of flushmirror's guest "
          "flushes that needed no destination flush")
        w("%-5s %-6s %-10s %-22s %-16s %-9s %-9s %-7s %-7s %-7s %s" % (
            "delay", "mode", "peer", "TPS", "latency ms", "srcfl/txn",
            "dstfl/txn", "no-dest", "/ceil", "/mirror", "phase after"))
        for g in res["B6"]:
            w("%-5s %-6s %-10s %-22s %-16s %-9s %-9s %-7s %-7s %-7s %s" % (
                "%dms" % g["delay_ms"], g["mode"], g["peer"],
                fspread(g["tps"], "{:.1f}"),
                fnum(med(g["lat_avg_ms"]), "{:.2f}"),
                fnum(med(g["src_flushes_per_txn"]), "{:.2f}"),
                fnum(med(g["dst_flushes_per_txn"]), "{:.2f}"),
                fnum(med(g["fm_saved_share"]), "{:.2f}"),
                fratio(g["tps_vs_ceiling"]), fratio(g["tps_vs_dm_mirror"]),
                ",".join(p or "?" for p in g["phase_after"])))
    b5_table(res, w)
    return "\n".join(L) + "\n"


def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        print("report: gnuplot missing, no plots", file=sys.stderr)
        return
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                       capture_output=True)
    if r.returncode:
        print("report: gnuplot: " + r.stderr[-500:], file=sys.stderr)


def plots(bench, res):
    pd = os.path.join(bench, "plots")
    os.makedirs(pd, exist_ok=True)
    term = 'set terminal pngcairo size 1000,560 font "sans,10"\n' \
        if "pngcairo" in subprocess.run(
            ["gnuplot", "-e", "set terminal"], capture_output=True,
            text=True).stderr + subprocess.run(
            ["gnuplot", "-e", "set terminal"], capture_output=True,
            text=True).stdout else 'set terminal png size 1000,560\n'

    # destination flushes per guest flush and IOPS, B1 and B2
    for ph in ("B1", "B2"):
        rows = res.get(ph) or []
        if not rows:
            continue
        keys = sorted({(g["delay_ms"], g["jobs"]) for g in rows})
        peers = [p for p in PEERS if any(g["peer"] == p for g in rows)]
        idx = {(g["delay_ms"], g["jobs"], g["peer"]): g for g in rows}
        for what, field, ylabel in (
                ("flushes", "dst_flushes_per_guest_flush",
                 "destination flushes per guest flush"),
                ("iops", "iops", "guest write IOPS (fsync=1)")):
            dat = os.path.join(pd, "%s-%s.dat" % (ph.lower(), what))
            with open(dat, "w") as f:
                f.write("case " + " ".join(peers) + "\n")
                for k in keys:
                    vals = []
                    for p in peers:
                        g = idx.get(k + (p,))
                        v = med(g[field]) if g else None
                        vals.append("0" if v is None else "%g" % v)
                    f.write('"%dms/%dj" %s\n' % (k[0], k[1], " ".join(vals)))
            gnuplot(term + """
set output '%s-%s.png'
set title '%s: %s (median of runs; x: flush delay / fio jobs)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set ylabel '%s'
set yrange [0:*]
set grid ytics
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (ph.lower(), what, ph, ylabel, ylabel, len(peers) + 1,
                os.path.basename(dat)), pd)

    # B4: guest IOPS over time during the migration, run 1 of each peer
    sd = os.path.join(bench, "raw", "B4", "series")
    if os.path.isdir(sd):
        series = []
        for p in PEERS:
            f = os.path.join(sd, "B4-%s-r1.iops" % p)
            if os.path.exists(f) and os.path.getsize(f):
                shutil.copy(f, os.path.join(pd, "b4-%s.iops" % p))
                series.append(p)
        marks = ""
        synced = {}
        for i, p in enumerate(series):
            g = next((g for g in res.get("B4") or [] if g["peer"] == p), None)
            t = med(g["time_to_synced_s"]) if g else None
            if t is not None:
                synced[p] = t
                marks += ("set arrow from %g, graph 0 to %g, graph 1 nohead "
                          "dt 2 lc %d\n" % (t, t, i + 1))
        if series:
            plot = ", ".join(
                "'b4-%s.iops' using 1:2 with lines lw 2 lc %d title '%s%s'"
                % (p, i + 1, p, ", synced at %.1f s" % synced[p]
                   if p in synced else "") for i, p in enumerate(series))
            gnuplot(term + """
set output 'b4-iops-over-time.png'
set title 'B4: guest IOPS during the migration (fio randwrite 4k fsync=1, 1 job; t=0: table reloaded to the peer)'
set xlabel 'seconds since the migration started'
set ylabel 'guest write IOPS (0.25 s averages, log scale)'
set logscale y
set yrange [10:*]
set grid
set key bottom right
%s
plot %s
""" % (marks, plot), pd)

    # B3 copy rates
    if res.get("B3"):
        dat = os.path.join(pd, "b3.dat")
        with open(dat, "w") as f:
            for g in res["B3"]:
                f.write('"%s" %g\n' % (g["peer"], g["mib_s"] or 0))
        gnuplot(term + """
set output 'b3-copy-rate.png'
set title 'B3: idle copy rate to synced (MiB/s, median); dd = device limit'
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set grid ytics
unset key
plot 'b3.dat' using 2:xtic(1)
""", pd)

    # B5: the idle copy rate per round trip, IOPS and server flushes
    r5 = res.get("B5")
    if r5:
        def hist(name, rows, cols, get, title, ylabel, log=False):
            dat = os.path.join(pd, name + ".dat")
            with open(dat, "w") as f:
                f.write("case " + " ".join(cols) + "\n")
                for label, key in rows:
                    vals = []
                    for c in cols:
                        v = get(key, c)
                        vals.append("NaN" if v is None else "%g" % v)
                    f.write('"%s" %s\n' % (label, " ".join(vals)))
            gnuplot(term + """
set output '%s.png'
set title '%s'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set ylabel '%s'
%s
set grid ytics
set xtics rotate by -30
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (name, title, ylabel,
       "set logscale y\nset yrange [1:*]" if log else "set yrange [0:*]",
       len(cols) + 1, os.path.basename(dat)), pd)
        cidx = {(g["rtt_ms"], g["peer"]): g for g in r5["copy"]}
        ccols = []
        for g in r5["copy"]:
            if g["peer"] not in ccols:
                ccols.append(g["peer"])
        hist("b5-copy-rate", [("%g ms" % t, t) for t in r5["rtts"]], ccols,
             lambda t, c: cidx[(t, c)]["mib_s"] if (t, c) in cidx else None,
             "B5: idle copy rate to synced over NBD (MiB/s, median; x: round "
             "trip)", "MiB/s")
        fidx = {(g["rtt_ms"], g["jobs"], g["mode"], g["peer"]): g
                for g in r5["fio"]}
        rows = []
        for g in r5["fio"]:
            k = (g["rtt_ms"], g["jobs"], g["mode"])
            lab = ("%gms/%dj/%s" % k, k)
            if lab not in rows:
                rows.append(lab)
        fcols = [p for p in PEERS if any(g["peer"] == p for g in r5["fio"])]
        hist("b5-iops", rows, fcols,
             lambda k, c: med(fidx[k + (c,)]["iops"]) if k + (c,) in fidx
             else None,
             "B5: guest IOPS, fio randwrite 4k fsync=1 over NBD (x: round "
             "trip / jobs / synced or copying)",
             "guest write IOPS (log scale)", log=True)
        hist("b5-flushes", rows, [c for c in fcols if c != "linear"],
             lambda k, c: med(fidx[k + (c,)]["dst_flushes_per_guest_flush"])
             if k + (c,) in fidx else None,
             "B5: server-side destination flushes per guest flush",
             "server flushes per guest flush")
        lidx = {(g["rtt_ms"], g["peer"]): g for g in r5["load"]}
        lcols = [p for p in PEERS if p != "linear" and
                 any(g["peer"] == p for g in r5["load"])]
        hist("b5-time-to-synced", [("%g ms" % t, t) for t in r5["rtts"]],
             lcols,
             lambda t, c: med(lidx[(t, c)]["time_to_synced_s"])
             if (t, c) in lidx else None,
             "B5: time to synced under the fsync load over NBD (s, median)",
             "seconds")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    bench = sys.argv[1]
    recs = load(bench)
    enrich(bench, recs)
    if not recs:
        print("report: no records in %s/records.jsonl" % bench,
              file=sys.stderr)
        return 1
    meta = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "host_kernel": platform.release(),
        "host_cpus": os.cpu_count(),
        "guest": guest_params(bench),
        "host_load": host_load(bench),
        "smoke": "--smoke" in sys.argv,
        "b2_copy_rate_kib": next((r.get("copy_rate_kib") for r in recs
                                  if r.get("phase") == "B2"), None),
        "b5_copy_rate_kib": next((r.get("copy_rate_kib") for r in recs
                                  if r.get("phase") == "B5" and
                                  r.get("copy_rate_kib")), None),
        "b6_copy_rate_kib": next((r.get("copy_rate_kib") for r in recs
                                  if r.get("phase") == "B6" and
                                  r.get("copy_rate_kib")), None),
        "region_sectors": next((r.get("region_sectors") for r in recs
                                if r.get("region_sectors")), None),
        "records": len(recs),
    }
    res = {"meta": meta, "B1": fio_phase(recs, "B1"),
           "B2": fio_phase(recs, "B2"), "B3": b3(recs), "B4": b4(recs),
           "B5": b5(recs), "B6": b6(recs)}
    txt = table(res)
    with open(os.path.join(bench, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(bench, "table.txt"), "w") as f:
        f.write(txt)
    plots(bench, res)
    print(txt)
    print("results: %s/results.json, plots: %s/plots/" % (bench, bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
