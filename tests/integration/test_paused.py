"""Paused containers and frozen or busy cgroups: exec --ignore-paused waits for `resume` (which must not be
stuck behind exec's lock), start refuses a paused container, create/run refuse a frozen cgroup and warn about
a busy one (runc 1.1.5), and delete fails loudly, keeping the state, while a cgroup stays busy."""

import os
import subprocess
import time
import uuid

import pytest

from .runtimes import pyrunc_rt, rt  # noqa: F401: the fixtures
from .test_exec_cgroup import hierarchy_dirs

SLEEP = ["sleep", "1000"]


def _exec_into_paused(rt, bundle, cid, *args, stdout=subprocess.PIPE):
    """Pause a new container and start `exec --ignore-paused` into it; it is still waiting a second later."""
    rt.detached(bundle(SLEEP), cid)
    assert rt("pause", cid).returncode == 0
    ex = subprocess.Popen(rt.cmd("exec", "--ignore-paused", cid, *args), stdin=subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.PIPE)
    try:
        ex.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass
    assert ex.returncode is None, f"exec returned while the container was paused: {ex.stderr.read()}"
    return ex


def test_exec_ignore_paused_waits_for_resume(rt, bundle):
    """exec --ignore-paused into a paused container blocks until the container is resumed; `resume` from
    another shell works meanwhile (pyrunc's exec held the container's lock while frozen: resume deadlocked)."""
    cid = rt.new_id("ignpaused")
    ex = _exec_into_paused(rt, bundle, cid, "echo", "after-resume")
    try:
        p = rt("resume", cid, timeout=20)
        assert p.returncode == 0, p.err
        out, err = ex.communicate(timeout=20)
        assert ex.returncode == 0, err
        assert out == b"after-resume\n"
    finally:
        if ex.poll() is None:
            ex.kill()
            ex.wait()
            rt("resume", cid)


def test_delete_force_of_paused_container_while_exec_waits(pyrunc_rt, bundle):
    """A waiting exec does not keep `delete --force` out either."""
    r = pyrunc_rt
    cid = r.new_id("delpaused")
    ex = _exec_into_paused(r, bundle, cid, "sleep", "1000", stdout=subprocess.DEVNULL)
    try:
        p = r("delete", "--force", cid, timeout=30)
        assert p.returncode == 0, p.err
        ex.wait(timeout=20)
        assert ex.returncode != 0
        assert r("state", cid).returncode == 1
    finally:
        if ex.poll() is None:
            ex.kill()
            ex.wait()


def test_start_of_paused_created_container_is_refused(rt, bundle, tmp_path):
    cid = rt.new_id("startpaused")
    with open(os.devnull, "wb") as null:
        p = subprocess.run(rt.cmd("create", "--bundle", bundle(["true"]), cid), stdin=subprocess.DEVNULL,
                           stdout=null, stderr=null, timeout=60)
    assert p.returncode == 0
    assert rt("pause", cid).returncode == 0
    p = rt("start", cid, timeout=20)
    assert p.returncode == 1
    assert "cannot start a container in the paused state" in p.err, p.err
    assert rt("resume", cid).returncode == 0
    assert rt("start", cid, timeout=20).returncode == 0


@pytest.fixture
def host_cgroups():
    """Cgroups made by the test at absolute paths (/sys/fs/cgroup/<ctrl>/<name>...), thawed and removed after."""
    made = []

    def make(ctrl, rel):
        d = os.path.join("/sys/fs/cgroup", ctrl, rel)
        os.makedirs(d)
        made.append(d)
        return d

    yield make
    for d in reversed(made):
        if os.path.exists(os.path.join(d, "freezer.state")):
            with open(os.path.join(d, "freezer.state"), "w") as f:
                f.write("THAWED")
    for d in sorted(made, key=len, reverse=True):
        deadline = time.monotonic() + 5
        while os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _with_path(path):
    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = path
    return edit


def test_create_into_frozen_cgroup_is_refused(rt, bundle, host_cgroups):
    name = f"pyrunc-it-frozen-{uuid.uuid4().hex[:8]}"
    d = host_cgroups("freezer", name)
    with open(os.path.join(d, "freezer.state"), "w") as f:
        f.write("FROZEN")
    cid = rt.new_id("frozen")
    p = rt("run", "--bundle", bundle(["true"], edit=_with_path("/" + name)), cid, timeout=30)
    assert p.returncode == 1
    assert "container's cgroup unexpectedly frozen" in p.err, p.err
    assert rt("state", cid).returncode == 1


