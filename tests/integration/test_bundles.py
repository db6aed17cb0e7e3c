"""Bundles that runc 1.1.5 runs (or refuses) in a way callers notice, run with pyrunc and with runc on the same
bundle: a read-only /dev, a /proc that is a symlink, unified (cgroup v2) resources on controllers that are v1 here,
and linux.rootfsPropagation as seen in the container's own /proc/self/mountinfo."""

import os
import shutil
import subprocess

import pytest

from .test_lifecycle import Runc, create

RUNC = shutil.which("runc")
RUNTIMES = ["pyrunc", "runc"]


@pytest.fixture(params=RUNTIMES)
def rt(request, pyrunc, tmp_path):
    """(name, call, id): the runtime under test, called with a private --root; runc skips if it is missing."""
    if request.param == "pyrunc":
        yield "pyrunc", pyrunc, pyrunc.new_id("bdl")
        return
    if not RUNC:
        pytest.skip("runc is not installed: nothing to compare with")
    r = Runc(str(tmp_path / "runc-state"))
    yield "runc", r, "runc-bdl"
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid)


def run(rt, b):
    name, call, cid = rt
    return call("run", "--bundle", b, cid)


def _mount(cfg, dest):
    return next(m for m in cfg["mounts"] if m["destination"] == dest)


# --- a read-only /dev --------------------------------------------------------------------------

def test_readonly_dev(rt, bundle):
    """runc mounts /dev read-write, makes /dev/pts, /dev/shm, the device nodes and the /dev symlinks in it, and
    only then remounts it read-only (finalizeRootfs)."""
    def edit(cfg):
        _mount(cfg, "/dev")["options"].append("ro")
    script = ("grep ' /dev ' /proc/self/mountinfo; echo x > /dev/null && echo null-ok; "
              "test -d /dev/pts && test -d /dev/shm && echo dirs-ok; "
              "test -c /dev/zero && test -c /dev/urandom && test -c /dev/tty && echo nodes-ok; "
              "echo $(readlink /dev/fd) $(readlink /dev/stdin) $(readlink /dev/stdout) $(readlink /dev/stderr) "
              "$(readlink /dev/ptmx); "
              "touch /dev/newfile 2>/dev/null || echo write-refused; "
              "grep ' /dev/pts \\| /dev/shm ' /proc/self/mountinfo | wc -l")
    p = run(rt, bundle(["sh", "-c", script], edit=edit))
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    lines = p.out.splitlines()
    dev = lines[0].split()
    assert dev[4] == "/dev" and "ro" in dev[5].split(","), lines[0]
    assert "nosuid" in dev[5].split(","), lines[0]
    assert lines[1:5] == ["null-ok", "dirs-ok", "nodes-ok",
                          "/proc/self/fd /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 pts/ptmx"], lines
    assert lines[5:] == ["write-refused", "2"], lines


