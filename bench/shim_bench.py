"""`ctr run --rm IMG id true` through three paths, side by side in one run, on a private containerd:

    (a) containerd-shim-runc-v2 + runc     (b) containerd-shim-runc-v2 + pyrunc (--runc-binary)
    (c) containerd-shim-pyrunc-v1 (our shim; the lifecycle in-process)

    python3 bench/shim_bench.py [-n 15] [--pyrunc PATH] [--shim PATH]

Rounds are interleaved (a, b, c, a, b, c, ...) so load on the machine hits all three alike; medians reported.
Then the RSS of an idle shim daemon with one `sleep` container, ours next to the Go shim's.  Needs root,
containerd, ctr, runc and busybox; it starts its own containerd (tests/e2e/conftest.py) and removes everything.
Never a test: the figures go in the README.
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

SHIM = "containerd-shim-pyrunc-v1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def shim_daemon(d, cid, needle):
    """The pid of the shim daemon serving cid (its command line names the task id)."""
    from tests.e2e.conftest import _pids_with_cmdline

    for pid in _pids_with_cmdline(d.sock):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        # the program is argv[0] (Go's shim) or the script after the interpreter and its flags (`python3 -SP ...`)
        if any(needle.encode() in a for a in args[:3]) and cid.encode() in args:
            return pid
    raise SystemExit(f"bench: no shim daemon found for {cid}")


def main():
    from tests.e2e.conftest import IMAGE, Containerd, _busybox_path, _teardown, Session, build_oci_archive

    ap = argparse.ArgumentParser()
    here = os.path.dirname(sys.executable)
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--pyrunc", default=os.path.join(here, "pyrunc"))
    ap.add_argument("--shim", default=os.path.join(here, SHIM))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pyrunc-shimbench-", dir="/tmp")
    d = Containerd(tmp, namespace=f"shimbench-{os.getpid()}")
    sess = Session(daemon=d, tmp=tmp)
    pre = [p for p in ("/run/containerd", "/run/containerd/s", "/run/containerd/runc", "/run/containerd/fifo")
           if os.path.exists(p)]
    try:
        d.start()
        archive = os.path.join(tmp, "busybox.tar")
        build_oci_archive(_busybox_path(), archive)
        d.ctr("images", "import", archive, check=True, timeout=120)
        os.symlink(os.path.abspath(a.shim), os.path.join(d.shims, SHIM))
        paths = {
            "a": ("runc-v2 + runc", []),
            "b": ("runc-v2 + pyrunc", ["--runc-binary", a.pyrunc, "--runc-root", os.path.join(tmp, "pyrunc-root")]),
            "c": ("pyrunc shim", ["--runtime", "io.containerd.pyrunc.v1"]),
        }
        res = {k: [] for k in paths}
        for i in range(a.n + 1):  # round 0 warms the page cache and containerd up; not counted
            for k, (_, opts) in paths.items():
                cid = f"b{k}{i}"
                sess.ids_seen.add(cid)
                argv = ["ctr", "--address", d.sock, "--namespace", d.ns, "run", "--rm", "--fifo-dir", d.fifo,
                        *opts, IMAGE, cid, "true"]
                t = time.perf_counter()
                r = subprocess.run(argv, capture_output=True, timeout=60, env=d.env)
                dt = (time.perf_counter() - t) * 1000
                if r.returncode != 0:
                    raise SystemExit(f"bench: {' '.join(argv)} failed: {r.stderr.decode().strip()}")
                if i:
                    res[k].append(dt)
        rss = {}
        for k, needle in (("a", "containerd-shim-runc-v2"), ("c", SHIM)):
            cid = f"idle{k}"
            sess.ids_seen.add(cid)
            d.ctr("run", "-d", "--null-io", *paths[k][1], IMAGE, cid, "sleep", "600", check=True)
            pid = shim_daemon(d, cid, needle)
            time.sleep(1)  # idle: whatever start-up left behind has settled
            rss[k] = rss_kib(pid)
            d.force_remove(cid)
        print(f"`ctr run --rm IMG id true`, {a.n} interleaved rounds; / (a): the median of the rounds' ratios to "
              "(a), timed right before (bench.py's summarize() says why):\n")
        print("| path | median ms | min ms | / (a) |")
        print("|---|---|---|---|")
        for k, (name, _) in paths.items():
            m = statistics.median(res[k])
            ratio = statistics.median(x / y for x, y in zip(res[k], res["a"]))
            print(f"| ({k}) {name} | {m:.0f} | {min(res[k]):.0f} | {ratio:.2f}x |")
        print(f"\nidle shim daemon with one container, VmRSS: Go containerd-shim-runc-v2 {rss['a'] / 1024:.1f} MB, "
              f"{SHIM} {rss['c'] / 1024:.1f} MB")
    finally:
        _teardown(sess, pre)
        for d_ in (os.path.join("/run/containerd/pyrunc", d.ns), "/run/containerd/pyrunc",
                   *(["/run/containerd"] if "/run/containerd" not in pre else [])):
            try:
                os.rmdir(d_)  # our shim's per-namespace state root, and what held it, once empty
            except OSError:
                pass


if __name__ == "__main__":
    main()