def test_create_under_frozen_parent_is_refused(pyrunc_rt, bundle, host_cgroups):
    """The cgroup does not exist yet but its parent is frozen: it would be born frozen (runc hangs here)."""
    r = pyrunc_rt
    name = f"pyrunc-it-frozenparent-{uuid.uuid4().hex[:8]}"
    d = host_cgroups("freezer", name)
    with open(os.path.join(d, "freezer.state"), "w") as f:
        f.write("FROZEN")
    cid = r.new_id("frozenp")
    p = r("run", "--bundle", bundle(["true"], edit=_with_path(f"/{name}/{cid}")), cid, timeout=30)
    assert p.returncode == 1
    assert "container's cgroup unexpectedly frozen" in p.err, p.err
    assert not os.path.exists(os.path.join(d, cid))
    assert r("state", cid).returncode == 1


def test_create_into_busy_cgroup_warns_and_leaves_its_process(rt, bundle, host_cgroups):
    """A cgroup that already holds a process: runc 1.1.5 warns and runs; the process is not the container's, so
    neither the run nor its delete kills it."""
    name = f"pyrunc-it-busy-{uuid.uuid4().hex[:8]}"
    dirs = [host_cgroups(c, name) for c in ("devices", "memory")]
    other = subprocess.Popen(["sleep", "1000"])
    try:
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(other.pid))
        cid = rt.new_id("busy")
        p = rt("run", "--bundle", bundle(["echo", "ran"], edit=_with_path("/" + name)), cid, timeout=60)
        assert p.returncode == 0, p.err
        assert p.out == "ran\n"
        assert "container's cgroup is not empty: 1 process(es) found" in p.err, p.err
        assert other.poll() is None, "the run killed a process that was not the container's"
    finally:
        other.kill()
        other.wait()


def test_delete_fails_loudly_while_cgroup_stays_busy(pyrunc_rt, bundle):
    """A process the kill cannot end (it sits in a frozen sub-cgroup of the container's v1 freezer cgroup):
    delete --force retries, then fails naming the cgroup and keeps the state; once thawed, delete succeeds."""
    r = pyrunc_rt
    cid = r.new_id("busydel")

    def no_pidns(cfg):  # else the init, as pid 1, cannot finish exiting before the frozen process does
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]

    init = r.detached(bundle(SLEEP, edit=no_pidns), cid)["pid"]
    freezer = hierarchy_dirs(init)["freezer"]
    sub = os.path.join(freezer, "stuck")
    os.mkdir(sub)
    p = subprocess.run(r.cmd("exec", "-d", "--cgroup", "freezer:stuck", cid, "sleep", "1000"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    with open(os.path.join(sub, "freezer.state"), "w") as f:
        f.write("FROZEN")
    try:
        t0 = time.monotonic()
        p = r("delete", "--force", cid, timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 1, p.err
        assert f"container {cid}: remove cgroup: rmdir /sys/fs/cgroup/" in p.err, p.err
        assert f"/{cid}: device or resource busy (EBUSY)" in p.err or "/stuck: device or resource busy" in p.err
        assert took > 2.5, f"gave up after {took:.1f}s: runc-style retries last seconds"
        assert r("state", cid).returncode == 0, "the state was dropped with the cgroup still there"
    finally:
        with open(os.path.join(sub, "freezer.state"), "w") as f:
            f.write("THAWED")
    p = r("delete", "--force", cid, timeout=60)
    assert p.returncode == 0, p.err
    assert not os.path.exists(freezer)
    assert r("state", cid).returncode == 1


def _foreign_in(cgroup_dir):
    """A host process (not the container's) written into one of the container's cgroups."""
    other = subprocess.Popen(["sleep", "1000"])
    with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
        f.write(str(other.pid))
    return other


def test_delete_of_busy_stopped_container_fails_loudly_until_forced(pyrunc_rt, bundle):
    """A stopped container whose cgroup holds a process from outside its pid namespace: delete does not kill
    what is not the container's; it fails naming the cgroup and keeps the state (runc 1.1.5 drops the state and
    leaves the cgroup); delete --force kills it and removes everything."""
    r = pyrunc_rt
    cid = r.new_id("busystopped")
    init = r.detached(bundle(SLEEP), cid)["pid"]
    memory = hierarchy_dirs(init)["memory"]
    other = _foreign_in(memory)
    try:
        assert r("kill", cid, "KILL").returncode == 0
        assert r.wait_status(cid, "stopped")["status"] == "stopped"
        p = r("delete", cid, timeout=60)
        assert p.returncode == 1, p.err
        assert f"container {cid}: remove cgroup: rmdir {memory}: device or resource busy (EBUSY)" in p.err, p.err
        assert other.poll() is None, "a plain delete killed a process that is not the container's"
        assert r.state(cid)["status"] == "stopped"
        p = r("delete", "--force", cid, timeout=60)
        assert p.returncode == 0, p.err
        assert other.wait(timeout=10) == -9
        assert not os.path.exists(memory) and r("state", cid).returncode == 1
    finally:
        other.kill()
        other.wait()
