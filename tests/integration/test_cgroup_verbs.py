"""update, pause/resume, events, ps and kill --all on real containers (busybox bundle), checked against the
host's cgroup files and, where runc is the reference, against runc on the same bundle."""

import json
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from ..conftest import require

RUNC = shutil.which("runc")


# --- helpers -------------------------------------------------------------------------------------------------

def up(pyrunc, bundle, args, edit=None, prefix="cg"):
    """create + start a container running args; its stdio goes to files in the bundle (a pipe never sees EOF)."""
    b = bundle(args, edit=edit)
    cid = pyrunc.new_id(prefix)
    with open(b / "out", "wb") as fo, open(b / "err", "wb") as fe:
        p = subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL, stdout=fo,
                           stderr=fe, timeout=60)
    assert p.returncode == 0, (b / "err").read_text()
    pyrunc("start", cid, check=True)
    return cid


def doc(pyrunc, cid):
    """state.json's document, checked against its marshal copy, which the hot verbs read (container/state.py):
    `update` rewrites both."""
    import marshal

    from pyrunc.container.state import STATE_COPY

    with open(os.path.join(pyrunc.root, cid, "state.json")) as f:
        d = json.load(f)
    with open(os.path.join(pyrunc.root, cid, STATE_COPY), "rb") as f:
        assert marshal.loads(f.read()) == d, "the state's marshal copy disagrees with state.json"
    return d


def cg(pyrunc, cid, ctrl):
    return doc(pyrunc, cid)["cgroup_paths"][ctrl]


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def resources_edit(**r):
    def edit(cfg):
        cfg["linux"].setdefault("resources", {}).update(r)
    return edit


# --- update --------------------------------------------------------------------------------------------------