def test_readonly_tmpfs_is_remounted_after_setup(rt, bundle):
    """The same for any read-only tmpfs: a mount nested under it is made first (runc remounts every ro tmpfs
    at the end)."""
    def edit(cfg):
        cfg["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "ro", "size=1m"]})
        cfg["mounts"].append({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=1m"]})
    script = ("grep -c ' /data/sub ' /proc/self/mountinfo; touch /data/x 2>/dev/null || echo ro; "
              "touch /data/sub/x && echo rw")
    p = run(rt, bundle(["sh", "-c", script], edit=edit))
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert p.out.splitlines() == ["1", "ro", "rw"]


# --- /proc is a symlink ------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["symlink", "file"])
def test_proc_not_a_directory_is_refused(rt, bundle, tmp_path, what):
    b = bundle(["true"])
    proc = b / "rootfs" / "proc"
    os.rmdir(proc)
    if what == "symlink":
        os.symlink("/tmp", proc)
    else:
        proc.write_text("")
    p = run(rt, b)
    assert p.returncode != 0
    err = p.err.replace('\\"', '"')  # the text log format escapes quotes inside msg="..."
    assert 'error mounting "proc" to rootfs at "/proc": filesystem "proc" must be mounted on ordinary directory' \
        in err, err
    assert os.listdir(b / "rootfs" / "tmp") == []  # nothing was mounted through the link


# --- unified resources for controllers that are on cgroup v1 here --------------------------------

def _hybrid():
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            return os.path.isdir("/sys/fs/cgroup/memory"), f.read().split()
    except FileNotFoundError:
        return False, []


@pytest.mark.parametrize("key,value", [("memory.max", "100000000"), ("pids.max", "10")])
def test_unified_on_v1_controller_is_invalid(rt, bundle, key, value):
    v1_memory, _ = _hybrid()
    if not v1_memory:
        pytest.skip("needs memory and pids on cgroup v1 (a v1 or hybrid host)")

    def edit(cfg):
        cfg["linux"].setdefault("resources", {})["unified"] = {key: value}
    p = run(rt, bundle(["true"], edit=edit))
    assert p.returncode == 1, p.err
    assert "invalid configuration: cannot use unified on cgroup v1" in p.err, p.err


def test_unified_hugetlb_on_hybrid_applies(pyrunc, bundle):
    """Better than runc (which refuses every unified key unless the whole host is cgroup v2): on a hybrid host
    whose hugetlb controller is on cgroup2, unified hugetlb.* keys are written there."""
    v1_memory, v2 = _hybrid()
    if not v1_memory or "hugetlb" not in v2 or not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("needs a hybrid host with hugetlb on cgroup2 and 2MB pages")

    def edit(cfg):
        cfg["linux"].setdefault("resources", {})["unified"] = {"hugetlb.2MB.max": "4194304"}
    cid = pyrunc.new_id("hug")
    p = create(pyrunc, bundle(["sleep", "30"], edit=edit), cid)
    assert p.returncode == 0, p.err
    try:
        with open(f"/proc/{pyrunc.state(cid)['pid']}/cgroup") as f:
            rel = next(ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::"))
        assert rel != "/"
        with open(f"/sys/fs/cgroup/unified{rel}/hugetlb.2MB.max") as f:
            assert f.read().strip() == "4194304"
    finally:
        pyrunc("delete", "--force", cid, check=True)


# --- rootfsPropagation ------------------------------------------------------------------------

@pytest.fixture
def shared_parent(tmp_path):
    """A directory that is its own shared mount, so the rootfs's parent mount is shared whatever the host's
    propagation: pivot_root needs it made private (or slave) first, and "slave" then has a master."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", d, d], check=True)
    try:
        subprocess.run(["mount", "--make-shared", d], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=True)


@pytest.mark.parametrize("mode,tag", [("shared", "shared"), ("rshared", "shared"), ("slave", "master"),
                                      ("private", None), ("unbindable", "unbindable"), (None, "master")])
def test_rootfs_propagation(rt, bundle, shared_parent, mode, tag):
    if rt[0] == "runc" and mode not in ("private", None):
        # runc 1.1.5 applies rootfsPropagation to the namespace's / before pivot_root only, and makes a shared
        # parent private, so the new / is always private; runc 1.2 applies it as the spec says
        pytest.xfail("runc 1.1.5 leaves the new / private whatever rootfsPropagation says")

    def edit(cfg):  # None: the default, rslave (the host's mounts still propagate in)
        if mode is not None:
            cfg["linux"]["rootfsPropagation"] = mode
    src = bundle(["sh", "-c", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo"], edit=edit)
    b = shared_parent / "b"
    shutil.copytree(src, b, symlinks=True)
    p = run(rt, b)
    with open("/proc/self/mountinfo") as mi:  # checked here: the fixture's lazy unmount would hide a leak
        assert not [ln for ln in mi if ln.split()[4].startswith(str(b))]
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    f = p.out.split()
    tags = {o.split(":")[0] for o in f[6:f.index("-")]}
    assert tags == ({tag} if tag else set()), p.out
