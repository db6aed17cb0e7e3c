"""Side-by-side timings of pyrunc and runc on the same busybox bundle, interleaved, one run.

    python3 bench/bench.py [--pyrunc PATH] [--runc PATH] [-n 20] [--markdown]

Per iteration and runtime: `run` of busybox `true`; then a create/start/state/kill/delete cycle of a
`sleep` container, each verb timed on its own.  The interpreter floor is `python -c pass` with the Python that
runs pyrunc.  Reports medians and pyrunc/runc ratios.  Needs root.  Never a test: figures go in the README.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


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


def interpreter_of(path):
    with open(path, "rb") as f:
        first = f.readline()
    if first.startswith(b"#!"):
        return first[2:].decode().strip().split()[0]
    return sys.executable


def main():
    from pyrunc.demo import make_bundle

    ap = argparse.ArgumentParser()
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc"))
    ap.add_argument("--runc", default=shutil.which("runc"))
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if not a.pyrunc or not a.runc:
        raise SystemExit("bench: need both --pyrunc and --runc (or both on PATH)")
    tmp = tempfile.mkdtemp(prefix="pyrunc-bench-")
    verbs = ["run", "create", "start", "state", "kill", "delete"]
    res = {rt: {v: [] for v in verbs} for rt in ("pyrunc", "runc")}
    floor = []
    py = interpreter_of(a.pyrunc)
    try:
        b_true = os.path.join(tmp, "true")
        b_sleep = os.path.join(tmp, "sleep")
        os.mkdir(b_true)
        os.mkdir(b_sleep)
        make_bundle(b_true, ["true"])
        make_bundle(b_sleep, ["sleep", "1000"])
        for i in range(a.n + 1):  # the first round warms caches and is dropped
            floor_t = timed([py, "-c", "pass"])
            for rt, binary in (("pyrunc", a.pyrunc), ("runc", a.runc)):
                root = os.path.join(tmp, "root-" + rt)
                g = [binary, "--root", root]
                cid = f"bench-{i}"
                t = {"run": timed(g + ["run", "--bundle", b_true, cid + "r"]),
                     "create": timed(g + ["create", "--bundle", b_sleep, cid])}
                t["start"] = timed(g + ["start", cid])
                t["state"] = timed(g + ["state", cid])
                t["kill"] = timed(g + ["kill", cid, "KILL"])
                time.sleep(0.02)
                t["delete"] = timed(g + ["delete", "--force", cid])
                if i:
                    for v in verbs:
                        res[rt][v].append(t[v])
            if i:
                floor.append(floor_t)
    finally:
        for rt, binary in (("pyrunc", a.pyrunc), ("runc", a.runc)):
            root = os.path.join(tmp, "root-" + rt)
            if os.path.isdir(root):
                for cid in os.listdir(root):
                    subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {rt: {v: statistics.median(res[rt][v]) for v in verbs} for rt in res}
    fl = statistics.median(floor)
    rows = [(v, med["pyrunc"][v], med["runc"][v], med["pyrunc"][v] / med["runc"][v]) for v in verbs]
    if a.markdown:
        print(f"| verb (median of {a.n}) | pyrunc ms | runc ms | pyrunc / runc |")
        print("|---|---|---|---|")
        for v, p, r, x in rows:
            print(f"| {v} | {p:.1f} | {r:.1f} | {x:.2f}x |")
        print(f"| `python -c pass` (floor) | {fl:.1f} | | state / floor = {med['pyrunc']['state'] / fl:.2f}x |")
    else:
        print(f"{'verb':8} {'pyrunc ms':>10} {'runc ms':>10} {'ratio':>7}")
        for v, p, r, x in rows:
            print(f"{v:8} {p:10.1f} {r:10.1f} {x:6.2f}x")
        print(f"floor (python -c pass) {fl:.1f} ms; pyrunc state / floor = {med['pyrunc']['state'] / fl:.2f}x")


if __name__ == "__main__":
    main()