def test_update_flags_change_live_limits_and_are_recorded(pyrunc, bundle):
    cid = up(pyrunc, bundle, ["sleep", "1000"])
    p = pyrunc("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "20", "--cpu-share", "512", cid)
    assert p.returncode == 0, p.err
    assert read(cg(pyrunc, cid, "memory"), "memory.limit_in_bytes") == str(64 << 20)
    if os.path.exists(os.path.join(cg(pyrunc, cid, "memory"), "memory.memsw.limit_in_bytes")):
        assert read(cg(pyrunc, cid, "memory"), "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(cg(pyrunc, cid, "pids"), "pids.max") == "20"
    assert read(cg(pyrunc, cid, "cpu"), "cpu.shares") == "512"
    rec = doc(pyrunc, cid)["config"]["linux"]["resources"]
    assert rec["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert rec["pids"] == {"limit": 20} and rec["cpu"]["shares"] == 512
    assert rec["devices"][0] == {"allow": False, "access": "rwm"}  # untouched
    # a later update sees the recorded values: raising memory above the old memory+swap needs swap raised too
    p = pyrunc("update", "--memory", "256m", "--memory-swap", "512m", cid)
    assert p.returncode == 0, p.err
    assert read(cg(pyrunc, cid, "memory"), "memory.limit_in_bytes") == str(256 << 20)
    # -1: unlimited (swap follows when not given)
    assert pyrunc("update", "--memory", "-1", "--pids-limit", "-1", cid).returncode == 0
    assert int(read(cg(pyrunc, cid, "memory"), "memory.limit_in_bytes")) > 1 << 60
    assert read(cg(pyrunc, cid, "pids"), "pids.max") == "max"
    assert doc(pyrunc, cid)["config"]["linux"]["resources"]["memory"] == {"limit": -1, "swap": -1}


def test_update_resources_from_stdin_leaves_zero_values_alone(pyrunc, bundle):
    cid = up(pyrunc, bundle, ["sleep", "1000"], edit=resources_edit(pids={"limit": 30}))
    body = {"memory": {"limit": 48 << 20, "reservation": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0, "cpus": ""},
            "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    p = pyrunc("update", "--resources=-", cid, input=json.dumps(body).encode())
    assert p.returncode == 0, p.err
    assert read(cg(pyrunc, cid, "memory"), "memory.limit_in_bytes") == str(48 << 20)
    assert read(cg(pyrunc, cid, "pids"), "pids.max") == "30"  # 0 = unset: unchanged
    rec = doc(pyrunc, cid)["config"]["linux"]["resources"]
    assert rec["memory"] == {"limit": 48 << 20} and rec["pids"] == {"limit": 30}
    # a file, as podman passes it; other flags are then ignored (runc)
    f = os.path.join(pyrunc.root, "..", "res.json")
    with open(f, "w") as fh:
        json.dump({"pids": {"limit": 25}}, fh)
    assert pyrunc("update", "-r", f, "--pids-limit", "99", cid).returncode == 0
    assert read(cg(pyrunc, cid, "pids"), "pids.max") == "25"
    bad = pyrunc("update", "--resources", "-", cid, input=b'{"memory": {"limit": "lots"}}')
    assert bad.returncode == 1 and "memory.limit" in bad.err
    assert read(cg(pyrunc, cid, "pids"), "pids.max") == "25"


def test_update_errors(pyrunc, bundle):
    p = pyrunc("update", "--memory", "10m", "nosuch")
    assert p.returncode == 1 and "container does not exist" in p.err
    cid = up(pyrunc, bundle, ["true"])
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped")
    p = pyrunc("update", "--memory", "10m", cid)
    assert p.returncode == 1 and "container not running" in p.err
    p = pyrunc("update", "--memory", "lots", cid)
    assert p.returncode == 1 and "invalid value for memory: invalid size: 'lots'" in p.err


# --- pause / resume ------------------------------------------------------------------------------------------

COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.05; done"]


def test_pause_stops_progress_and_resume_continues(pyrunc, bundle):
    cid = up(pyrunc, bundle, COUNTER)
    pid = pyrunc.state(cid)["pid"]
    count = f"/proc/{pid}/root/dev/shm/count"

    def n():
        try:
            with open(count) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    assert wait_for(lambda: n() > 2)
    assert pyrunc("pause", cid).returncode == 0
    assert pyrunc.state(cid)["status"] == "paused"
    assert read(cg(pyrunc, cid, "freezer") if "freezer" in doc(pyrunc, cid)["cgroup_paths"] else
                cg(pyrunc, cid, ""), "freezer.state" if "freezer" in doc(pyrunc, cid)["cgroup_paths"]
                else "cgroup.freeze") in ("FROZEN", "1")
    a = n()
    time.sleep(0.5)
    assert n() == a, "a paused container made progress"
    p = pyrunc("pause", cid)
    assert p.returncode == 1 and "container not running" in p.err
    assert pyrunc("resume", cid).returncode == 0
    assert pyrunc.state(cid)["status"] == "running"
    assert wait_for(lambda: n() > a + 2)
    p = pyrunc("resume", cid)
    assert p.returncode == 1 and "container not paused" in p.err
    # a paused container can be force-deleted (thawed, killed)
    assert pyrunc("pause", cid).returncode == 0
    assert pyrunc("delete", "--force", cid).returncode == 0


# --- events --------------------------------------------------------------------------------------------------

def shape(v):
    """Key structure of a JSON value (dict keys recursively; lists and scalars by type)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    return type(v).__name__


def test_events_stats_matches_runc_shape(pyrunc, bundle, tmp_path):
    require(RUNC, "runc is not installed: nothing to compare with")
    cid = up(pyrunc, bundle, ["sleep", "1000"])
    p = pyrunc("events", "--stats", cid)
    assert p.returncode == 0, p.err
    assert p.out.endswith("\n") and p.out.count("\n") == 1
    ev = json.loads(p.out)
    assert ev["type"] == "stats" and ev["id"] == cid

    b = bundle(["sleep", "1000"])
    rroot, rid = str(tmp_path / "runc-state"), pyrunc.new_id("runc")
    runc = [RUNC, "--root", rroot]
    try:
        with open(b / "err", "wb") as fe:  # the container inherits it: a pipe would never see EOF
            r = subprocess.run(runc + ["run", "-d", "--bundle", str(b), rid], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=fe, timeout=60)
        assert r.returncode == 0, (b / "err").read_text()
        r = subprocess.run(runc + ["events", "--stats", rid], capture_output=True, timeout=60)
        theirs = json.loads(r.stdout)
    finally:
        subprocess.run(runc + ["delete", "--force", rid], capture_output=True, timeout=60)
    mine = ev["data"]
    ref = theirs["data"]
    assert list(ev) == list(theirs) == ["type", "id", "data"]
    assert set(mine) == set(ref)
    for k in ("cpu", "cpuset", "pids", "blkio", "intel_rdt"):
        assert shape(mine[k]) == shape(ref[k]), k
    # raw counters differ from one moment to the next (keys appear once non-zero in memory.stat)
    assert set(mine["memory"]) == set(ref["memory"])
    for k in ("usage", "swap", "kernel", "kernelTCP"):
        assert set(mine["memory"][k]) <= {"limit", "usage", "max", "failcnt"}
    # hugetlb: runc 1.1 on a hybrid host reads v1 hugetlb only (absent here) and prints {}; pyrunc reports the
    # cgroup2 hugetlb files it also writes limits into. Both are maps of size -> {usage,max,failcnt}.
    for v in mine["hugetlb"].values():
        assert set(v) <= {"usage", "max", "failcnt"}


def test_events_errors(pyrunc, bundle):
    cid = up(pyrunc, bundle, ["true"])
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped")
    p = pyrunc("events", "--stats", cid)
    assert p.returncode == 1 and f"container with id {cid} is not running" in p.err
    p = pyrunc("events", "--interval", "0s", cid)
    assert p.returncode == 1 and "duration interval must be greater than 0" in p.err


def test_events_stream_reports_oom_and_ends_with_the_container(pyrunc, bundle):
    lim = 24 << 20

    def edit(cfg):
        cfg["linux"].setdefault("resources", {})["memory"] = {"limit": lim, "swap": lim}

    script = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'
    b = bundle(["sh", "-c", script], edit=edit)
    os.symlink("busybox", b / "rootfs" / "bin" / "tr")
    cid = pyrunc.new_id("oom")
    with open(b / "out", "wb") as fo:
        assert subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL, stdout=fo,
                              stderr=fo, timeout=60).returncode == 0
    ev = subprocess.Popen(pyrunc.cmd("events", "--interval", "300ms", cid), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    try:
        # events registers its OOM watcher before its first stats line: only then may the program start
        ready, _, _ = select.select([ev.stdout], [], [], 30)
        assert ready, "events printed nothing in 30 s"
        first = ev.stdout.readline()
        assert json.loads(first)["type"] == "stats", first
        pyrunc("start", cid, check=True)
        out, err = ev.communicate(timeout=60)
        out = first + out
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
    assert ev.returncode == 0, err
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert {"type": "oom", "id": cid} in lines
    stats = [x for x in lines if x["type"] == "stats"]
    assert stats and all(x["id"] == cid and "memory" in x["data"] for x in stats)
    assert pyrunc.state(cid)["status"] == "stopped"
    assert b"survived" not in (b / "out").read_bytes()


# --- pids limit ----------------------------------------------------------------------------------------------

def test_fork_bomb_stops_at_pids_max(pyrunc, bundle):
    # busybox sh gives up (exits) when a fork fails, so the bomb ends once it hits the limit and its pid
    # namespace goes with it; what matters is that no sample ever saw more than pids.max tasks and that the
    # kernel counted refused forks
    bomb = ["sh", "-c", "while true; do sleep 1000 & done"]
    cid = up(pyrunc, bundle, bomb, edit=resources_edit(pids={"limit": 16}))
    d = cg(pyrunc, cid, "pids")
    assert read(d, "pids.max") == "16"
    peak, deadline = 0, time.monotonic() + 10
    while time.monotonic() < deadline:
        peak = max(peak, int(read(d, "pids.current")))
        if os.path.exists(os.path.join(d, "pids.events")) and int(read(d, "pids.events").split()[1]) > 0:
            break
        time.sleep(0.001)
    assert 1 <= peak <= 16
    assert int(read(d, "pids.events").split()[1]) > 0, "no fork was refused"
    assert wait_for(lambda: b"can't fork" in (pyrunc_bundle_out(pyrunc, cid)))


def pyrunc_bundle_out(pyrunc, cid):
    with open(os.path.join(doc(pyrunc, cid)["bundle"], "err"), "rb") as f:
        return f.read()


# --- ps, kill --all ------------------------------------------------------------------------------------------

# three processes; the init is a sleep (exec'd), pid 1 of its namespace without a TERM handler
FAMILY = ["sh", "-c", "sleep 1000 & sleep 1001 & exec sleep 1002"]


def test_ps_json_and_table(pyrunc, bundle):
    cid = up(pyrunc, bundle, FAMILY)
    init = pyrunc.state(cid)["pid"]
    pids = wait_for(lambda: (lambda v: v if len(v) == 3 else None)(
        json.loads(pyrunc("ps", "--format", "json", cid, check=True).out)))
    assert pids and init in pids
    p = pyrunc("ps", "-f", "json", cid)
    assert p.out == json.dumps(sorted(pids, key=pids.index), separators=(",", ":")) + "\n"
    with open(os.path.join(cg(pyrunc, cid, "pids"), "cgroup.procs")) as f:
        assert sorted(int(x) for x in f.read().split()) == sorted(pids)
    t = pyrunc("ps", cid, check=True).out.splitlines()
    assert t[0].split()[:3] == ["UID", "PID", "PPID"]
    assert sorted(int(line.split()[1]) for line in t[1:]) == sorted(pids)
    t = pyrunc("ps", cid, "-o", "pid,comm", check=True).out.splitlines()
    assert t[0].split() == ["PID", "COMMAND"] and sorted(int(x.split()[0]) for x in t[1:]) == sorted(pids)
    assert {x.split()[1] for x in t[1:]} == {"sleep"}
    p = pyrunc("ps", "--format", "yaml", cid)
    assert p.returncode == 1 and "invalid format option" in p.err
    p = pyrunc("ps", "nosuch")
    assert p.returncode == 1 and "container does not exist" in p.err


def test_ps_without_a_ps_binary_says_so_like_runc(pyrunc, bundle, tmp_path):
    cid = up(pyrunc, bundle, FAMILY)
    env = dict(os.environ, PATH=str(tmp_path))  # an empty directory: no `ps` to run
    p = pyrunc("ps", cid, env=env)
    assert p.returncode == 1 and r'msg="exec: \"ps\": executable file not found in $PATH"' in p.err, p.err  # logrus
    assert "internal error" not in p.err
    p = pyrunc("ps", "--format", "json", cid, env=env)  # json needs no ps binary
    assert p.returncode == 0 and pyrunc.state(cid)["pid"] in json.loads(p.out)


def test_kill_all(pyrunc, bundle):
    cid = up(pyrunc, bundle, FAMILY)
    ps = lambda: json.loads(pyrunc("ps", "--format", "json", cid, check=True).out) or []  # noqa: E731
    assert wait_for(lambda: len(ps()) == 3)
    init = pyrunc.state(cid)["pid"]
    # TERM to every process: the two sleeps die; the init is pid 1 of its namespace without a TERM handler, so
    # the kernel drops it there: only init remains, which shows the signal went to each pid separately
    assert pyrunc("kill", "--all", cid, "TERM").returncode == 0
    assert wait_for(lambda: ps() == [init]), ps()
    assert pyrunc.state(cid)["status"] == "running"
    assert pyrunc("kill", "--all", cid, "9").returncode == 0
    assert wait_for(lambda: pyrunc.state(cid)["status"] == "stopped")
    assert wait_for(lambda: ps() == [])
    for d in set(doc(pyrunc, cid)["cgroup_paths"].values()):
        if os.path.isdir(d):
            assert read(d, "cgroup.procs") == ""
    p = pyrunc("kill", "--all", cid, "9")  # after the init exited: nothing to do, success (runc)
    assert p.returncode == 0, p.err
    p = pyrunc("kill", cid, "9")
    assert p.returncode == 1 and "container not running" in p.err


# --- cgroup v2 device filter (eBPF) on a real cgroup2 directory ---------------------------------------------

UNIFIED = "/sys/fs/cgroup/unified"


def _cgroup2_root():
    for root in ("/sys/fs/cgroup", UNIFIED):
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return root
    return None


def test_v2_device_filter_attached_to_a_real_cgroup2_dir():
    """BPF_CGROUP_DEVICE programs attach to any cgroup2 directory (the "devices" controller is implicit on v2),
    so the hybrid host's cgroup2 mount is enough: deny /dev/null, show open() fails with EPERM inside, allow it
    again through a second apply (which must replace, not stack, the first program)."""
    from pyrunc.cgroups import bpf
    from pyrunc.cgroups.detect import Layout
    from pyrunc.cgroups.manager import Manager
    from pyrunc.linux import real

    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    d = os.path.join(root, f"pyrunc-test-{os.getpid()}")
    os.mkdir(d)
    try:
        # a v2-mode manager on that dir: planner -> DEVICE_FILTER write -> bpf load/attach
        mgr = Manager(Layout("/sys/fs/cgroup", "v2", {}, {}, root, ()), {"": d})
        deny_null = [{"allow": True, "access": "rwm"},
                     {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        mgr.apply({"devices": deny_null}, default_devices=False)
        script = f"echo $$ > {d}/cgroup.procs && head -c 3 /dev/zero | wc -c && cat /dev/null && echo null-ok"
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
        assert r.stdout.split()[0] == "3", r  # /dev/zero still allowed
        assert "null-ok" not in r.stdout and "Operation not permitted" in r.stderr, r
        # the same with the default (container) rules: /dev/null allowed, a disk denied
        mgr.apply({"devices": [{"allow": False, "access": "rwm"}]}, default_devices=True)
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(bpf.query(fd, real)) == 1, "the old program was not detached"
        finally:
            os.close(fd)
        r = subprocess.run(["sh", "-c", f"echo $$ > {d}/cgroup.procs && cat /dev/null && echo null-ok; "
                                        "mknod /tmp/pyrunc-no-such-disk-$$ b 8 0; echo mknod=$?"],
                           capture_output=True, text=True, timeout=30)
        assert "null-ok" in r.stdout, r
        assert "mknod=0" in r.stdout, r  # the defaults allow mknod of any block device ("b *:* m")
        subprocess.run(["sh", "-c", "rm -f /tmp/pyrunc-no-such-disk-*"])
        import stat

        disks = sorted(e.path for e in os.scandir("/dev") if stat.S_ISBLK(os.stat(e.path).st_mode))
        if disks:  # reading a disk is not among the defaults
            r = subprocess.run(["sh", "-c", f"echo $$ > {d}/cgroup.procs && head -c 1 {disks[0]} >/dev/null; "
                                            "echo rc=$?"], capture_output=True, text=True, timeout=30)
            assert "rc=1" in r.stdout and "Operation not permitted" in r.stderr, r
    finally:
        try:
            bpf.detach_all(d)
        finally:
            os.rmdir(d)


def test_delete_leaves_a_shared_parent_and_its_other_containers_alone(pyrunc, bundle):
    """containerd's cgroupsPath is /<namespace>/<id>: the first container's create makes the /<namespace> parent,
    where the next containers live too.  Deleting the first must neither kill the others' processes (they are
    under the parent it made, not in its own cgroup) nor remove the parent or their cgroups; the parent stays
    after the last one, as with runc (only a container's own cgroup is its to remove)."""
    import uuid

    parent = f"pyrunc-it-ns-{uuid.uuid4().hex[:8]}"
    ids = []

    def at(cfg):
        cfg["linux"]["cgroupsPath"] = f"/{parent}/pyrunc-it-sh-{len(ids)}-{uuid.uuid4().hex[:8]}"

    memory = "/sys/fs/cgroup/memory"
    try:
        for _ in range(2):
            ids.append(up(pyrunc, bundle, ["sleep", "60"], edit=at, prefix="sh"))
        pid_b = pyrunc.state(ids[1])["pid"]
        pyrunc("delete", "--force", ids[0], check=True)
        assert pyrunc.state(ids[1])["status"] == "running"
        own_b = cg(pyrunc, ids[1], "memory")
        assert os.path.exists(f"/proc/{pid_b}") and os.path.isdir(own_b) and own_b.startswith(f"{memory}/{parent}/")
        pyrunc("delete", "--force", ids[1], check=True)
        assert not os.path.exists(own_b)
    finally:
        for cid in ids:
            pyrunc("delete", "--force", cid)
        for root, dirs, _ in os.walk("/sys/fs/cgroup"):
            if os.path.basename(root) == parent:
                os.rmdir(root)
            if root.count("/") > 4:
                dirs[:] = []
