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
import _signal  # the C module: `signal` imports enum (~3.5 ms)
import time

from pyrunc import osx as os
from pyrunc.errors import ConfigError, PyruncError, SysError

# detect.UNIFIED, the key of the cgroup2 dir in paths.  detect (mountinfo parsing) and fs (cgroup file writes) are
# loaded when first used: delete and kill of a container reopened from state.json need neither.
UNIFIED = ""


def _detect():
    from pyrunc.cgroups import detect

    return detect


def _fs():
    from pyrunc.cgroups import fs

    return fs


# The two directory syscalls, as hooks: a temp-dir fake cgroupfs (unit tests) needs its files created on mkdir
# and removed on rmdir, which the kernel does by itself.
_mkdir = os.mkdir
_rmdir = os.rmdir


def _read_text(path):
    return _fs().read_text(path)


def _layout(root, proc):
    return _detect().detect(root, mountinfo=_read_text(os.path.join(proc, "self", "mountinfo")) or "")


def compute_paths(layout, inner, own):
    """{key: dir} for the inner path; own: parse_proc_cgroup() of the caller (needed for relative paths)."""
    absolute = inner.startswith("/")
    rel = inner.lstrip("/")
    paths = {}
    for ctrl in _detect().V1_ORDER:
        mnt = layout.v1.get(ctrl)
        if mnt is None:
            continue
        if absolute:
            paths[ctrl] = os.path.join(mnt, rel)
            continue
        mine = own.get(ctrl)
        if mine is None:
            continue
        base = layout.v1_mount_root.get(ctrl, "/")
        if base == "/":  # the usual mount: the kernel's own path, absolute and normal, made relative
            sub = mine.strip("/")
        else:
            sub = os.path.relpath(mine, base)
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
    inner = _detect().clean_path(cgroups_path or "") or _detect().clean_path(container_id or "")
    if not inner or inner == "/":
        raise ConfigError(f"invalid cgroup path {cgroups_path!r} for container {container_id!r}")
    layout = _layout(root, proc)
    own = {}
    if not inner.startswith("/"):
        f = os.path.join(proc, str(caller_pid) if caller_pid else "self", "cgroup")
        text = _read_text(f)
        if text is None:
            raise SysError("read", f, _errno.ENOENT)
        own = _detect().parse_proc_cgroup(text)
    return Manager(layout, compute_paths(layout, inner, own))


# v1 controller -> v2 section, for controllers a hybrid host keeps on cgroup2 (hugetlb on this host).
V1_TO_V2 = {"cpuset": "cpuset", "memory": "memory", "cpu": "cpu", "pids": "pids", "blkio": "io",
            "hugetlb": "hugetlb", "rdma": "rdma"}


def _v2():
    from pyrunc.cgroups import v2

    return v2


# The linux.resources keys each cgroup2 section reads (v2.SECTIONS): on a hybrid host the v2 planners (and their
# module) are needed only when one of them, or `unified`, is set for a controller that lives on cgroup2 there.
_V2_SECTION_KEYS = {"cpuset": ("cpu",), "memory": ("memory",), "cpu": ("cpu",), "pids": ("pids",),
                    "io": ("blockIO",), "hugetlb": ("hugepageLimits",), "rdma": ("rdma",)}


def _network_asked(r):
    n = r.get("network") or {}
    return bool(n.get("classID") or n.get("priorities"))


def plan_writes(layout, paths, r, probe, *, default_devices=True):
    """Dispatch linux.resources to the v1 and/or v2 planners according to the layout.  (Here rather than in a
    module of its own: one module less to load on every create.)"""
    from pyrunc.cgroups import v1

    if layout.mode == "v1":
        if r.get("unified"):
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1")
        return v1.plan(r, paths, probe, default_devices=default_devices)
    if layout.mode == "v2":
        if _network_asked(r):
            raise ConfigError("cannot set network limits (linux.resources.network): net_cls and net_prio "
                              "do not exist on cgroup v2")
        return _v2().plan(r, paths[UNIFIED], probe, base=layout.unified, available=layout.unified_controllers,
                          default_devices=default_devices)
    # hybrid: v1 for what v1 has; controllers only cgroup2 has are written into the cgroup2 dir.
    on_v2 = {c for c, sec in V1_TO_V2.items()
             if c not in paths and sec in layout.unified_controllers}
    out = v1.plan(r, paths, probe, default_devices=default_devices, skip=on_v2)
    sections = {V1_TO_V2[c] for c in on_v2}
    if UNIFIED in paths and (r.get("unified") or any(r.get(k) for s in sections for k in _V2_SECTION_KEYS[s])):
        out += _v2().plan(r, paths[UNIFIED], probe, base=layout.unified, available=layout.unified_controllers,
                          sections=sections, default_devices=False, hybrid=True)
    elif r.get("unified"):
        raise ConfigError("invalid configuration: cannot use unified: no cgroup2 hierarchy")
    return out


