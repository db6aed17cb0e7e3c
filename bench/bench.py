"""Side-by-side timings of pyrunc and runc on the same busybox bundle, interleaved, one run.

    python3 bench/bench.py [--pyrunc PATH] [--runc PATH] [-n 15] [--markdown] [--json FILE]
                           [--parallel 200 --jobs 16 --rounds 5] [--shim 11]

Per round and runtime: `run` of busybox `true`, then a create/start/state/kill/delete cycle of a `sleep`
container, each verb timed on its own (delete once an untimed `state` says the killed container is stopped).  The
interpreter floors, with the Python that runs pyrunc: `python -c pass` and `python -I -S -c pass` (the cheapest
start; issue 12's target for start/state/kill/delete is 1.1x of it), at each round's start, and the latter right
before each of those verbs too (see verbs()).  Reports medians, pyrunc/runc and pyrunc/floor ratios
(summarize()), and issue 12's targets.  --parallel adds bench/parallel.py (N `run`s, J at a time, both runtimes
in turn --rounds times, medians, leftovers checked); --shim adds bench/shim_bench.py (`ctr run --rm` under
containerd's runc-v2 shim, a private containerd).  --json writes everything for bench/chart.py and the README.
Needs root.  Never a test: figures go in the README.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

VERBS = ["run", "create", "start", "state", "kill", "delete"]
FLOOR_VERBS = ["start", "state", "kill", "delete"]
# issue 12's targets: verb -> (what it is compared with, the highest ratio allowed)
TARGETS = {"run": ("runc", 1.5), "create": ("runc", 1.6), **{v: ("floor", 1.1) for v in FLOOR_VERBS}}
PARALLEL_TARGET = 1.5
SHIM_TARGET = 1.3


def timed(argv):
    # stdio to files, not pipes: a created container inherits them and would hold a pipe open
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        dt = (time.perf_counter() - t) * 1000
        if rc != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(argv)} failed ({rc}): {err.read().decode().strip()}")
    return dt


def runtime_options(ap, n):
    """The options bench.py and waterfall.py share: the two runtimes, the rounds, the output forms."""
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc"))
    ap.add_argument("--runc", default=shutil.which("runc"))
    ap.add_argument("-n", type=int, default=n, help="rounds (medians of them; one more warms up)")
    ap.add_argument("--markdown", action="store_true", help="print the README's markdown")
    ap.add_argument("--json", metavar="FILE", help="write all results (and every sample) here")


def interpreter_of(path):
    """The interpreter of a #! script (flags dropped), else the Python running us."""
    with open(path, "rb") as f:
        first = f.readline()
    if first.startswith(b"#!"):
        return first[2:].decode().strip().split()[0]
    return sys.executable


SHIM_ROW = re.compile(r"^\| \((\w)\) (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$")


def parse_shim_output(text):
    """The table bench/shim_bench.py prints -> {"a": {"path", "median_ms", "min_ms", "vs_a"}, ...}."""
    rows = {}
    for line in text.splitlines():
        m = SHIM_ROW.match(line.strip())
        if m:
            rows[m.group(1)] = {"path": m.group(2), "median_ms": float(m.group(3)), "min_ms": float(m.group(4)),
                                "vs_a": float(m.group(5))}
    return rows


def shim_bench(n, pyrunc):
    """bench/shim_bench.py as a child (it starts and tears down its own containerd); its parsed table."""
    shim = os.path.join(os.path.dirname(pyrunc), "containerd-shim-pyrunc-v1")
    argv = [sys.executable, os.path.join(HERE, "shim_bench.py"), "-n", str(n), "--pyrunc", pyrunc, "--shim", shim]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    rows = parse_shim_output(r.stdout)
    if "a" not in rows or "b" not in rows:
        raise SystemExit(f"bench: no table in the output of shim_bench.py:\n{r.stdout}")
    return {"n": n, "rows": rows, "text": r.stdout.strip(), "limit": SHIM_TARGET,
            "ratio_b_a": rows["b"]["vs_a"], "medians_b_a": rows["b"]["median_ms"] / rows["a"]["median_ms"]}


