"""`exec`'s exit status (255 when it fails before the user process runs, the process's own status otherwise) and
`exec --cgroup` (sub-cgroups of the container's cgroup), against pyrunc and runc alike where runc behaves so."""

import os
import time

import pytest

from .runtimes import pyrunc_rt, rt  # noqa: F401: the fixtures

SLEEP = ["sleep", "1000"]


def hierarchy_dirs(pid):
    """{key: host dir} of pid's cgroups: v1 keys as in /proc/<pid>/cgroup ("cpu", "name=systemd"), "" for
    cgroup2 (at /sys/fs/cgroup/unified on this hybrid host, /sys/fs/cgroup on a pure v2 one)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, key, path = line.rstrip("\n").split(":", 2)
            if key == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            else:
                base = "/sys/fs/cgroup/" + key.replace("name=", "")
            out[key] = base + path
    return out


def own_lines(text):
    return {line.split(":", 2)[1]: line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2}


def procs_of(d):
    with open(os.path.join(d, "cgroup.procs")) as f:
        return [int(x) for x in f.read().split()]


def only_init_left(dirs, init, timeout=5):
    """True once the container's top cgroups hold nothing but its init (a killed exec has been reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(procs_of(d) == [init] for k, d in dirs.items() if k not in ("", "name=systemd")):
            return True
        time.sleep(0.02)
    return False


# --- item 2: exit statuses --------------------------------------------------------------------------------------

def test_exec_status_of_the_process_passes_through(rt, bundle):
    cid = rt.new_id("xstatus")
    rt.detached(bundle(SLEEP), cid)
    assert rt("exec", cid, "sh", "-c", "exit 7").returncode == 7
    assert rt("exec", cid, "sh", "-c", "kill -9 $$").returncode == 137  # 128+N, as a shell reports it
    assert rt("exec", cid, "sh", "-c", "exit 255").returncode == 255
    assert rt("exec", cid, "true").returncode == 0


def test_exec_missing_container_exits_255(rt):
    p = rt("exec", "pyrunc-it-nosuch", "true")
    assert p.returncode == 255, p.err
    assert "exec failed: container does not exist" in p.err


def test_exec_unwritable_pid_file_exits_255_and_kills_the_process(rt, bundle, tmp_path):
    cid = rt.new_id("xpidfile")
    init = rt.detached(bundle(SLEEP), cid)["pid"]
    p = rt("exec", "-d", "--pid-file", tmp_path / "no" / "such" / "dir" / "p", cid, "sleep", "999")
    assert p.returncode == 255, p.err
    assert "exec failed: " in p.err and "no such file or directory" in p.err
    assert only_init_left(hierarchy_dirs(init), init), "the exec'd process outlived its failed exec"


def test_exec_bad_command_exits_255(rt, bundle):
    cid = rt.new_id("xbadcmd")
    rt.detached(bundle(SLEEP), cid)
    p = rt("exec", cid, "no-such-binary")
    assert p.returncode == 255, p.err
    assert "no-such-binary" in p.err and "executable file not found in $PATH" in p.err


def test_exec_paused_exits_255_with_runcs_message(rt, bundle):
    cid = rt.new_id("xpaused")
    rt.detached(bundle(SLEEP), cid)
    assert rt("pause", cid).returncode == 0
    try:
        p = rt("exec", cid, "true", timeout=30)
        assert p.returncode == 255, p.err
        assert "exec failed: cannot exec in a paused container (use --ignore-paused to override)" in p.err
    finally:
        assert rt("resume", cid).returncode == 0


def test_exec_stopped_exits_255(rt, bundle):
    cid = rt.new_id("xstopped")
    rt.detached(bundle(["true"]), cid)
    rt.wait_status(cid, "stopped")
    p = rt("exec", cid, "true")
    assert p.returncode == 255, p.err
    assert "exec failed: cannot exec in a stopped container" in p.err


# --- item 4: exec --cgroup ---------------------------------------------------------------------------------------

