#!/usr/bin/python3
"""Helpers for bench/lab/run: process-tree CPU and RSS, one run's record, the report.

  labtool.py cpu PID          CPU of PID and all its descendants, in clock ticks
                              (utime+stime+cutime+cstime of every process in the tree)
  labtool.py rss PID          resident set of PID and all its descendants, in KiB (sum of VmRSS)
  labtool.py tree PID         the pids of the tree, one a line
  labtool.py exec TIMEFILE SECONDS CMD...
                              runs CMD, kills it after SECONDS (exit 124), and writes
                              "wall_s user_s sys_s" of CMD and its children to TIMEFILE
  labtool.py record OUT.json key=value... [--loadgen FILE] [--time FILE]
                              one measurement: loadgen JSON + the numbers the script gathered
  labtool.py report RAWDIR OUTDIR   medians over rounds, results.json and results.md, prints md

Standard library only; run with /usr/bin/python3.
"""
import glob
import json
import os
import statistics
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    for f in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(f) as fh:
                out += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return out


def tree(pid):
    seen, todo = [], [int(pid)]
    while todo and len(seen) < 100000:  # bounded
        p = todo.pop()
        if p in seen or not os.path.exists(f"/proc/{p}"):
            continue
        seen.append(p)
        todo += children(p)
    return seen


def stat_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            s = fh.read()
    except OSError:
        return 0
    # comm may contain spaces and parentheses: fields start after the last ')'.
    f = s[s.rindex(")") + 2:].split()
    # f[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
    return sum(int(f[i - 3]) for i in (14, 15, 16, 17))


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_exec(args):
    import signal
    import subprocess
    timefile, limit, cmd = args[0], float(args[1]), args[2:]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True)
    stop = []

    def on_signal(signum, _frame):
        stop.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    deadline = t0 + limit
    rc, ru = None, None
    while rc is None:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rc = os.waitstatus_to_exitcode(status)
            break
        if stop or time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            pid, status, ru = os.wait4(proc.pid, 0)
            rc = 130 if stop else 124
            break
        time.sleep(0.02)
    proc.returncode = rc  # reaped here, not by Popen
    wall = time.monotonic() - t0
    with open(timefile, "w") as fh:
        fh.write(f"{wall:.3f} {ru.ru_utime:.3f} {ru.ru_stime:.3f}\n")
    return rc if rc >= 0 else 128 - rc


def cmd_record(args):
    out = args[0]
    rec = {}
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--loadgen":
            path = args[i + 1]
            i += 2
            try:
                with open(path) as fh:
                    text = fh.read().strip()
                # The JSON object is the last line that parses (loadgen may print notes first).
                lg = None
                for line in [text] + text.splitlines()[::-1]:
                    try:
                        lg = json.loads(line)
                        break
                    except ValueError:
                        continue
                rec["loadgen"] = lg
            except OSError:
                rec["loadgen"] = None
            continue
        if a == "--time":  # "wall user sys", from `labtool.py exec`
            path = args[i + 1]
            i += 2
            try:
                with open(path) as fh:
                    last = [l for l in fh.read().split("\n") if l.strip()][-1].split()
                rec["loadgen_wall_s"], rec["loadgen_user_s"], rec["loadgen_sys_s"] = map(
                    float, last[-3:])
            except (OSError, ValueError, IndexError):
                pass
            continue
        k, _, v = a.partition("=")
        try:
            rec[k] = int(v)
        except ValueError:
            try:
                rec[k] = float(v)
            except ValueError:
                rec[k] = v
        i += 1
    rec["clk_tck"] = CLK_TCK
    with open(out, "w") as fh:
        json.dump(rec, fh, indent=1)


# ---------------------------------------------------------------------------- the report

PROXIES = ["mintgate", "squid", "haproxy", "mitmproxy", "direct"]
SCENARIOS = ["A", "B", "C", "D", "E", "cold"]
TITLES = {
    "A": "A minting-bound (unique hosts, 1 req/conn)",
    "B": "B handshake-bound (one host, 1 req/conn)",
    "C": "C relay (one host, 100 req/conn, small body)",
    "D": "D bulk (/1m)",
    "E": "E memory (distinct hosts)",
    "cold": "cold (first request to a never-seen host)",
}


def cpu_ms(rec, key="proxy"):
    b, a = rec.get(f"{key}_cpu_before"), rec.get(f"{key}_cpu_after")
    if b is None or a is None:
        return None
    return (a - b) * 1000.0 / rec.get("clk_tck", CLK_TCK)


def lg_cpu_ms(rec):
    if "loadgen_user_s" not in rec:
        return None
    return (rec["loadgen_user_s"] + rec["loadgen_sys_s"]) * 1000.0


def per_unit(ms, units, scale):
    if ms is None or not units:
        return None
    return ms * scale / units