def rootless_without_cgroup(linux, err):
    """Rootless, and the container's cgroup cannot be made (cgroup v1, or a v2 tree not delegated to the caller):
    runc goes on without it unless the config needs it.  An explicit cgroupsPath or a limit is an error naming
    it; device rules are not (runc's rootless manager skips them: a user namespace cannot mknod anyway)."""
    if linux.get("cgroupsPath"):
        raise PyruncError(f"rootless container: linux.cgroupsPath {linux['cgroupsPath']}: {err}")
    limits = sorted(k for k, v in (linux.get("resources") or {}).items() if v and k != "devices")
    if limits:
        raise PyruncError(f"rootless container: linux.resources.{limits[0]} needs a cgroup the caller may write "
                          f"(cgroup v2 delegated to the user): {err}")


def sub_cgroup_paths(args):
    """exec --cgroup values -> {controller or "": relative path} (runc exec.go getSubCgroupPaths): `PATH` (alone)
    for every hierarchy, or `CONTROLLER[,CONTROLLER]:PATH`, repeatable.  A path must stay inside the container's
    cgroup: absolute paths and `..` are refused (runc joins `/x` under the container's cgroup and checks the
    result only by string prefix, which lets `../<id>x` out)."""
    paths = {}
    for arg in args or ():
        parts = arg.split(":")
        if len(parts) > 2:
            raise ConfigError(f"invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(args) != 1:
                raise ConfigError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            ctrls, path = [""], arg
        else:
            ctrls, path = parts[0].split(","), parts[1]
        if not path or not all(ctrls) and len(parts) == 2:
            raise ConfigError(f"invalid --cgroup argument: {arg}")
        if path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"invalid --cgroup argument {arg}: {path} is not a path inside the container's cgroup")
        for c in ctrls:
            paths[c] = os.path.normpath(path)
    return paths


def manager_from_paths(paths, *, root="/sys/fs/cgroup", created=None, proc="/proc", unit=None, run="/run"):
    """Reopen a manager from state.json's paths; destroy() then removes the leaf dirs (or `created` if given).
    unit: the systemd unit of a container made with the systemd driver (its manager is reopened)."""
    if unit:
        from pyrunc.cgroups import systemd as _systemd

        return _systemd.reopen(_layout(root, proc), paths, unit, run=run)
    # the layout (a mountinfo parse) only if something asks for it: delete of a stopped container, pids() and
    # destroy() need only the recorded paths
    return Manager(lambda: _layout(root, proc), dict(paths), created)


def own_join_fds(join):
    """The fds of Manager.own_join()'s result."""
    tasks, cgroup2 = join
    return [t[0] for t in tasks] + ([cgroup2[0]] if cgroup2 else [])


def close_own_join(join):
    """Close the fds of Manager.own_join()'s result."""
    for fd in own_join_fds(join):
        os.close(fd)


