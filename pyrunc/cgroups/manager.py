"""The cgroup manager: paths for a container, create/apply/join/destroy, freezer, signals, stats, OOM.

Paths follow runc (libcontainer/cgroups/fs/paths.go, fs2/defaultpath.go):
  * cgroupsPath absent  -> the container id, taken as a RELATIVE path;
  * relative path       -> v1: under the caller's own cgroup of each controller (/proc/self/cgroup);
                           v2: under the PARENT of the caller's cgroup (the caller's own cgroup has processes,
                               so by the no-internal-processes rule its children could not get controllers);
                           hybrid: the cgroup2 dir is under the caller's own cgroup2 path;
  * absolute path       -> under each hierarchy's mountpoint.
The path is cleaned first (runc CleanPath) so ".." cannot climb out of the hierarchy.
"""

import errno as _errno
import os
import _signal  # the C module: `signal` imports enum (~3.5 ms)
import time

from pyrunc.cgroups import detect as _detect
from pyrunc.cgroups import fs as _fs
from pyrunc.cgroups.detect import UNIFIED
from pyrunc.errors import ConfigError, PyruncError, SysError


# The two directory syscalls, as hooks: a temp-dir fake cgroupfs (unit tests) needs its files created on mkdir
# and removed on rmdir, which the kernel does by itself.
_mkdir = os.mkdir
_rmdir = os.rmdir


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _layout(root, proc):
    return _detect.detect(root, mountinfo=_read_text(os.path.join(proc, "self", "mountinfo")) or "")


def compute_paths(layout, inner, own):
    """{key: dir} for the inner path; own: parse_proc_cgroup() of the caller (needed for relative paths)."""
    absolute = inner.startswith("/")
    rel = inner.lstrip("/")
    paths = {}
    for ctrl in _detect.V1_ORDER:
        mnt = layout.v1.get(ctrl)
        if mnt is None:
            continue
        if absolute:
            paths[ctrl] = os.path.join(mnt, rel)
            continue
        mine = own.get(ctrl)
        if mine is None:
            continue
        sub = os.path.relpath(mine, layout.v1_mount_root.get(ctrl, "/"))
        sub = "" if sub == "." or sub.startswith("..") else sub
        paths[ctrl] = os.path.normpath(os.path.join(mnt, sub, rel))
    if layout.unified:
        if absolute:
            paths[UNIFIED] = os.path.join(layout.unified, rel)
        else:
            mine = own.get(UNIFIED, "/")
            if layout.mode == "v2":
                mine = os.path.dirname(mine)
            paths[UNIFIED] = os.path.normpath(os.path.join(layout.unified, mine.lstrip("/"), rel))
    return paths


def open_manager(cgroups_path, container_id, *, root="/sys/fs/cgroup", systemd=False, caller_pid=None,
                 proc="/proc", run="/run", log=None, annotations=None):
    """A manager for a new container; nothing is created until create().  systemd: the systemd driver's
    (pyrunc/cgroups/systemd.py, loaded only then: it brings the D-Bus client), which also reads the
    org.systemd.property.* annotations."""
    if systemd:
        from pyrunc.cgroups import systemd as _systemd

        return _systemd.open_manager(cgroups_path, container_id, layout=_layout(root, proc), proc=proc, run=run,
                                     log=log, annotations=annotations)
    inner = _detect.clean_path(cgroups_path or "") or _detect.clean_path(container_id or "")
    if not inner or inner == "/":
        raise ConfigError(f"invalid cgroup path {cgroups_path!r} for container {container_id!r}")
    layout = _layout(root, proc)
    own = {}
    if not inner.startswith("/"):
        f = os.path.join(proc, str(caller_pid) if caller_pid else "self", "cgroup")
        text = _read_text(f)
        if text is None:
            raise SysError("read", f, _errno.ENOENT)
        own = _detect.parse_proc_cgroup(text)
    return Manager(layout, compute_paths(layout, inner, own))


def manager_from_paths(paths, *, root="/sys/fs/cgroup", created=None, proc="/proc", unit=None, run="/run"):
    """Reopen a manager from state.json's paths; destroy() then removes the leaf dirs (or `created` if given).
    unit: the systemd unit of a container made with the systemd driver (its manager is reopened)."""
    if unit:
        from pyrunc.cgroups import systemd as _systemd

        return _systemd.reopen(_layout(root, proc), paths, unit, run=run)
    return Manager(_layout(root, proc), dict(paths), created)


