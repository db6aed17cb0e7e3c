"""The cgroup an exec'd process joins (exec --cgroup, and the cgroup v2 fallback to the init's cgroup), over the
temp-dir fake cgroupfs of test_cgroups_fake.py; the pure v2 layout is covered here, since this host is hybrid."""

import errno
import os

import pytest

from pyrunc.cgroups import fs, manager as mgrmod, manager_from_paths, open_manager
from pyrunc.cgroups.manager import sub_cgroup_paths
from pyrunc.errors import ConfigError, SysError

from .test_cgroups_fake import build_v1, build_v2, fake, fake_kernel, own, read  # noqa: F401


@pytest.fixture
def no_internal_processes(monkeypatch):
    """The cgroup v2 rule the kernel enforces: a cgroup with controllers enabled for its children (non-empty
    cgroup.subtree_control) takes no process; writing cgroup.procs there fails with EBUSY."""
    real = fs.write_file

    def write_file(d, name, value):
        if name == "cgroup.procs":
            ctl = os.path.join(d, "cgroup.subtree_control")
            if os.path.exists(ctl) and open(ctl).read().strip():
                raise fs.write_error(os.path.join(d, name), value, errno.EBUSY)
        real(d, name, value)

    monkeypatch.setattr(fs, "write_file", write_file)


def test_sub_cgroup_paths_forms():
    assert sub_cgroup_paths(["sub"]) == {"": "sub"}
    assert sub_cgroup_paths(["a/b/"]) == {"": "a/b"}
    assert sub_cgroup_paths(["memory,pids:x", "cpu:y"]) == {"memory": "x", "pids": "x", "cpu": "y"}
    assert sub_cgroup_paths([]) == {}


@pytest.mark.parametrize("arg,msg", [
    ("a:b:c", "invalid --cgroup argument: a:b:c"),
    ("/abs", "invalid --cgroup argument /abs: /abs is not a path inside the container's cgroup"),
    ("..", "invalid --cgroup argument ..: .. is not a path inside the container's cgroup"),
    ("a/../../b", "invalid --cgroup argument a/../../b: a/../../b is not a path inside the container's cgroup"),
    ("x/..", "invalid --cgroup argument x/..: x/.. is not a path inside the container's cgroup"),
    ("memory:/x", "invalid --cgroup argument memory:/x: /x is not a path inside the container's cgroup"),
    ("memory:", "invalid --cgroup argument: memory:"),
    (":x", "invalid --cgroup argument: :x"),
    ("", "invalid --cgroup argument: "),
])
def test_sub_cgroup_paths_refused(arg, msg):
    with pytest.raises(ConfigError) as e:
        sub_cgroup_paths([arg])
    assert str(e.value) == msg


def test_two_bare_paths_refused():
    with pytest.raises(ConfigError, match=r"^invalid --cgroup argument: a \(missing <controller>: prefix\)$"):
        sub_cgroup_paths(["a", "b"])


def _container_v2(fake, subtree=""):
    root, proc = fake
    build_v2(root)
    own(proc, "0::/user.slice/session-1.scope\n")
    m = open_manager(None, "c1", root=root, proc=proc)
    m.create()
    cg = m.paths[""]
    with open(os.path.join(cg, "cgroup.subtree_control"), "w") as f:
        f.write(subtree)
    return root, proc, cg


def test_v2_exec_joins_container_cgroup(fake, fake_kernel, no_internal_processes):
    root, proc, cg = _container_v2(fake)
    own(proc, "0::/user.slice/c1\n", pid="42")
    mgr = manager_from_paths({"": cg}, root=root, proc=proc).for_exec(None, 42, proc=proc)
    mgr.add_pid(4242)
    assert read(cg, "cgroup.procs") == "4242"


def test_v2_exec_falls_back_to_init_cgroup_when_busy(fake, fake_kernel, no_internal_processes):
    """A container running systemd: its init moved itself to <cg>/init.scope and enabled controllers at <cg>;
    the exec'd process joins the init's cgroup instead of failing with EBUSY (runc process_linux.go, #2356)."""
    root, proc, cg = _container_v2(fake, subtree="memory pids")
    os.makedirs(os.path.join(cg, "init.scope"))
    open(os.path.join(cg, "init.scope", "cgroup.procs"), "w").close()
    rel = os.path.relpath(cg, root)
    own(proc, f"0::/{rel}/init.scope\n", pid="42")
    mgr = manager_from_paths({"": cg}, root=root, proc=proc).for_exec(None, 42, proc=proc)
    mgr.add_pid(4242)
    assert read(os.path.join(cg, "init.scope"), "cgroup.procs") == "4242"
    assert read(cg, "cgroup.procs") == ""


def test_v2_fallback_never_leaves_the_container_cgroup(fake, fake_kernel, no_internal_processes):
    """An init that moved itself out of the container's cgroup is not followed: the EBUSY error stands."""
    root, proc, cg = _container_v2(fake, subtree="memory")
    os.makedirs(os.path.join(root, "elsewhere"))
    open(os.path.join(root, "elsewhere", "cgroup.procs"), "w").close()
    own(proc, "0::/elsewhere\n", pid="42")
    mgr = manager_from_paths({"": cg}, root=root, proc=proc).for_exec(None, 42, proc=proc)
    with pytest.raises(SysError) as e:
        mgr.add_pid(4242)
    assert e.value.errno == errno.EBUSY and cg in str(e.value)
    assert read(os.path.join(root, "elsewhere"), "cgroup.procs") == ""