class Manager:
    unit = None  # the systemd driver's unit name (recorded in state.json); None with cgroupfs

    def __init__(self, layout, paths, created=None):
        """layout: a detect.Layout, or a function returning one (called once, when first needed)."""
        self._layout = layout
        self.paths = paths
        self._created = list(created) if created is not None else None

    @property
    def layout(self):
        if callable(self._layout):
            self._layout = self._layout()
        return self._layout

    @layout.setter
    def layout(self, value):
        self._layout = value

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
        # The code apply() needs, loaded before the first mkdir: in a shim, that mkdir waits while the cgroup lock
        # is held by cgroups.warm's write (an RCU grace period), and this CPU work then runs during that sleep.
        _fs()
        from pyrunc.cgroups import v1  # noqa: F401 (v2 only where the plan needs it: plan_writes)

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

    def occupancy(self):
        """Before create (runc 1.1.5 factory Create): (processes already in the container's cgroup, frozen?).

        Frozen counts the nearest existing ancestor too: a new cgroup under a frozen parent is born frozen, and
        the setup process would sleep in the freezer forever (runc checks only the cgroup itself)."""
        try:
            pids = len(self.pids()) if os.path.isdir(self._primary()) else 0
        except OSError:
            pids = 0
        frozen = False
        for key, d in self._dirs():
            if key == "freezer" or (key == UNIFIED and self.layout.mode == "v2"):
                base = self._base(key) or "/"
                while not os.path.isdir(d) and d.startswith(base.rstrip("/") + "/"):
                    d = os.path.dirname(d)
                if key == "freezer":
                    frozen |= (_read_text(os.path.join(d, "freezer.state")) or "").strip() in ("FROZEN", "FREEZING")
                else:
                    events = _read_text(os.path.join(d, "cgroup.events")) or ""
                    frozen |= "frozen 1" in events.splitlines() or (
                        _read_text(os.path.join(d, "cgroup.freeze")) or "").strip() == "1"
        return pids, frozen

    def _enable_all(self, d):
        """v2: enable every available controller for d's children (runc CreateCgroupPath); best effort."""
        ctrls = self.layout.unified_controllers
        if not ctrls:
            return
        try:
            _fs().write_file(d, "cgroup.subtree_control", " ".join("+" + c for c in ctrls))
        except PyruncError:
            for c in ctrls:
                try:
                    _fs().write_file(d, "cgroup.subtree_control", "+" + c)
                except PyruncError:
                    pass

    @staticmethod
    def _cpuset_copy(d):
        """A new v1 cpuset has empty cpus/mems and the kernel refuses tasks (ENOSPC) until they are set: copy
        the parent's, as runc cpusetCopyIfNeeded does for every level it creates."""
        parent = os.path.dirname(d)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if not _fs().read_file(d, f).strip():
                _fs().write_file(d, f, _fs().read_file(parent, f).strip() or "\n")

    def plan(self, resources, *, default_devices=True, probe=None):
        """The ordered writes for linux.resources (pure given the probe); apply() executes them."""
        return plan_writes(self.layout, self.paths, resources or {}, probe or _fs().Probe(),
                           default_devices=default_devices)

    def apply(self, resources, *, default_devices=True):
        """Write linux.resources. default_devices: append runc's default device rules (create: yes; update: no)."""
        _fs().apply_writes(self.plan(resources, default_devices=default_devices))

    def own_join(self):
        """How a create's first process joins its cgroups itself, so that nobody writes its pid to a cgroup.procs.
        Such a write takes the kernel's global cgroup migration lock for write, and the first taker after a quiet
        spell waits out an RCU grace period (4-20 ms on our test VM; cgroups/warm.py).  Two moves skip that lock:
        - cgroup v1: a thread writing 0 (itself) to a `tasks` file moves alone, and the kernel takes no global lock
          for it (cgroup_procs_write_start); the process, just forked, has only that thread;
        - cgroup2: the process is born in its cgroup (clone3 CLONE_INTO_CGROUP, Linux.fork_into_cgroup).

        Returns (tasks, cgroup2), with fds opened here, close-on-exec, for the caller to close:
        - tasks: [(fd, path, soft)], the v1 `tasks` files opened for writing, for the child to write 0 to;
        - cgroup2: (fd, dir), the cgroup2 dir opened O_PATH, for the clone, or None.
        Returns None when this manager joins otherwise (systemd: through its unit) or a file will not open: then
        add_pid() does it all, with its own errors."""
        tasks, cgroup2 = [], None
        try:
            for key, d in self._dirs():
                if key == UNIFIED:
                    cgroup2 = (os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), d)
                else:
                    path = os.path.join(d, "tasks")
                    tasks.append((os.open(path, os.O_WRONLY | os.O_CLOEXEC), path, self._soft(key)))
        except OSError:
            close_own_join((tasks, cgroup2))
            return None
        return tasks, cgroup2

    def add_pid(self, pid, keys=None):
        """Write pid to the cgroup.procs of each hierarchy, or of those in keys."""
        for key, d in self._dirs():
            if keys is not None and key not in keys:
                continue
            try:
                _fs().add_proc(d, pid)
            except PyruncError as e:
                if key == UNIFIED and getattr(e, "errno", 0) == _errno.EBUSY and self._join_init(d, pid):
                    continue
                if not self._soft(key):
                    raise

    # exec: (pid of the container's init, procfs) when add_pid may fall back to the init's own cgroup v2
    _fallback = None

    def for_exec(self, sub=None, init_pid=None, proc="/proc"):
        """The manager an exec'd process joins (a copy; nothing is created or removed through it).

        sub: {controller or "": path} (runc's SubCgroupPaths, see sub_cgroup_paths()): the process joins that
        sub-cgroup of the container's, in every hierarchy ("") or in the named controllers'; the sub-cgroups must
        exist.  Without sub, on cgroup v2, a container cgroup that has controllers enabled for its children (a
        container running systemd, a nested tree) takes no process (EBUSY, the no-internal-processes rule): the
        process then joins the init's own cgroup, as runc does (process_linux.go, runc issue 2356), if that is
        inside the container's."""
        paths = dict(self.paths)
        for ctrl, add in (sub or {}).items():
            if ctrl == "":
                keys = list(paths)
            elif ctrl in paths:
                # co-mounted controllers (cpu,cpuacct) share one dir: move them together
                keys = [k for k, d in paths.items() if d == self.paths[ctrl]]
            else:
                raise ConfigError(f"invalid --cgroup argument {ctrl}:{add}: the container has no {ctrl} cgroup")
            for k in keys:
                paths[k] = os.path.join(self.paths[k], add)
        m = Manager(self.layout, paths, [])
        if not sub and init_pid and self.layout.mode == "v2":
            m._fallback = (init_pid, proc)
        return m

    def _join_init(self, d, pid):
        if self._fallback is None:
            return False
        init_pid, proc = self._fallback
        own = _detect().parse_proc_cgroup(_read_text(os.path.join(proc, str(init_pid), "cgroup")) or "")
        if UNIFIED not in own:
            return False
        target = os.path.normpath(os.path.join(self.layout.unified, own[UNIFIED].lstrip("/")))
        if target == d or not target.startswith(d.rstrip("/") + "/"):
            return False  # never a cgroup outside the container's, wherever its init went
        try:
            _fs().add_proc(target, pid)
        except PyruncError:
            return False
        return True

    def destroy(self):
        """rmdir what we created, deepest first (or the leaf dirs of a reopened manager); kill nothing."""
        targets = self._created if self._created is not None else [d for _, d in self._dirs()]
        targets = sorted(set(targets), key=lambda p: p.count("/"), reverse=True)
        left = []
        own = set(self.paths.values())
        deadline = time.monotonic() + REMOVE_BUDGET  # one budget for all the dirs, not one each
        for d in targets:
            if d not in own:
                # a parent create made on the way (containerd's /<namespace>): other containers may live below
                # it now, so it goes only if empty, and its sub-cgroups are never touched
                err = _rmdir_errno(d)
                if err and err not in (_errno.EBUSY, _errno.ENOTEMPTY):
                    left.append((d, err))
                continue
            err = _remove(d, max(0.0, deadline - time.monotonic()))
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
        return procs_under(self._primary())

    def kill_all(self, sig=_signal.SIGKILL):
        d = self.paths.get(UNIFIED)
        if self.layout.mode == "v2" and int(sig) == _signal.SIGKILL and d and os.path.exists(
                os.path.join(d, "cgroup.kill")):
            _fs().write_file(d, "cgroup.kill", "1")
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


