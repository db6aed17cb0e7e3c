"""pyrunc SIGKILLed in the middle of `create` (an OOM kill, a shim timeout): no container process may be left
blocked forever, `delete` must clean up what was made (directory, cgroup, mounts) and the id must be usable again.

The kill points are reached for real: a prestart or createRuntime hook that kills its parent (pyrunc), and a
--pidfd-socket listener that kills pyrunc when it receives the pidfd, which pyrunc sends after the stub reported
ready and state.json was written, but before it lets the init go on to wait for `start`.
"""

import json
import os
import select
import signal
import socket
import subprocess
import time

import pytest

from .conftest import _cgroup_dirs
from .test_lifecycle import gone as _gone


def _kill_parent_hook(kind, pidfile):
    """A hook that records the init's pid (from the state on stdin) and SIGKILLs the hook's parent: pyrunc."""
    script = f"sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/' > {pidfile}; kill -9 $PPID; sleep 5"

    def edit(c):
        c["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 10}]}
    return edit


def _create(pyrunc, b, cid, tmp_path, *extra):
    err = tmp_path / f"{cid}.err"
    with open(err, "wb") as f:  # files, not pipes: a surviving init would hold a pipe open
        return subprocess.Popen(pyrunc.cmd("create", *extra, "--bundle", b, cid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=f)


def _reusable(pyrunc, b, cid, tmp_path):
    """The id can be created again, and that container runs."""
    p = _create(pyrunc, b, cid, tmp_path)
    assert p.wait(60) == 0, (tmp_path / f"{cid}.err").read_text()
    assert pyrunc.state(cid)["status"] == "created"
    pyrunc("delete", "--force", cid, check=True)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime"])
@pytest.mark.parametrize("force", [True, False], ids=["force", "noforce"])
def test_killed_in_a_hook(pyrunc, bundle, tmp_path, kind, force):
    pidfile = tmp_path / "init.pid"
    b = bundle(["true"], edit=_kill_parent_hook(kind, pidfile))
    cid = pyrunc.new_id("crash")
    p = _create(pyrunc, b, cid, tmp_path)
    assert p.wait(60) == -signal.SIGKILL
    init = int(pidfile.read_text())
    assert _gone(init), f"init {init} still alive after pyrunc was killed"
    ddir = os.path.join(pyrunc.root, cid)
    assert os.path.isdir(ddir) and not os.path.exists(os.path.join(ddir, "state.json"))
    assert _cgroup_dirs({cid}), "the kill point is after the cgroup was made"
    d = pyrunc("delete", *(["--force"] if force else []), cid)
    if force:
        assert d.returncode == 0, d.err
    else:  # runc's delete: the directory goes, and the answer is still "does not exist"
        assert d.returncode != 0 and "does not exist" in d.err, d.err
    assert not os.path.exists(ddir), "delete left the half-made container's directory: the id is taken forever"
    if force:
        assert not _cgroup_dirs({cid}), "delete --force left the half-made container's cgroup"
    # the hook must not fire again: the next create of this id runs without it
    with open(b / "config.json") as f:
        cfg = json.load(f)
    del cfg["hooks"]
    with open(b / "config.json", "w") as f:
        json.dump(cfg, f)
    _reusable(pyrunc, b, cid, tmp_path)


def test_killed_in_a_hook_without_mount_namespace(pyrunc, bundle, tmp_path):
    """No mount namespace: the rootfs mounts are made on the host.  delete --force of the half-made container
    detaches them (the fixture fails the test on any mount left under the test's directory)."""
    pidfile = tmp_path / "init.pid"
    edit = _kill_parent_hook("createRuntime", pidfile)

    def both(c):
        edit(c)
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "mount"]

    b = bundle(["true"], edit=both)
    cid = pyrunc.new_id("crashmnt")
    p = _create(pyrunc, b, cid, tmp_path)
    assert p.wait(60) == -signal.SIGKILL
    assert _gone(int(pidfile.read_text()))
    with open("/proc/self/mountinfo") as f:
        assert any(line.split()[4] == str(b / "rootfs") for line in f), "the kill point is after the rootfs bind"
    assert pyrunc("delete", "--force", cid).returncode == 0
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(str(b))]
    assert not left, f"mounts left after delete --force: {left}"