def status(g, cid):
    r = subprocess.run(g + ["state", cid], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(g)} state {cid} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)["status"]


def wait_stopped(g, cid, polls=100):
    """Untimed `state`s until the killed container is stopped, as a caller of kill waits before delete.  Not a
    sleep: after the CPUs of this VM idle for 20 ms, any process started runs ~1 ms slower, the floor included
    (README, "What is left"), and the floor and the other verbs are each timed right after another process."""
    for _ in range(polls):
        if status(g, cid) == "stopped":
            return
    raise SystemExit(f"bench: {cid} not stopped after {polls} `state`s following `kill {cid} KILL`")


def cycle(binary, root, cid, b_true, b_sleep, floor_argv):
    """One runtime's `run`, then its create/start/state/kill/delete cycle; the floor timed right before each of
    start/state/kill/delete.  Returns ({verb: ms}, {verb: floor ms})."""
    g = [binary, "--root", root]
    t = {"run": timed(g + ["run", "--bundle", b_true, cid + "r"]),
         "create": timed(g + ["create", "--bundle", b_sleep, cid])}
    f = {}
    for verb, args in ("start", [cid]), ("state", [cid]), ("kill", [cid, "KILL"]), ("delete", ["--force", cid]):
        if verb == "delete":
            wait_stopped(g, cid)
        f[verb] = timed(floor_argv)
        t[verb] = timed(g + [verb] + args)
    return t, f


def verbs(pyrunc, runc, n):
    """Interleaved rounds: the floors, pyrunc's cycle, runc's cycle, as the issue's own figures were taken.  This
    VM's speed changes by ~30% for stretches of a few hundred ms, so each floor verb also has the floor timed right
    before it, and a ratio is taken between samples timed close together (summarize).  Returns (samples, floors,
    adjacent) in ms: by runtime and verb; by floor, one a round; pyrunc's floor right before each floor verb."""
    from pyrunc.demo import make_bundle

    tmp = tempfile.mkdtemp(prefix="pyrunc-bench-")
    res = {rt: {v: [] for v in VERBS} for rt in ("pyrunc", "runc")}
    py = interpreter_of(pyrunc)
    floors = {"python -c pass": [py, "-c", "pass"], "python -I -S -c pass": [py, "-I", "-S", "-c", "pass"]}
    floor = {k: [] for k in floors}
    adjacent = {v: [] for v in FLOOR_VERBS}
    try:
        b_true = os.path.join(tmp, "true")
        b_sleep = os.path.join(tmp, "sleep")
        os.mkdir(b_true)
        os.mkdir(b_sleep)
        make_bundle(b_true, ["true"])
        make_bundle(b_sleep, ["sleep", "1000"])
        for i in range(n + 1):  # the first round warms caches and is dropped
            f = {k: timed(argv) for k, argv in floors.items()}
            for rt, binary in (("pyrunc", pyrunc), ("runc", runc)):
                t, before = cycle(binary, os.path.join(tmp, "root-" + rt), f"bench-{i}", b_true, b_sleep,
                                  floors["python -I -S -c pass"])
                if i:
                    for v in VERBS:
                        res[rt][v].append(t[v])
                    if rt == "pyrunc":  # runc's cycle times them too, unused: both cycles keep one shape
                        for v in FLOOR_VERBS:
                            adjacent[v].append(before[v])
            if i:
                for k in floors:
                    floor[k].append(f[k])
    finally:
        for rt, binary in (("pyrunc", pyrunc), ("runc", runc)):
            root = os.path.join(tmp, "root-" + rt)
            if os.path.isdir(root):
                for cid in os.listdir(root):
                    subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return res, floor, adjacent


