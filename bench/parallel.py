"""Target 3 of issue 12: N `run`s of busybox `true`, J at a time, and a check that nothing is left behind.

    python3 bench/parallel.py [--pyrunc PATH] [--runc PATH] [-n 200] [-j 16]

Each runtime gets its own private --root and bundle and ids no other run on the machine uses
(`par<pid>-<runtime>-<i>`).  After the batch: no state dir in the root, no cgroup directory named after an id in
any hierarchy, no mount of the temp dir in our mount namespace, no process whose command line, or cgroup, names
the temp dir or an id.  bench/bench.py calls measure() for both runtimes in the same invocation.  Needs root.
"""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def _run_one(argv):
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out after 120 s"
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[-300:]}"
    return None


def leftover_cgroups(prefix, root=CGROUP_ROOT):
    """Cgroup directories whose name starts with prefix, in every hierarchy under root."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in list(dirnames):
            if d.startswith(prefix):
                found.append(os.path.join(dirpath, d))
                dirnames.remove(d)
    return found


def leftover_mounts(needle, mountinfo="/proc/self/mountinfo"):
    """Mount points (field 5 of mountinfo) or sources containing needle."""
    with open(mountinfo) as f:
        return [line.split()[4] for line in f if needle in line]


def leftover_processes(needles):
    """Pids (not ours) whose command line or /proc/PID/cgroup contains one of needles.  Zombies do not count: a
    container's init killed after its runtime exited is reparented to PID 1, which on this VM (firecracker's
    process_api) reaps late; an exit record is not a process left running."""
    found = []
    me = os.getpid()
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                text = f.read().decode(errors="replace")
            with open(f"/proc/{p}/cgroup") as f:
                text += f.read()
        except OSError:
            continue
        if any(n in text for n in needles):
            found.append(int(p))
    return found


def measure(name, binary, n=200, jobs=16, tmp=None, tag=""):
    """Run `binary run` of busybox `true` n times, jobs at a time.  Returns a dict: wall_s, failures (list of
    messages), leftovers (dict of lists: state_dirs, cgroups, mounts, processes).  tag: in the ids, so that each
    batch of one invocation has its own."""
    from pyrunc.demo import make_bundle

    own_tmp = tmp is None
    tmp = tmp or tempfile.mkdtemp(prefix="pyrunc-par-")
    base = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
    root = os.path.join(base, "root")
    bundle = os.path.join(base, "bundle")
    os.mkdir(bundle)
    make_bundle(bundle, ["true"])
    prefix = f"par{os.getpid()}-{name}{tag}-"
    ids = [f"{prefix}{i}" for i in range(n)]
    argvs = [[binary, "--root", root, "run", "--bundle", bundle, cid] for cid in ids]
    try:
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            errors = list(pool.map(_run_one, argvs))
        wall = time.perf_counter() - t
        failures = [f"{cid}: {e}" for cid, e in zip(ids, errors) if e]
        left = {
            "state_dirs": sorted(os.listdir(root)) if os.path.isdir(root) else [],
            "cgroups": leftover_cgroups(prefix),
            "mounts": leftover_mounts(base),
            "processes": leftover_processes([base, prefix]),
        }
    finally:
        if os.path.isdir(root):  # clean up after a failure, so the machine is left as found
            for cid in os.listdir(root):
                subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
        shutil.rmtree(base if not own_tmp else tmp, ignore_errors=True)
    return {"runs": n, "jobs": jobs, "wall_s": wall, "failures": failures, "leftovers": left}


def clean(result):
    return not result["failures"] and not any(result["leftovers"].values())


def describe(result):
    left = ", ".join(f"{k}: {v[:3]}" for k, v in result["leftovers"].items() if v) or "nothing left behind"
    return f"{result['wall_s']:.2f} s, {len(result['failures'])} failures, {left}"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc"))
    ap.add_argument("--runc", default=shutil.which("runc"))
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-j", type=int, default=16)
    a = ap.parse_args()
    res = {name: measure(name, binary, a.n, a.j) for name, binary in (("runc", a.runc), ("pyrunc", a.pyrunc))}
    for name, r in res.items():
        print(f"{name:7} {describe(r)}")
        for msg in r["failures"][:5]:
            print(f"  {msg}")
    print(f"pyrunc / runc wall time: {res['pyrunc']['wall_s'] / res['runc']['wall_s']:.2f}x")
    return 0 if all(clean(r) for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