def test_v2_sub_cgroup_and_no_fallback(fake, fake_kernel, no_internal_processes):
    """--cgroup sub on v2: the process joins <cg>/sub; with an explicit sub-cgroup there is no fallback (runc)."""
    root, proc, cg = _container_v2(fake, subtree="memory")
    os.makedirs(os.path.join(cg, "sub"))
    open(os.path.join(cg, "sub", "cgroup.procs"), "w").close()
    own(proc, "0::/x\n", pid="42")
    base = manager_from_paths({"": cg}, root=root, proc=proc)
    base.for_exec({"": "sub"}, 42, proc=proc).add_pid(7)
    assert read(os.path.join(cg, "sub"), "cgroup.procs") == "7"
    with pytest.raises(ConfigError, match=r"the container has no memory cgroup"):
        base.for_exec({"memory": "sub"}, 42, proc=proc)  # v2 has one hierarchy: no per-controller paths


def test_v1_sub_cgroup_per_controller_moves_comounted_together(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    m = open_manager("/c1", "c1", root=root, proc=proc)
    m.create()
    for key in ("memory", "cpu"):
        d = os.path.join(m.paths[key], "s")
        os.makedirs(d)
        open(os.path.join(d, "cgroup.procs"), "w").close()
    sub = m.for_exec(sub_cgroup_paths(["memory,cpu:s"]), 1)
    assert sub.paths["memory"].endswith("memory/c1/s") and sub.paths["cpu"] == sub.paths["cpuacct"]
    assert sub.paths["cpuacct"].endswith("cpu,cpuacct/c1/s") and sub.paths["pids"] == m.paths["pids"]
    sub.add_pid(9)
    assert read(m.paths["memory"], "s/cgroup.procs") == "9" and read(m.paths["pids"], "cgroup.procs") == "9"
    assert read(m.paths["cpu"], "cgroup.procs") == ""
    assert sub.created == []


def test_destroy_retries_busy_then_fails_naming_the_cgroup(fake, fake_kernel, monkeypatch):
    """A cgroup that stays busy: destroy() keeps trying for REMOVE_BUDGET seconds, then raises naming the dir
    and keeps it in `created` (delete then keeps the container's state for another try)."""
    root, proc = fake
    build_v1(root, ("memory", "pids"))
    m = open_manager("/c1", "c1", root=root, proc=proc)
    m.create()
    calls = []
    real = mgrmod._rmdir

    def busy(path):
        calls.append(path)
        if path.endswith("memory/c1"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        real(path)

    monkeypatch.setattr(mgrmod, "_rmdir", busy)
    monkeypatch.setattr(mgrmod, "REMOVE_BUDGET", 0.3)
    with pytest.raises(SysError) as e:
        m.destroy()
    assert e.value.errno == errno.EBUSY
    assert str(e.value) == f"rmdir {root}/memory/c1: device or resource busy (EBUSY)"
    assert calls.count(f"{root}/memory/c1") > 5  # retried with backoff, not given up at once
    assert m.created == [f"{root}/memory/c1"] and not os.path.exists(f"{root}/pids/c1")
    monkeypatch.setattr(mgrmod, "_rmdir", real)
    m.destroy()  # once it is no longer busy, a second try removes it
    assert not os.path.exists(f"{root}/memory/c1")


def test_destroy_retry_succeeds_once_not_busy(fake, fake_kernel, monkeypatch):
    root, proc = fake
    build_v1(root, ("memory",))
    m = open_manager("/c1", "c1", root=root, proc=proc)
    m.create()
    left = [4]
    real = mgrmod._rmdir

    def busy_a_while(path):
        if left[0]:
            left[0] -= 1
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        real(path)

    monkeypatch.setattr(mgrmod, "_rmdir", busy_a_while)
    m.destroy()
    assert not os.path.exists(f"{root}/memory/c1") and m.created == []


# -- create into a frozen or busy cgroup (runc 1.1.5 factory Create) ----------------------------------------------

def test_occupancy_v1_frozen_self_or_ancestor_and_busy(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    m = open_manager("/p/c1", "c1", root=root, proc=proc)
    assert m.occupancy() == (0, False)  # nothing exists yet
    os.makedirs(os.path.join(root, "freezer", "p"))
    with open(os.path.join(root, "freezer", "p", "freezer.state"), "w") as f:
        f.write("FROZEN\n")
    assert m.occupancy() == (0, True)  # c1 would be born frozen under p
    os.makedirs(os.path.join(root, "devices", "p", "c1"))
    with open(os.path.join(root, "devices", "p", "c1", "cgroup.procs"), "w") as f:
        f.write("10\n11\n")
    with open(os.path.join(root, "freezer", "p", "freezer.state"), "w") as f:
        f.write("THAWED\n")
    assert m.occupancy() == (2, False)


def test_occupancy_v2_frozen_from_events_or_freeze(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    m = open_manager("/p/c1", "c1", root=root, proc=proc)
    assert m.occupancy() == (0, False)
    os.makedirs(os.path.join(root, "p"))
    with open(os.path.join(root, "p", "cgroup.events"), "w") as f:
        f.write("populated 0\nfrozen 1\n")
    assert m.occupancy() == (0, True)
    with open(os.path.join(root, "p", "cgroup.events"), "w") as f:
        f.write("populated 0\nfrozen 0\n")
    os.makedirs(os.path.join(root, "p", "c1"))
    with open(os.path.join(root, "p", "c1", "cgroup.freeze"), "w") as f:
        f.write("1\n")
    with open(os.path.join(root, "p", "c1", "cgroup.procs"), "w") as f:
        f.write("5\n")
    assert m.occupancy() == (1, True)