def summarize(res, floor, adjacent):
    """Medians, and issue 12's verb targets.  A ratio is the median of the rounds' ratios of samples timed close
    together: pyrunc's and runc's of the same verb in a round, a floor verb's and the floor timed right before it.
    The ratios of the medians (medians_vs_runc, medians_vs_floor: against the floors of the rounds' starts) are
    kept too."""
    fl = {k: statistics.median(v) for k, v in floor.items()}
    base = fl["python -I -S -c pass"]
    out = {}
    for v in VERBS:
        ps, rs = res["pyrunc"][v], res["runc"][v]
        p, r = statistics.median(ps), statistics.median(rs)
        vs_runc = statistics.median(a / b for a, b in zip(ps, rs))
        vs_floor = statistics.median(a / b for a, b in zip(ps, adjacent[v])) if v in adjacent else p / base
        what, limit = TARGETS[v]
        ratio = vs_runc if what == "runc" else vs_floor
        out[v] = {"pyrunc_ms": p, "runc_ms": r, "vs_runc": vs_runc, "vs_floor": vs_floor,
                  "medians_vs_runc": p / r, "medians_vs_floor": p / base, "ratio": ratio, "limit": limit,
                  "target": f"<= {limit}x {'runc' if what == 'runc' else 'python -I -S'}", "met": ratio <= limit,
                  "pyrunc_all": ps, "runc_all": rs, "floor_before": adjacent.get(v)}
    return out, fl


def markdown(r):
    """The README table and the lines under it."""
    n, fl, h = r["n"], r["floor_ms"], r["host"]
    lines = [f"`make bench` on {r['date']}: {h['cpus']} CPUs, load average {h['loadavg'][0]:.1f} at the start, kernel "
             f"{h['kernel']}, `{h['python']}`.", "",
             f"Milliseconds: medians of {n} rounds. Ratios: the median of the rounds' ratios (pyrunc's and runc's "
             "verb in a round; the verb and `python -I -S -c pass` timed right before it).",
             "", "| verb | pyrunc ms | runc ms | pyrunc / runc | pyrunc / `python -I -S` | target (issue 12) |",
             "|---|---|---|---|---|---|"]
    for v in VERBS:
        x = r["verbs"][v]
        lines.append(f"| {v} | {x['pyrunc_ms']:.1f} | {x['runc_ms']:.1f} | {x['vs_runc']:.2f}x | "
                     f"{x['vs_floor']:.2f}x | {x['target']}: {'met' if x['met'] else '**not met**'} |")
    for k, ms in fl.items():
        lines.append(f"| `{k}` (floor) | {ms:.1f} | | | {ms / fl['python -I -S -c pass']:.2f}x | |")
    p = r.get("parallel")
    if p:
        pr, rr = p["pyrunc"], p["runc"]
        lines.append("")
        lines.append(f"{pr['runs']} `run`s of busybox `true`, {pr['jobs']} in parallel, {p.get('rounds', 1)} batches "
                     f"each in turn (the median wall, the median of the rounds' ratios): pyrunc {pr['wall_s']:.2f} s, "
                     f"runc {rr['wall_s']:.2f} s, **{p['ratio']:.2f}x** (target <= {PARALLEL_TARGET}x: "
                     f"{'met' if p['met'] else 'not met'}); failures: pyrunc {len(pr['failures'])}, runc "
                     f"{len(rr['failures'])}; left behind (state dirs, cgroups, mounts, processes): "
                     f"{'nothing' if p['clean'] else 'SEE JSON'}.")
    s = r.get("shim")
    if s:
        a, b = s["rows"]["a"], s["rows"]["b"]
        lines.append("")
        lines.append(f"`ctr run --rm IMG id true` under containerd's runc-v2 shim, {s['n']} interleaved rounds: "
                     f"runc {a['median_ms']:.0f} ms, pyrunc {b['median_ms']:.0f} ms, **{s['ratio_b_a']:.2f}x** "
                     f"(target <= {SHIM_TARGET}x: {'met' if s['ratio_b_a'] <= SHIM_TARGET else 'not met'})"
                     + (f"; our own shim {s['rows']['c']['median_ms']:.0f} ms ({s['rows']['c']['vs_a']:.2f}x)"
                        if "c" in s["rows"] else "") + " (ms: medians; ratios: the medians of the rounds' ratios).")
    return "\n".join(lines)