def procs_under(d):
    """The pids in cgroup d and its sub-cgroups at any depth, each once; a dir or file that is gone reads as empty.
    Raw reads, no os.walk: delete checks all of a container's cgroups (ten dirs on a hybrid host) each time."""
    out, stack = [], [d]
    while stack:
        cur = stack.pop()
        try:
            fd = os.open(os.path.join(cur, "cgroup.procs"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            data = b""
            try:
                while chunk := os.read(fd, 65536):
                    data += chunk
            except OSError:
                pass
            finally:
                os.close(fd)
            out.extend(p for p in (int(x) for x in data.split() if x.isdigit()) if p not in out)
        try:
            with os.scandir(cur) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
    return out


# How long destroy() keeps retrying a busy cgroup.  runc 1.2's rmdir retries EBUSY 10 times from 1 ms, doubling
# (about 1 s); a killed process leaves its cgroup only once it has been reaped, which on a loaded machine or
# with a large process tree takes longer, so we keep going for a few seconds before giving up loudly.
REMOVE_BUDGET = 3.0


def _remove(d, budget=None):
    """rmdir d, sub-cgroups first (runc RemovePath), retrying EBUSY/ENOTEMPTY with backoff (1 ms, doubling, up to
    `budget` seconds); returns 0 or the last errno."""
    deadline = time.monotonic() + (REMOVE_BUDGET if budget is None else budget)
    delay = 0.001
    while True:
        err = _remove_tree(d)
        if err not in (_errno.EBUSY, _errno.ENOTEMPTY, _errno.EINTR):
            return err
        if time.monotonic() + delay > deadline:
            return err
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _rmdir_errno(d):
    try:
        _rmdir(d)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        return exc.errno
    return 0


def _remove_tree(d):
    err = _rmdir_errno(d)
    if err not in (_errno.EBUSY, _errno.ENOTEMPTY):
        return err
    try:
        subs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    except OSError as exc:
        return exc.errno
    for s in subs:
        _remove_tree(s)
    return _rmdir_errno(d)