def _make_sub(dirs, name, keys=None):
    made = []
    for k, d in dirs.items():
        if keys is None or k in keys:
            sub = os.path.join(d, name)
            os.mkdir(sub)
            if k == "cpuset":  # a new v1 cpuset takes no task until it has cpus and mems
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(d, f)) as src, open(os.path.join(sub, f), "w") as dst:
                        dst.write(src.read())
            made.append(sub)
    return made


def test_exec_cgroup_path_in_every_hierarchy(rt, bundle):
    """`--cgroup sub`: the process joins <container's cgroup>/sub in every hierarchy (runc's SubCgroupPaths[""]).
    delete removes the sub-cgroups with the container's (the fixture checks nothing is left)."""
    cid = rt.new_id("xcgsub")
    init = rt.detached(bundle(SLEEP), cid)["pid"]
    dirs = hierarchy_dirs(init)
    _make_sub(dirs, "sub")
    p = rt("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.err
    got = own_lines(p.out)
    base = own_lines(open(f"/proc/{init}/cgroup").read())
    for key in dirs:
        if key in ("", "name=systemd"):
            continue  # joined best effort (not there in a cgroup namespace view): only the v1 controllers count
        assert got[key].endswith("/sub"), (key, got[key], base[key])
    assert rt("delete", "--force", cid).returncode == 0
    assert not any(os.path.exists(d) for d in dirs.values())


def test_exec_cgroup_per_controller(rt, bundle):
    """`--cgroup memory,pids:a --cgroup cpu:b`: the named controllers move to their sub-cgroups, others stay."""
    cid = rt.new_id("xcgctl")
    init = rt.detached(bundle(SLEEP), cid)["pid"]
    dirs = hierarchy_dirs(init)
    _make_sub(dirs, "a", ("memory", "pids"))
    _make_sub(dirs, "b", ("cpu",))
    p = rt("exec", "--cgroup", "memory,pids:a", "--cgroup", "cpu:b", cid, "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.err
    got = own_lines(p.out)
    base = own_lines(open(f"/proc/{init}/cgroup").read())
    assert got["memory"] == base["memory"].rstrip("/") + "/a" or got["memory"].endswith("/a"), got
    assert got["pids"].endswith("/a") and got["cpu"].endswith("/b"), got
    assert got["devices"] == base["devices"] and got["freezer"] == base["freezer"], (got, base)


@pytest.mark.parametrize("arg", ["../x", "x/../../y", "a:b:c", "nosuchctl:x", "missing"])
def test_exec_cgroup_refused_exits_255(rt, bundle, arg):
    cid = rt.new_id("xcgbad")
    init = rt.detached(bundle(SLEEP), cid)["pid"]
    dirs = hierarchy_dirs(init)
    p = rt("exec", "--cgroup", arg, cid, "sleep", "999")
    assert p.returncode == 255, p.err
    assert "exec failed: " in p.err
    assert only_init_left(dirs, init), "a refused exec left a process behind"
    for d in dirs.values():  # nothing was created outside (or inside) the container's cgroup
        assert not os.path.exists(os.path.join(os.path.dirname(d), "x")) and not os.path.exists(
            os.path.join(os.path.dirname(d), "y"))


@pytest.mark.parametrize("arg", ["/abs", "..", "../x", "x/../../y", "a/..", "memory:../x", "memory:/abs"])
def test_exec_cgroup_escape_refused_clearly(pyrunc_rt, bundle, arg):
    """Absolute paths and `..` are refused with an error that names the argument, before anything runs (runc
    1.1.5 joins `/abs` under the container's cgroup and lets `../<id>x` through its prefix check: we refuse)."""
    r = pyrunc_rt
    cid = r.new_id("xcgesc")
    r.detached(bundle(SLEEP), cid)
    p = r("exec", "--cgroup", arg, cid, "true")
    assert p.returncode == 255, p.err
    path = arg.split(":", 1)[-1]
    assert f"exec failed: invalid --cgroup argument {arg}: {path} is not a path inside the container's cgroup" \
        in p.err, p.err
