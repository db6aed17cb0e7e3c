"""pyrunc.cgroups against the real cgroupfs (root only): limits read back from the host files, a fork bomb held
at pids.max, freeze/thaw of a counting process, an OOM kill observed, and destroy leaving nothing behind.

Every test works under /pyrunc-test-<pid>-<n> only and removes it (processes killed first) even on failure.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import require

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _prerequisites():
    require(os.geteuid() == 0, "needs root to create cgroups")
    require(os.path.isdir("/sys/fs/cgroup"), "no cgroupfs mounted")

ROOT = "/sys/fs/cgroup"
_counter = [0]


def _our_dirs(base):
    """Every dir named after base under any hierarchy (v1 controllers and the cgroup2 mount)."""
    return sorted(glob.glob(f"{ROOT}/*{base}") + glob.glob(f"{ROOT}{base}"), key=len, reverse=True)


@pytest.fixture
def cg():
    from pyrunc.cgroups import open_manager

    _counter[0] += 1
    base = f"/pyrunc-test-{os.getpid()}-{_counter[0]}"
    mgr = open_manager(f"{base}/c1", "c1")
    procs = []
    try:
        yield mgr, procs, base
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        try:
            mgr.thaw()
        except Exception:
            pass
        try:
            for pid in mgr.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        except Exception:
            pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            mgr.destroy()
        except Exception:
            pass
        for d in _our_dirs(base):  # anything left (also the parent dirs), deepest first
            for sub in sorted(glob.glob(d + "/**/", recursive=True), key=len, reverse=True):
                for _ in range(50):
                    try:
                        os.rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
        assert _our_dirs(base) == [], "cgroup dirs left behind"


def _start(procs, argv, **kw):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def _cat(d, f):
    with open(os.path.join(d, f)) as fh:
        return fh.read().strip()


def _wait_for(cond, timeout=30.0):
    """Poll cond until it holds or timeout passes (no fixed sleep standing in for "long enough")."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_limits_join_and_destroy(cg):
    mgr, procs, base = cg
    mgr.create()
    assert mgr.created and all(os.path.isdir(d) for d in mgr.created)
    mgr.apply({"memory": {"limit": 64 << 20}, "pids": {"limit": 32}, "cpu": {"shares": 512}})
    p = _start(procs, ["sleep", "60"])
    mgr.add_pid(p.pid)
    if "memory" in mgr.paths:  # v1 / hybrid
        assert _cat(mgr.paths["memory"], "memory.limit_in_bytes") == str(64 << 20)
        assert _cat(mgr.paths["pids"], "pids.max") == "32"
        assert _cat(mgr.paths["cpu"], "cpu.shares") == "512"
        assert "c 1:3 rwm" in _cat(mgr.paths["devices"], "devices.list").splitlines()
    else:
        d = mgr.paths[""]
        assert _cat(d, "memory.max") == str(64 << 20)
        assert _cat(d, "pids.max") == "32"
        assert _cat(d, "cpu.weight") == "20"
    with open(f"/proc/{p.pid}/cgroup") as f:
        assert f"{base}/c1" in f.read()
    assert p.pid in mgr.pids()
    st = mgr.stats()
    assert st["pids"]["current"] >= 1 and st["pids"]["limit"] == 32
    p.kill()
    p.wait()
    mgr.destroy()
    assert mgr.created == []
    assert all(not os.path.exists(d) for d in mgr.paths.values())
    assert _our_dirs(base) == []


def test_fork_bomb_stops_at_pids_max(cg):
    mgr, procs, base = cg
    mgr.create()
    mgr.apply({"pids": {"limit": 8}})
    # The shell waits for a line on stdin so that it is inside the cgroup before it forks.
    p = _start(procs, ["sh", "-c", "read x; i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; sleep 30"])
    mgr.add_pid(p.pid)
    p.stdin.write(b"go\n")
    p.stdin.flush()
    d = mgr.paths.get("pids") or mgr.paths[""]
    if os.path.exists(os.path.join(d, "pids.events")):  # wait until the kernel has refused a fork
        assert _wait_for(lambda: int(_cat(d, "pids.events").split()[-1]) > 0), "no fork was refused"
    else:  # no pids.events (old kernels): wait for the cgroup to be full
        assert _wait_for(lambda: len(mgr.pids()) >= 8)
    n = len(mgr.pids())
    assert 1 < n <= 8
    assert int(_cat(d, "pids.current")) <= 8
    mgr.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    deadline = time.time() + 5
    while mgr.pids() and time.time() < deadline:
        time.sleep(0.05)
    assert mgr.pids() == []


COUNTER = """
import os, sys, time
path = sys.argv[1]
n = 0
while True:
    n += 1
    with open(path + ".tmp", "w") as f:  # written aside and renamed: frozen mid-write, the file still holds a number
        f.write(str(n))
    os.replace(path + ".tmp", path)
    time.sleep(0.01)
"""


def test_freeze_thaw_counting_process(cg, tmp_path):
    mgr, procs, base = cg
    mgr.create()
    mgr.apply({})
    out = tmp_path / "count"
    p = _start(procs, [sys.executable, "-c", COUNTER, str(out)])
    mgr.add_pid(p.pid)

    def count():
        try:
            return int(out.read_text())
        except FileNotFoundError:
            return 0

    assert _wait_for(lambda: count() > 2), "counter never written"
    assert not mgr.frozen()
    mgr.freeze()
    assert mgr.frozen()
    frozen_at = count()
    time.sleep(0.5)  # the negative control: whatever the load, a frozen process makes no progress in any time
    assert count() == frozen_at
    mgr.thaw()
    assert not mgr.frozen()
    assert _wait_for(lambda: count() > frozen_at), "no progress after thaw"


HOG = """
import sys
sys.stdin.read(1)
chunks = []
while True:
    b = bytearray(1 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    chunks.append(b)
"""


def test_oom_kill_observed(cg):
    mgr, procs, base = cg
    mgr.create()
    limit = 32 << 20
    mgr.apply({"memory": {"limit": limit, "swap": limit}})  # memory+swap == memory: no swap to escape to
    p = _start(procs, [sys.executable, "-c", HOG])
    mgr.add_pid(p.pid)
    watcher = mgr.oom_events()
    try:
        before = mgr.oom_count()
        p.stdin.write(b"x")
        p.stdin.flush()
        assert watcher.wait(timeout=20) >= 1
        assert p.wait(timeout=10) == -signal.SIGKILL
        assert mgr.oom_count() > before
    finally:
        watcher.close()