def test_killed_after_ready_before_the_init_waits_for_start(pyrunc, bundle, tmp_path):
    """The init's stub has reported ready and state.json is written; pyrunc is killed before it lets the init go
    on to wait on the exec fifo.  The init must notice and exit, not wait for a `start` nobody will send.

    pyrunc is held at that point by a --pidfd-socket whose listen backlog (0) is already full: its connect blocks
    until the test kills it."""
    b = bundle(["true"])
    cid = pyrunc.new_id("crashrdy")
    path = str(tmp_path / "pidfd.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(path)
    p = _create(pyrunc, b, cid, tmp_path, "--pidfd-socket", path)
    try:
        state = os.path.join(pyrunc.root, cid, "state.json")
        deadline = time.monotonic() + 60
        while not os.path.exists(state) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.exists(state), (tmp_path / f"{cid}.err").read_text()
        init = pyrunc.state(cid)["pid"]
        pidfd = os.pidfd_open(init)
        assert p.poll() is None, "pyrunc was not held in --pidfd-socket"
        p.kill()
        assert p.wait(60) == -signal.SIGKILL
        try:
            r, _, _ = select.select([pidfd], [], [], 10)  # a pidfd is readable once its process has exited
            assert r, "the init is still blocked 10 s after pyrunc died: it would wait for `start` forever"
        finally:
            os.close(pidfd)
    finally:
        filler.close()
        srv.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert pyrunc.state(cid)["status"] == "stopped"
    assert pyrunc("delete", cid).returncode == 0
    _reusable(pyrunc, b, cid, tmp_path)


def test_delete_of_an_empty_directory(pyrunc, bundle, tmp_path):
    """Killed between making the directory and anything else: the directory alone is removed (runc delete.go)."""
    cid = pyrunc.new_id("crashdir")
    os.makedirs(os.path.join(pyrunc.root, cid))
    assert pyrunc("delete", "--force", cid).returncode == 0
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    _reusable(pyrunc, bundle(["true"]), cid, tmp_path)


def test_failed_create_keeps_the_callers_rootfs_mount(pyrunc, bundle, tmp_path):
    """L8: without a mount namespace, a failed create detaches only what pyrunc mounted.  Here the rootfs is a
    mount of the caller's (as containerd's overlay is) and create fails before pyrunc's own bind of it: the
    caller's mount must stay."""
    def edit(c):
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "mount"]
        c["linux"]["namespaces"].append({"type": "ipc", "path": str(tmp_path / "no-such-ns")})
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "ipc" or ns.get("path")]

    b = bundle(["true"], edit=edit)
    rootfs = str(b / "rootfs")
    subprocess.run(["mount", "--bind", rootfs, rootfs], check=True, timeout=10)
    try:
        p = _create(pyrunc, b, pyrunc.new_id("callermnt"), tmp_path)
        assert p.wait(60) != 0
        err = "".join(f.read_text() for f in tmp_path.glob("*.err"))
        assert "no-such-ns" in err, err
        with open("/proc/self/mountinfo") as f:
            assert any(line.split()[4] == rootfs for line in f), "a failed create unmounted the caller's rootfs"
    finally:
        subprocess.run(["umount", "-l", rootfs], timeout=10)


def _procs(cid):
    pids = set()
    for d in _cgroup_dirs({cid}):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return pids


POINTS = {  # when to kill pyrunc, polled for: each is reached during every create, in this order
    "dir": lambda root, cid: os.path.isdir(os.path.join(root, cid)),
    "cgroup": lambda root, cid: bool(_cgroup_dirs({cid})),
    "process": lambda root, cid: bool(_procs(cid)),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_at_any_point_of_create(pyrunc, bundle, tmp_path, point):
    """SIGKILL as soon as create has made its directory, its cgroup, or its first process (polled for, so the
    kill lands at or shortly after that point).  Whatever the point, within 10 s either the container is complete
    (state.json, status "created": its init waits for `start`, as it should) or no process is left in its cgroup.
    Then delete --force cleans everything (the fixture checks state dirs, cgroups and mounts) and the id can be
    used again.  Where exactly the kill lands changes which branch is checked, never the verdict."""
    b = bundle(["true"])
    cid = pyrunc.new_id("sweep")
    p = _create(pyrunc, b, cid, tmp_path)
    deadline = time.monotonic() + 30
    while not POINTS[point](pyrunc.root, cid) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    p.kill()
    p.wait(60)
    state = os.path.join(pyrunc.root, cid, "state.json")
    deadline = time.monotonic() + 10
    while _procs(cid) and not os.path.exists(state) and time.monotonic() < deadline:
        time.sleep(0.02)
    if os.path.exists(state):
        assert pyrunc.state(cid)["status"] in ("created", "stopped")
    else:
        assert not _procs(cid), f"processes left blocked after pyrunc died mid-create: {_procs(cid)}"
    d = pyrunc("delete", "--force", cid)
    assert d.returncode == 0, d.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid)), "delete --force left the directory: id taken"
    assert not _cgroup_dirs({cid}), "delete --force left the cgroup"
    _reusable(pyrunc, b, cid, tmp_path)
