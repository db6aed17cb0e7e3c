"""Rootless cgroups over the fake cgroupfs (no root): a delegated cgroup v2 subtree is used and its limits apply;
without cgroup access (v1, or v2 not delegated) a config without limits goes on without a cgroup, and a limit
or an explicit cgroupsPath is an error naming it.  Also --rootless and the default --root, as runc's."""

import errno
import functools
import os

import pytest

import pyrunc.cgroups as cgroups
from pyrunc.cgroups import manager as mgrmod
from pyrunc import osx, procfs
from pyrunc.cli import common
from pyrunc.container.lifecycle import Runtime
from pyrunc.errors import PyruncError, UsageError
from pyrunc.errors import Logger
from tests.unit.test_cgroups_fake import build_v1, build_v2, fake, fake_kernel, own, read  # noqa: F401: fixtures


class Log(Logger):
    def __init__(self):
        super().__init__(None, "text", True)
        self.lines = []

    def _emit(self, level, msg):
        self.lines.append((level, msg))

    def debug(self, msg):
        self.lines.append(("debug", msg))


def _runtime(tmp_path, monkeypatch, root, proc, rootless=True):
    monkeypatch.setattr(cgroups, "open_manager", functools.partial(cgroups.open_manager, root=root, proc=proc))
    return Runtime(str(tmp_path / "state"), Log(), rootless=rootless)


def _no_access(monkeypatch):
    def mkdir(path, mode=0o777):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(mgrmod, "_mkdir", mkdir)


def test_delegated_v2_subtree_is_used_and_limits_apply(fake, fake_kernel, tmp_path, monkeypatch):
    root, proc = fake
    build_v2(root)
    own(proc, "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run.scope\n")
    os.makedirs(os.path.join(root, "user.slice/user-1000.slice/user@1000.service/app.slice"))
    for d in ("user.slice", "user.slice/user-1000.slice", "user.slice/user-1000.slice/user@1000.service",
              "user.slice/user-1000.slice/user@1000.service/app.slice"):
        with open(os.path.join(root, d, "cgroup.subtree_control"), "w") as f:
            f.write("cpu memory pids")
        with open(os.path.join(root, d, "cgroup.controllers"), "w") as f:
            f.write("cpu memory pids")
    rt = _runtime(tmp_path, monkeypatch, root, proc)
    cfg = {"linux": {"cgroupsPath": "c1", "resources": {"memory": {"limit": 64 << 20},
                                                                  "pids": {"limit": 50}}}}
    mgr, limits = rt._cgroup(cfg, "c1")
    assert mgr is not None and limits is not None
    leaf = "user.slice/user-1000.slice/user@1000.service/app.slice/c1"
    # the limits wait for the init protocol, which writes them after the fork, before sync 2 (process/init.py)
    assert read(root, f"{leaf}/memory.max").strip() == "max"
    limits()
    assert read(root, f"{leaf}/memory.max").strip() == str(64 << 20)
    assert read(root, f"{leaf}/pids.max").strip() == "50"


@pytest.mark.parametrize("resources", [None, {}, {"devices": [{"allow": False, "access": "rwm"}]}])
def test_no_access_without_limits_skips_the_cgroup(fake, tmp_path, monkeypatch, resources):
    root, proc = fake
    build_v1(root)
    own(proc, "".join(f"{i}:{c}:/user.slice\n" for i, c in enumerate(("cpuset", "memory", "pids"), 1)))
    _no_access(monkeypatch)
    rt = _runtime(tmp_path, monkeypatch, root, proc)
    made = []
    linux = {} if resources is None else {"resources": resources}
    assert rt._cgroup({"linux": linux}, "c1", made=lambda m, before: made.append((m, before))) == (None, None)
    assert made[-1] == (None, False)  # the creation record says: no cgroup
    assert any("cgroup steps skipped" in msg for level, msg in rt.log.lines if level == "debug"), rt.log.lines


@pytest.mark.parametrize("linux,named", [
    ({"resources": {"memory": {"limit": 1 << 20}}}, "linux.resources.memory"),
    ({"resources": {"pids": {"limit": 5}, "devices": []}}, "linux.resources.pids"),
    ({"cgroupsPath": "/mine/c1"}, "linux.cgroupsPath /mine/c1"),
])
def test_no_access_with_limits_is_an_error(fake, tmp_path, monkeypatch, linux, named):
    root, proc = fake
    build_v1(root)
    own(proc, "1:memory:/\n2:pids:/\n")
    _no_access(monkeypatch)
    rt = _runtime(tmp_path, monkeypatch, root, proc)
    with pytest.raises(PyruncError) as ei:
        rt._cgroup({"linux": linux}, "c1")
    assert named in str(ei.value) and "permission denied" in str(ei.value)


def test_not_rootless_keeps_the_error(fake, tmp_path, monkeypatch):
    root, proc = fake
    build_v1(root)
    own(proc, "1:memory:/\n")
    _no_access(monkeypatch)
    rt = _runtime(tmp_path, monkeypatch, root, proc, rootless=False)
    with pytest.raises(PyruncError, match="mkdir"):
        rt._cgroup({"linux": {}}, "c1")


@pytest.mark.parametrize("flag,euid,userns,want", [
    ("true", 0, False, True), ("false", 1000, True, False), ("auto", 0, False, False), ("auto", 1000, False, True),
    ("auto", 0, True, True),
])
def test_rootless_flag(monkeypatch, flag, euid, userns, want):
    monkeypatch.setattr(osx, "geteuid", lambda: euid)  # what cli/common.py calls
    monkeypatch.setattr(procfs, "in_user_namespace", lambda: userns)
    assert common.rootless_mode(flag) is want


def test_rootless_flag_bad_value():
    with pytest.raises(UsageError, match="--rootless"):
        common.rootless_mode("yes")


@pytest.mark.parametrize("euid,userns,env,want", [
    (0, False, {"XDG_RUNTIME_DIR": "/run/user/0"}, "/run/pyrunc"),
    (1000, False, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/pyrunc"),
    (1000, False, {}, "/run/pyrunc"),
    (0, True, {"XDG_RUNTIME_DIR": "/run/user/1000", "USER": "alice"}, "/run/user/1000/pyrunc"),
    (0, True, {"XDG_RUNTIME_DIR": "/run/user/0", "USER": "root"}, "/run/pyrunc"),
])
def test_default_root(monkeypatch, euid, userns, env, want):
    monkeypatch.setattr(osx, "geteuid", lambda: euid)  # what cli/common.py calls
    monkeypatch.setattr(procfs, "in_user_namespace", lambda: userns)
    for k in ("XDG_RUNTIME_DIR", "USER"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert common.default_root() == want


def test_xdg_root_is_0700_sticky(tmp_path):
    d = tmp_path / "xdg" / "pyrunc"
    common.make_xdg_root(str(d))
    assert os.stat(d).st_mode & 0o7777 == 0o1700