def metrics(scen, rec):
    """The figures of one run: {name: value}."""
    lg = rec.get("loadgen") or {}
    m = {}
    conns = lg.get("connections") or 0
    reqs = lg.get("requests") or 0
    nbytes = lg.get("bytes") or 0
    pc = cpu_ms(rec, "proxy")
    oc = cpu_ms(rec, "origin")
    gc = lg_cpu_ms(rec)
    m["failed"] = lg.get("connections_failed", 0)
    m["errors"] = {k: v for k, v in (lg.get("errors") or {}).items() if v}
    if not conns and not reqs:
        return m  # nothing completed: no figures (listed under Failures)
    if scen in ("A", "B"):
        m["conns_per_s"] = lg.get("conns_per_s")
        m["handshake_p50_ms"] = (lg.get("handshake_ms") or {}).get("p50")
        m["handshake_p99_ms"] = (lg.get("handshake_ms") or {}).get("p99")
        m["proxy_cpu_ms_per_conn"] = per_unit(pc, conns, 1)
        m["origin_cpu_ms_per_conn"] = per_unit(oc, conns, 1)
        m["loadgen_cpu_ms_per_conn"] = per_unit(gc, conns, 1)
    elif scen == "C":
        m["requests_per_s"] = lg.get("requests_per_s")
        m["request_p50_ms"] = (lg.get("request_ms") or {}).get("p50")
        m["request_p99_ms"] = (lg.get("request_ms") or {}).get("p99")
        m["proxy_cpu_us_per_req"] = per_unit(pc, reqs, 1000)
        m["origin_cpu_us_per_req"] = per_unit(oc, reqs, 1000)
        m["loadgen_cpu_us_per_req"] = per_unit(gc, reqs, 1000)
    elif scen == "D":
        m["mb_per_s"] = lg.get("mb_per_s")
        gb = nbytes / 1e9
        m["proxy_cpu_s_per_gb"] = per_unit(pc, gb, 1e-3)
        m["origin_cpu_s_per_gb"] = per_unit(oc, gb, 1e-3)
        m["loadgen_cpu_s_per_gb"] = per_unit(gc, gb, 1e-3)
    elif scen == "E":
        hosts = conns
        m["hosts"] = hosts
        m["conns_per_s"] = lg.get("conns_per_s")
        rb, ra = rec.get("proxy_rss_before"), rec.get("proxy_rss_after")
        if rb is not None and ra is not None and hosts:
            m["rss_before_mib"] = rb / 1024
            m["rss_after_mib"] = ra / 1024
            m["kib_per_host"] = (ra - rb) / hosts
        m["proxy_cpu_ms_per_conn"] = per_unit(pc, conns, 1)
    elif scen == "cold":
        m["first_request_ms"] = (lg.get("first_request_ms") or {}).get("p50")
    return m


def median_of(values):
    v = [x for x in values if isinstance(x, (int, float))]
    return statistics.median(v) if v else None


# (scenario, metric, label, higher_is_better) rows of the two tables.
THROUGHPUT_ROWS = [
    ("A", "conns_per_s", "A new conns/s", True),
    ("A", "handshake_p50_ms", "A handshake p50 ms", False),
    ("B", "conns_per_s", "B new conns/s", True),
    ("B", "handshake_p50_ms", "B handshake p50 ms", False),
    ("C", "requests_per_s", "C requests/s", True),
    ("C", "request_p99_ms", "C request p99 ms", False),
    ("D", "mb_per_s", "D MB/s", True),
    ("E", "conns_per_s", "E new conns/s (minting)", True),
    ("cold", "first_request_ms", "cold first request ms", False),
]
CPU_ROWS = [
    ("A", "proxy_cpu_ms_per_conn", "A proxy CPU ms/conn", False),
    ("B", "proxy_cpu_ms_per_conn", "B proxy CPU ms/conn", False),
    ("C", "proxy_cpu_us_per_req", "C proxy CPU µs/request", False),
    ("D", "proxy_cpu_s_per_gb", "D proxy CPU s/GB", False),
    ("E", "hosts", "E hosts reached", None),
    ("E", "kib_per_host", "E RSS KiB per cached host", False),
    ("E", "rss_after_mib", "E RSS after, MiB", False),
]
SIDE_ROWS = [
    ("A", "loadgen_cpu_ms_per_conn", "A loadgen CPU ms/conn"),
    ("A", "origin_cpu_ms_per_conn", "A origin CPU ms/conn"),
    ("C", "loadgen_cpu_us_per_req", "C loadgen CPU µs/request"),
    ("C", "origin_cpu_us_per_req", "C origin CPU µs/request"),
    ("D", "loadgen_cpu_s_per_gb", "D loadgen CPU s/GB"),
    ("D", "origin_cpu_s_per_gb", "D origin CPU s/GB"),
]