class Manager:
    unit = None  # the systemd driver's unit name (recorded in state.json); None with cgroupfs

    def __init__(self, layout, paths, created=None):
        self.layout = layout
        self.paths = paths
        self._created = list(created) if created is not None else None

    # -- bookkeeping ---------------------------------------------------------------------------------------
    @property
    def created(self):
        return list(self._created or [])

    def _base(self, key):
        return self.layout.unified if key == UNIFIED else self.layout.v1.get(key)

    def _dirs(self):
        """(key, dir) with each dir once (co-mounted cpu,cpuacct share one)."""
        seen, out = set(), []
        for k, d in self.paths.items():
            if d not in seen:
                seen.add(d)
                out.append((k, d))
        return out

    def _soft(self, key):
        # name=systemd and, on a hybrid host, the cgroup2 dir are joined best effort (runc NameGroup{Join}).
        return key == "name=systemd" or (key == UNIFIED and self.layout.mode == "hybrid")

    # -- lifecycle -----------------------------------------------------------------------------------------
    def create(self):
        created = []
        try:
            for key, d in self._dirs():
                base = self._base(key) or os.path.dirname(d)
                levels, cur = [], d
                while cur != base and cur.startswith(base.rstrip("/") + "/"):
                    levels.append(cur)
                    cur = os.path.dirname(cur)
                levels.reverse()
                if key == UNIFIED and self.layout.mode == "v2":
                    self._enable_all(base)
                for i, lvl in enumerate(levels):
                    try:
                        _mkdir(lvl, 0o755)
                        created.append(lvl)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        if self._soft(key):
                            break
                        raise SysError("mkdir", lvl, exc.errno) from None
                    if key == "cpuset":
                        self._cpuset_copy(lvl)
                    if key == UNIFIED and self.layout.mode == "v2" and i < len(levels) - 1:
                        self._enable_all(lvl)
        except BaseException:
            for d in reversed(created):
                try:
                    _rmdir(d)
                except OSError:
                    pass
            raise
        self._created = (self._created or []) + [c for c in created if c not in (self._created or [])]

    def _enable_all(self, d):
        """v2: enable every available controller for d's children (runc CreateCgroupPath); best effort."""
        ctrls = self.layout.unified_controllers
        if not ctrls:
            return
        try:
            _fs.write_file(d, "cgroup.subtree_control", " ".join("+" + c for c in ctrls))
        except PyruncError:
            for c in ctrls:
                try:
                    _fs.write_file(d, "cgroup.subtree_control", "+" + c)
                except PyruncError:
                    pass

    @staticmethod
    def _cpuset_copy(d):
        """A new v1 cpuset has empty cpus/mems and the kernel refuses tasks (ENOSPC) until they are set: copy
        the parent's, as runc cpusetCopyIfNeeded does for every level it creates."""
        parent = os.path.dirname(d)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if not _fs.read_file(d, f).strip():
                _fs.write_file(d, f, _fs.read_file(parent, f).strip() or "\n")

    def plan(self, resources, *, default_devices=True, probe=None):
        """The ordered writes for linux.resources (pure given the probe); apply() executes them."""
        from pyrunc.cgroups import planner

        return planner.plan(self.layout, self.paths, resources or {}, probe or _fs.Probe(),
                            default_devices=default_devices)

    def apply(self, resources, *, default_devices=True):
        """Write linux.resources. default_devices: append runc's default device rules (create: yes; update: no)."""
        _fs.apply_writes(self.plan(resources, default_devices=default_devices))

    def add_pid(self, pid):
        for key, d in self._dirs():
            try:
                _fs.add_proc(d, pid)
            except PyruncError:
                if not self._soft(key):
                    raise

    def destroy(self):
        """rmdir what we created, deepest first (or the leaf dirs of a reopened manager); kill nothing."""
        targets = self._created if self._created is not None else [d for _, d in self._dirs()]
        targets = sorted(set(targets), key=lambda p: p.count("/"), reverse=True)
        left = []
        for d in targets:
            err = _remove(d)
            if err:
                left.append((d, err))
        self._created = [d for d, _ in left] if self._created is not None else None
        if left:
            d, err = left[0]
            raise SysError("rmdir", d, err)

    # -- processes -----------------------------------------------------------------------------------------
    def _primary(self):
        for k in ("devices", "memory", "pids", "freezer", UNIFIED):
            if k in self.paths:
                return self.paths[k]
        return next(iter(self.paths.values()))

    def pids(self):
        out = []
        for dirpath, _, _ in os.walk(self._primary()):
            text = _read_text(os.path.join(dirpath, "cgroup.procs")) or ""
            out.extend(int(x) for x in text.split() if x.isdigit() and int(x) not in out)
        return out

    def kill_all(self, sig=_signal.SIGKILL):
        d = self.paths.get(UNIFIED)
        if self.layout.mode == "v2" and int(sig) == _signal.SIGKILL and d and os.path.exists(
                os.path.join(d, "cgroup.kill")):
            _fs.write_file(d, "cgroup.kill", "1")
            return
        # Freeze first so that nothing forks between reading the pid list and signalling (runc does the same).
        frozen = False
        try:
            self.freeze()
            frozen = True
        except PyruncError:
            pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    # -- freezer, stats, oom -------------------------------------------------------------------------------
    def freeze(self):
        from pyrunc.cgroups import events

        events.freeze(self)

    def thaw(self):
        from pyrunc.cgroups import events

        events.thaw(self)

    def frozen(self):
        from pyrunc.cgroups import events

        return events.frozen(self)

    def stats(self):
        from pyrunc.cgroups import stats

        return stats.collect(self)

    def oom_count(self):
        from pyrunc.cgroups import events

        return events.oom_count(self)

    def oom_events(self):
        """A watcher: .wait(timeout) -> new oom kills (0 on timeout), .fileno() to poll, .close()."""
        from pyrunc.cgroups import events

        return events.OOMWatcher(self)


def _remove(d, tries=5):
    """rmdir d (and sub-cgroups the container made), retrying EBUSY briefly; returns 0 or the last errno."""
    delay = 0.01
    err = 0
    for i in range(tries):
        try:
            _rmdir(d)
            return 0
        except FileNotFoundError:
            return 0
        except OSError as exc:
            err = exc.errno
            if err == _errno.ENOTEMPTY or err == _errno.EBUSY:
                try:
                    subs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
                except OSError:
                    subs = []
                for s in subs:
                    _remove(s, 1)
        if i < tries - 1:
            time.sleep(delay)
            delay *= 2
    return err