def plain(r):
    """The markdown, then shim_bench.py's own output (with the idle shim RSS) when it ran."""
    return markdown(r) + (f"\n\nbench/shim_bench.py:\n{r['shim']['text']}" if r.get("shim") else "")


def parallel(a):
    """--parallel: runc's batch and pyrunc's, in turn, --rounds times (which goes first swaps each round); each
    runtime's median wall time, and the median of the rounds' ratios (as summarize()'s).  One batch each swung the
    ratio by ~0.2x from run to run on this VM, and the ratio of the median walls of three by ~0.15x."""
    sys.path.insert(0, HERE)
    from parallel import clean, measure

    batches = {"runc": [], "pyrunc": []}
    order = [("runc", a.runc), ("pyrunc", a.pyrunc)]
    for i in range(a.rounds):
        for name, binary in order if i % 2 == 0 else order[::-1]:
            batches[name].append(measure(name, binary, a.parallel, a.jobs, tag=str(i)))
    p = {name: {"runs": a.parallel, "jobs": a.jobs, "wall_s": statistics.median(b["wall_s"] for b in bs),
                "wall_all": [b["wall_s"] for b in bs], "failures": [f for b in bs for f in b["failures"]],
                "leftovers": {k: [x for b in bs for x in b["leftovers"][k]] for k in bs[0]["leftovers"]}}
         for name, bs in batches.items()}
    p["rounds"] = a.rounds
    p["ratio"] = statistics.median(x / y for x, y in zip(p["pyrunc"]["wall_all"], p["runc"]["wall_all"]))
    p["medians_ratio"] = p["pyrunc"]["wall_s"] / p["runc"]["wall_s"]
    p["clean"] = clean(p["pyrunc"]) and clean(p["runc"])
    p["met"] = p["ratio"] <= PARALLEL_TARGET and p["clean"]
    p["limit"] = PARALLEL_TARGET
    return p


def main():
    ap = argparse.ArgumentParser()
    runtime_options(ap, 15)
    ap.add_argument("--parallel", type=int, default=0, metavar="N", help="also N runs of `true`, --jobs at a time")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5,
                    help="--parallel batches per runtime (the median of the rounds' ratios)")
    ap.add_argument("--shim", type=int, default=0, metavar="N", help="also bench/shim_bench.py -n N")
    a = ap.parse_args()
    if not a.pyrunc or not a.runc:
        raise SystemExit("bench: need both --pyrunc and --runc (or both on PATH)")
    a.pyrunc, a.runc = os.path.abspath(a.pyrunc), os.path.abspath(a.runc)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    v, fl = summarize(*verbs(a.pyrunc, a.runc, a.n))
    r = {"date": started, "n": a.n, "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                                               "kernel": platform.release(), "python": interpreter_of(a.pyrunc),
                                               "runc": a.runc, "pyrunc": a.pyrunc},
         "verbs": v, "floor_ms": fl}
    if a.parallel:
        r["parallel"] = parallel(a)
    if a.shim:
        r["shim"] = shim_bench(a.shim, a.pyrunc)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
    print(markdown(r) if a.markdown else plain(r))
    p = r.get("parallel")
    if p and not p["clean"]:  # a failed run or a leftover is a bug, not a figure
        for name in ("pyrunc", "runc"):
            print(f"bench: parallel {name}: {p[name]['failures'][:5]} left behind: {p[name]['leftovers']}",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
