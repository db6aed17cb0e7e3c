"""A create's first process joins its cgroups by itself (cgroups.manager.Manager.own_join, init.py's drawing): born in
its cgroup2 cgroup by clone3(CLONE_INTO_CGROUP), and writing 0 to each v1 `tasks` file; nobody writes its pid to a
cgroup.procs, which would take the kernel's global migration lock and wait out an RCU grace period.

Real containers on this hybrid host, created through the library in a child Python whose seams record (and, per
case, break) the two ways in: fs.add_proc (a cgroup.procs write) and Linux.fork_into_cgroup (the clone3)."""

import json
import os
import subprocess
import sys

import pytest

HARNESS = """
import json, sys, threading
from pyrunc.cgroups import fs
from pyrunc.container.lifecycle import Runtime
from pyrunc.errors import Logger, SysError
from pyrunc.linux import Linux
from pyrunc.process import child

root, cid, bundle, case = sys.argv[1:5]
calls = []
real_add_proc, real_fork_into = fs.add_proc, Linux.fork_into_cgroup


def add_proc(d, pid):
    calls.append(["cgroup.procs", d])
    return real_add_proc(d, pid)


def fork_into_cgroup(self, fd, what=None):
    calls.append(["clone3", what])
    if case == "no clone3":
        raise SysError("clone3 CLONE_INTO_CGROUP", what, 38)  # ENOSYS, as on a kernel before 5.7
    return real_fork_into(self, fd, what)


fs.add_proc, Linux.fork_into_cgroup = add_proc, fork_into_cgroup
if case == "refused":
    child.OWN_TASK = b"x"  # the kernel refuses it: EINVAL
if case == "threads":  # a caller with another thread, as a shim is
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
try:
    c = Runtime(root, Logger()).create(cid, bundle)
    out = {"pid": c.pid}
except Exception as e:
    out = {"error": str(e)}
finally:
    if case == "threads":
        done.set()
        t.join()
out["calls"] = calls
print(json.dumps(out))
"""


def _create(pyrunc, b, cid, case):
    with open(b / "h.out", "wb") as fo, open(b / "h.err", "wb") as fe:  # files: the init inherits them
        p = subprocess.run([sys.executable, "-c", HARNESS, pyrunc.root, cid, str(b), case], stdin=subprocess.DEVNULL,
                           stdout=fo, stderr=fe, timeout=60)
    assert p.returncode == 0, (b / "h.err").read_text()
    return json.loads((b / "h.out").read_text())


def _cgroups(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.rstrip("\n").split(":", 2) for line in f]


def _unified(pyrunc, cid):
    """The container's cgroup2 dir on this hybrid host, from its state."""
    with open(os.path.join(pyrunc.root, cid, "state.json")) as f:
        return json.load(f)["cgroup_paths"][""]


@pytest.mark.parametrize("case", ["plain", "no clone3", "threads"])
def test_the_init_ends_up_in_every_cgroup_of_the_container(pyrunc, bundle, case):
    """plain: one clone3 into the cgroup2 cgroup and no cgroup.procs write at all.  no clone3 (a kernel or a
    seccomp filter without it): the parent writes the cgroup2 cgroup's cgroup.procs, and only that one.  threads:
    the raw clone3 is never used beside other threads; the parent writes every cgroup.procs, as before."""
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("own")
    got = _create(pyrunc, b, cid, case)
    assert "error" not in got, got
    try:
        lines = _cgroups(got["pid"])
        assert len(lines) > 2
        assert all(path.endswith("/" + cid) for _, _, path in lines), lines
        unified = _unified(pyrunc, cid)
        procs = [d for kind, d in got["calls"] if kind == "cgroup.procs"]
        if case == "plain":
            assert got["calls"] == [["clone3", unified]]
        elif case == "no clone3":
            assert got["calls"] == [["clone3", unified], ["cgroup.procs", unified]]
        else:
            assert procs == [d for _, d in got["calls"]], got  # no clone3
            assert len(set(procs)) == len(procs) == len(lines) and unified in procs, got  # one per hierarchy
    finally:
        assert pyrunc("delete", "--force", cid).returncode == 0


def test_a_refused_tasks_write_fails_the_create_naming_the_file_and_leaves_nothing(pyrunc, bundle):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("own")
    got = _create(pyrunc, b, cid, "refused")
    err = got.get("error", "")
    assert err.startswith("unable to start container process: write /sys/fs/cgroup/"), got
    assert f'/{cid}/tasks "x": invalid argument' in err, got
    assert not os.path.exists(os.path.join(pyrunc.root, cid))  # the fixture checks cgroups and mounts