def fmt(v):
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def cmd_report(rawdir, outdir):
    runs = {}  # (proxy, scen) -> [metrics per run]
    meta = {}
    metapath = os.path.join(rawdir, "..", "meta.json")
    if os.path.exists(metapath):
        with open(metapath) as fh:
            meta = json.load(fh)
    for path in sorted(glob.glob(os.path.join(rawdir, "*.json"))):
        with open(path) as fh:
            rec = json.load(fh)
        p, s = rec.get("proxy"), rec.get("scenario")
        runs.setdefault((p, s), []).append({"file": os.path.basename(path), **metrics(s, rec)})
    proxies = [p for p in PROXIES if any(k[0] == p for k in runs)]
    med = {}
    for (p, s), lst in runs.items():
        keys = {k for m in lst for k in m if k not in ("file", "errors")}
        med.setdefault(p, {})[s] = {k: median_of([m.get(k) for m in lst]) for k in keys}
        med[p][s]["runs"] = len(lst)
    result = {"meta": meta, "medians": med,
              "runs": {f"{p}/{s}": lst for (p, s), lst in sorted(runs.items())}}

    peers = [p for p in proxies if p != "mintgate"]
    lines = []
    lines.append("# mintgate load lab")
    lines.append("")
    if meta:
        lines.append(
            f"{meta.get('date', '')} · {meta.get('host', '')} · {meta.get('cpus', '?')} CPUs · "
            f"rounds {meta.get('rounds', '?')} (medians) · {meta.get('duration', '?')} s per run · "
            f"concurrency {meta.get('concurrency', '?')} · loadgen threads {meta.get('threads', '?')} · "
            f"E ≤ {meta.get('e_hosts', '?')} hosts in ≤ {meta.get('e_time', '?')} s · "
            f"origin session tickets {meta.get('origin_resumption', 'off')} · "
            f"origin certificates {meta.get('origin_certs', 'wildcard')} · "
            f"{meta.get('versions', '')}")
        lines.append("")
        if meta.get("notes"):
            for n in meta["notes"]:
                lines.append(f"- note: {n}")
            lines.append("")

    def table(rows, title, with_ratio=True):
        if not any(med.get(p, {}).get(r[0], {}).get(r[1]) is not None
                   for r in rows for p in proxies):
            return
        hdr = ["figure"] + proxies
        if with_ratio and "mintgate" in proxies:
            hdr += [f"mintgate ÷ {p}" for p in peers]
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
        for row in rows:
            s, k, label = row[0], row[1], row[2]
            vals = [med.get(p, {}).get(s, {}).get(k) for p in proxies]
            if all(v is None for v in vals):
                continue
            cells = [label] + [fmt(v) for v in vals]
            if with_ratio and "mintgate" in proxies and len(row) > 3 and row[3] is None:
                cells += [""] * len(peers)
            elif with_ratio and "mintgate" in proxies:
                mg = med.get("mintgate", {}).get(s, {}).get(k)
                for p in peers:
                    pv = med.get(p, {}).get(s, {}).get(k)
                    ok = mg is not None and pv is not None and mg > 0 and pv > 0
                    cells.append(f"{mg / pv:.2f}" if ok else "—")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    table(THROUGHPUT_ROWS, "Throughput and latency (ratio > 1: mintgate higher)")
    table(CPU_ROWS, "Proxy CPU and memory per unit of work (ratio < 1: mintgate cheaper)")
    table(SIDE_ROWS, "Load generator and origin CPU per unit (same machine, for context)",
          with_ratio=False)

    bad = []
    for (p, s), lst in sorted(runs.items()):
        for m in lst:
            if m.get("failed") or m.get("errors"):
                bad.append(f"- {p} {s} ({m['file']}): {m.get('failed', 0)} failed connections, "
                           f"errors {json.dumps(m.get('errors', {}))}")
            if not any(v is not None for k, v in m.items()
                       if k not in ("file", "failed", "errors", "hosts")):
                bad.append(f"- {p} {s} ({m['file']}): no figures (the load generator failed)")
    if bad:
        lines.append("## Failures")
        lines.append("")
        lines += bad
        lines.append("")
    md = "\n".join(lines)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(outdir, "results.md"), "w") as fh:
        fh.write(md)
    print(md)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "cpu":
        print(sum(stat_ticks(p) for p in tree(args[0])))
    elif cmd == "rss":
        print(sum(rss_kib(p) for p in tree(args[0])))
    elif cmd == "tree":
        print("\n".join(map(str, tree(args[0]))))
    elif cmd == "exec":
        return cmd_exec(args)
    elif cmd == "record":
        cmd_record(args)
    elif cmd == "report":
        cmd_report(args[0], args[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
