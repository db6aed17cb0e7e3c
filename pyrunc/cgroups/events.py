"""Freezer and OOM observation (v1 freezer.state / memory.oom_control, v2 cgroup.freeze / memory.events)."""

import os
import select
import time

from pyrunc.cgroups import fs as _fs
from pyrunc.cgroups.detect import UNIFIED
from pyrunc.errors import PyruncError


def _freezer(mgr):
    if "freezer" in mgr.paths:
        return "v1", mgr.paths["freezer"]
    if mgr.layout.mode == "v2" and UNIFIED in mgr.paths:
        return "v2", mgr.paths[UNIFIED]
    raise PyruncError("cannot toggle freezer: cgroups not configured for container")


def freeze(mgr):
    kind, d = _freezer(mgr)
    if kind == "v2":
        _fs.write_file(d, "cgroup.freeze", "1")
        _wait_v2_frozen(d)
        return
    # A v1 cgroup can stay FREEZING while tasks keep forking; runc retries, thawing now and then (see its
    # fs/freezer.go for the empirical numbers), and never leaves the cgroup half frozen on failure.
    try:
        for i in range(1000):
            if i % 50 == 49:
                _fs.write_file(d, "freezer.state", "THAWED")
                time.sleep(0.01)
            _fs.write_file(d, "freezer.state", "FROZEN")
            if i % 25 == 24:
                time.sleep(0.00001)
            state = _fs.read_file(d, "freezer.state").strip()
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise PyruncError(f"unexpected state {state} while freezing {d}")
        raise PyruncError(f"unable to freeze {d}")
    except BaseException:
        try:
            _fs.write_file(d, "freezer.state", "THAWED")
        except PyruncError:
            pass
        raise


def _wait_v2_frozen(d, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        ev = _fs.read_keyed(d, "cgroup.events")
        if ev.get("frozen") == 1:
            return
        if time.monotonic() > end:
            raise PyruncError(f"timeout of {timeout:g}s reached waiting for the cgroup {d} to freeze")
        time.sleep(0.01)


def thaw(mgr):
    kind, d = _freezer(mgr)
    if kind == "v2":
        _fs.write_file(d, "cgroup.freeze", "0")
    else:
        _fs.write_file(d, "freezer.state", "THAWED")


def frozen(mgr):
    try:
        kind, d = _freezer(mgr)
    except PyruncError:
        return False
    if kind == "v2":
        return _fs.read_file(d, "cgroup.freeze").strip() == "1"
    while True:
        state = _fs.read_file(d, "freezer.state").strip()
        if state != "FREEZING":
            break
        time.sleep(0.001)
    if state != "FROZEN":
        return False
    # FROZEN may come from an ancestor; paused means frozen by us.
    try:
        return _fs.read_file(d, "freezer.self_freezing").strip() == "1"
    except PyruncError:
        return True


def _oom_source(mgr):
    if mgr.layout.mode == "v2" or "memory" not in mgr.paths:
        d = mgr.paths.get(UNIFIED)
        if d and os.path.exists(os.path.join(d, "memory.events")):
            return d, "memory.events"
    if "memory" in mgr.paths:
        return mgr.paths["memory"], "memory.oom_control"
    raise PyruncError("cannot watch oom: no memory cgroup for container")


def oom_count(mgr):
    """OOM kills so far in the container's memory cgroup (v1 oom_control / v2 memory.events "oom_kill")."""
    d, f = _oom_source(mgr)
    return _fs.read_keyed(d, f).get("oom_kill", 0)


class OOMWatcher:
    """Wait for OOM kills. v1: an eventfd registered through cgroup.event_control on memory.oom_control, which
    the kernel signals when the cgroup hits its limit; v2: poll(2) on memory.events, which kernfs wakes with
    POLLPRI when it changes. The oom_kill counter is re-read either way, so a wakeup without a kill (v1 notifies
    on every OOM condition, including ones reclaim resolved) reports 0."""

    def __init__(self, mgr):
        self._dir, self._file = _oom_source(mgr)
        self._seen = _fs.read_keyed(self._dir, self._file).get("oom_kill", 0)
        self._efd = self._cfd = self._wfd = None
        if self._file == "memory.oom_control":
            self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._cfd = os.open(os.path.join(self._dir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            _fs.write_file(self._dir, "cgroup.event_control", f"{self._efd} {self._cfd}")
            self._wfd = self._efd
        else:
            self._wfd = os.open(os.path.join(self._dir, self._file), os.O_RDONLY | os.O_CLOEXEC)

    def fileno(self):
        return self._wfd

    def _count(self):
        try:
            return _fs.read_keyed(self._dir, self._file).get("oom_kill", 0)
        except PyruncError:
            return self._seen  # cgroup gone

    def wait(self, timeout=None):
        """Block until an OOM kill happens (returns how many new) or timeout seconds pass (returns 0)."""
        end = None if timeout is None else time.monotonic() + timeout
        p = select.poll()
        p.register(self._wfd, select.POLLIN | select.POLLPRI)
        while True:
            n = self._count()
            if n > self._seen:
                new, self._seen = n - self._seen, n
                return new
            left = 0.1 if end is None else min(0.1, end - time.monotonic())
            if left <= 0:
                return 0
            if p.poll(left * 1000):
                if self._efd is not None:
                    try:
                        os.eventfd_read(self._efd)
                    except BlockingIOError:
                        pass
                else:
                    os.pread(self._wfd, 4096, 0)

    def close(self):
        for fd in {self._efd, self._cfd, self._wfd} - {None}:
            os.close(fd)
        self._efd = self._cfd = self._wfd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
