"""The container lifecycle: create, start, kill, delete (and run as create+start), as a library.

No global state: a Runtime holds the --root store, the logger and the global options, so a shim can use it
in-process.  Every operation locks the container directory; create validates everything before its first side
effect and undoes everything it did on failure (init process, cgroup, state directory).
"""

import _signal as signal  # the C module: `signal` imports enum (~3.5 ms on every verb)
import time

from .. import osx as os
from ..errors import ConfigError, NotFound, PyruncError, StateError, SysError
from .state import (FIFO, PROVISIONAL, Container, Lock, Store, check_id, proc_start_time, signal_init,
                    write_pid_file)


def load_bundle(bundle, cfg=None):
    """config.json of the bundle, parsed and validated; cfg: the file's document, already parsed by the caller
    (a foreground run peeks at it), only validated here."""
    if cfg is not None:
        from ..spec.validate import validate_config

        validate_config(cfg)
        return cfg
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    from .. import fastjson  # not `json`: it imports `re` (~5 ms of every create)

    try:
        cfg = fastjson.loads(data)
    except ValueError:
        import json  # only to word the error as before ("Expecting value: line 1 column 1 (char 0)")

        try:
            json.loads(data)
            raise ConfigError(f"parse {path}: invalid JSON") from None
        except ValueError as e:
            raise ConfigError(f"parse {path}: {e}") from None
    from ..spec.validate import validate_config

    validate_config(cfg)
    return cfg


def _now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


class Runtime:
    def __init__(self, root, log, systemd_cgroup=False, rootless=False):
        self.store = Store(root)
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless  # a cgroup the caller may not create is skipped when the config sets no limits

    # --- create ----------------------------------------------------------------------------------------

    def create(self, cid, bundle, warming=None, **kw):
        """Bring up the init process, blocked on the exec fifo until start().  Keywords: pid_file,
        console_socket, console, no_pivot, no_new_keyring, preserve_fds, pidfd_socket, stdio (the process's
        (stdin, stdout, stderr) fds instead of ours), config (config.json's document, if the caller parsed it).
        warming: a cgroups.warm.start() the caller began earlier (a shim, whose threads keep its creates on the
        cgroup.procs writes: init.Spawn._own_join), or None; it is ended here either way."""
        try:
            return self._create(warming, cid, bundle, **kw)
        finally:
            if warming is not None:
                warming.stop()

    def _create(self, warming, cid, bundle, *, pid_file=None, console_socket=None, console=None, no_pivot=False,
                no_new_keyring=False, preserve_fds=0, pidfd_socket=None, stdio=None, config=None):
        from ..process.init import Ctx, Spawn
        from .procsetup import _security, _spec_version, listen_fds, seccomp_notify, send_pidfd

        check_id(cid)
        bundle = os.path.abspath(bundle or ".")
        cfg = load_bundle(bundle, config)
        self.log.debug(f"create {cid}: config loaded from {bundle}/config.json")
        from ..process.plan import build

        listen = listen_fds()
        plan = build(cfg, bundle, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                     preserve_fds=listen + preserve_fds)
        if not plan.userns and os.geteuid() != 0:  # runc's rootlessEUIDCheck: namespaces need a user ns's caps
            raise ConfigError("rootless container requires user namespaces (pyrunc spec --rootless writes one)")
        if listen:  # socket activation passes through, as with runc: fds 3.. and LISTEN_FDS for the container
            plan.process.env = [e for e in plan.process.env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
            plan.process.env += [f"LISTEN_FDS={listen}", "LISTEN_PID=1"]
        if plan.process.terminal and not (console_socket or console):
            raise ConfigError("cannot allocate tty if pyrunc will detach without setting console socket")
        if not plan.process.terminal and console_socket:
            raise ConfigError("cannot use console socket if pyrunc will not detach or allocate tty")
        ctx = Ctx()
        ctx.id = cid
        ctx.stdio = stdio
        if plan.process.terminal:
            from ..process.console import connect

            ctx.console = console if console is not None else connect(console_socket)
        if plan.personality_flags:
            self.log.warning("ignoring unsupported personality flags: linux.personality.flags are not supported")
        state = spec_state({"id": cid, "bundle": bundle, "annotations": cfg.get("annotations")}, "creating", None,
                           _spec_version())
        ctx.notify = seccomp_notify(cfg, state)
        ctx.caps, ctx.seccomp_fd, ctx.seccomp_flags = _security(plan.process, cfg, self.log)
        ddir = self.store.reserve(cid)
        mgr = base = rdt = None
        try:
            with Lock(ddir):
                # the creation record (see state.PROVISIONAL): first written by _cgroup() before its first side
                # effect (with the cgroup dirs it is about to make), rewritten once they exist.  Until then
                # nothing is made but this directory and the fifo in it, which a delete of a directory without a
                # record removes (Store.load_provisional), so one write less per create.
                base = 0 if plan.mountns else _top_mount(plan.rootfs)  # L8: the caller's mount at the rootfs
                prov = Container(self.store.root, cid, {
                    "id": cid, "bundle": bundle, "rootfs": plan.rootfs, "rootfs_base": base,
                    "config": {"linux": {"namespaces": (cfg.get("linux") or {}).get("namespaces") or []}}})
                ctx.fifo = os.path.join(ddir, FIFO)
                os.mkfifo(ctx.fifo, 0o622)
                os.chmod(ctx.fifo, 0o622)  # past the umask: the init may be a non-root user by then
                # What needs no cgroup comes first: in a shim, the cgroup steps wait for the warm-up's grace period
                # (they take the lock its write holds), so this CPU work runs while it sleeps.  The stages' code is
                # imported now for the same reason (Spawn.run would import it right before the fork).
                from ..process import child  # noqa: F401
                from ..process.stub import sealed_stub

                ctx.stub_fd = sealed_stub()
                from ..process.idmap import userns_fds

                ctx.idmap_fds = userns_fds(plan.mounts)
                mgr, ctx.limits = self._cgroup(cfg, cid, made=lambda m, before: _record_cgroup(prov, m, before))
                ctx.cgroup = mgr
                if self.log.debug_enabled:
                    self.log.debug(f"create {cid}: cgroup {mgr.paths if mgr else None}; namespaces "
                                   f"{[n.get('path') or n['type'] for n in (cfg.get('linux') or {}).get('namespaces') or ()]}")
                doc = {"ociVersion": cfg.get("ociVersion", ""), "id": cid, "bundle": bundle, "rootfs": plan.rootfs,
                       "rootfs_base": base, "created": _now(), "annotations": cfg.get("annotations") or {},
                       "cgroup_paths": mgr.paths if mgr else {}, "cgroup_created": mgr.created if mgr else [],
                       "cgroup_unit": mgr.unit if mgr else None,
                       "hooks": cfg.get("hooks") or {}, "config": {"process": cfg.get("process"),
                                                                   "linux": cfg.get("linux") or {}}}
                if any((cfg.get("hooks") or {}).get(k) for k in ("prestart", "createRuntime")):
                    # only then: sync 4/5 (HOOKS, GO) is a round trip the init waits on (process/init.py)
                    ctx.run_hooks = lambda kind, pid: self._hooks(doc, kind, pid, "creating")
                if (cfg.get("hooks") or {}).get("createContainer"):
                    from . import hooks  # noqa: F401: imported before fork, never in the container's mount ns

                    # run in the init before pivot_root: the host's /proc still tells its host pid (the spec wants
                    # that one in the state, not 1); cwd is the rootfs and the default env the process's, as runc
                    env = dict(kv.partition("=")[::2] for kv in plan.process.env)
                    ctx.run_container_hooks = lambda: self._hooks(doc, "createContainer", int(os.readlink("/proc/self")),
                                                                  "creating", cwd=plan.rootfs, env=env)
                if plan.intel_rdt is not None:
                    from ..process import intelrdt

                    def join_rdt(pid_a):  # the resctrl group, made now and recorded for delete (and a crash)
                        nonlocal rdt
                        rdt = doc["intel_rdt"] = prov.doc["intel_rdt"] = intelrdt.apply(plan.intel_rdt, cid, pid_a)
                        prov.save(PROVISIONAL)

                    ctx.join_rdt = join_rdt
                ready = []

                def while_waiting(pid):  # the state file, written while the init sets itself up
                    st = proc_start_time(pid)
                    doc["init_pid"] = pid
                    doc["init_start"] = st[1] if st else 0
                    c = Container(self.store.root, cid, doc)
                    ready.append((c, c.write_temp()))

                ctx.while_waiting = while_waiting
                spawn = Spawn(plan, ctx)
                if warming is not None:
                    warming.wait()  # no thread of ours may run when the init protocol forks
                pid = spawn.run()
                self.log.debug(f"create {cid}: init pid {pid}, waiting on the exec fifo for start")
                c, tmps = ready[0]
                c.place(tmps, first=True)  # only once the init is ready: `state` and `list` never see a failed one
                if pid_file:
                    write_pid_file(pid_file, pid)
                if pidfd_socket:
                    send_pidfd(pidfd_socket, pid)
                spawn.commit()  # sync 8: only now may the init block on the fifo (it exits if we die before)
                return c
        except BaseException:
            if mgr is not None:
                try:
                    mgr.kill_all(signal.SIGKILL)
                except Exception:  # noqa: BLE001
                    pass
                _destroy_cgroup(mgr, self.log)
            if rdt is not None:
                _destroy_rdt(rdt, self.log)
            if not plan.mountns and base is not None:
                _detach_rootfs(plan.rootfs, self.log, base)
            self.store.remove(cid)
            raise
        finally:
            for fd in (ctx.stub_fd, ctx.seccomp_fd, *(ctx.idmap_fds or {}).values()):
                if fd is not None:
                    os.close(fd)
            if ctx.console is not None and console is None:
                ctx.console.close()

    def _cgroup(self, cfg, cid, made=None):
        """The container's cgroups, made: (manager or None, its limits(): the writes of linux.resources, which
        the init protocol makes after the fork and before sync 2 (process/init.py), or None).  The systemd driver's
        limits are its unit's properties, set here: systemd realizes a unit's devices cgroup for the processes
        already in it when DeviceAllow= comes, and one added before stays in the parent slice's
        (tests/integration/test_systemd.py's CRI path)."""
        from ..cgroups import open_manager

        linux = cfg.get("linux") or {}
        mgr = open_manager(linux.get("cgroupsPath"), cid, systemd=self.systemd_cgroup, log=self.log,
                           annotations=cfg.get("annotations"))
        # runc 1.1.5 (factory_linux.go Create): refuse a frozen cgroup (our setup process would sleep in the
        # freezer forever), warn about one that already holds processes
        busy, frozen = mgr.occupancy()
        if frozen:
            raise PyruncError("container's cgroup unexpectedly frozen")
        if busy:
            self.log.warning(f"container's cgroup is not empty: {busy} process(es) found")
        if made is not None:
            made(mgr, True)
        try:
            mgr.create()
        except SysError as e:
            import errno

            if not self.rootless or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            from ..cgroups.manager import rootless_without_cgroup

            rootless_without_cgroup(linux, e)  # raises when the config needs the cgroup
            self.log.debug(f"create {cid}: rootless, no cgroup access ({e}): cgroup steps skipped")
            if made is not None:
                made(None, False)
            return None, None
        resources = linux.get("resources") or {}
        if self.rootless:
            # runc's rootless managers leave device rules out: a delegated v2 subtree cannot attach a BPF
            # program (CAP_SYS_ADMIN), and a user namespace cannot mknod a device in the first place
            resources = {k: v for k, v in resources.items() if k != "devices"}

        def limits():
            mgr.apply(resources, default_devices=not self.rootless)

        try:
            if made is not None:
                made(mgr, False)
            if resources and mgr.unit is not None:  # the systemd driver's: its unit's properties, now (see above)
                limits()
                return mgr, None
        except BaseException:
            _destroy_cgroup(mgr, self.log)
            raise
        return mgr, limits if resources else None

    def _hooks(self, doc, kind, pid, status, cwd=None, env=None):
        if not (doc.get("hooks") or {}).get(kind):
            return
        from .hooks import run_hooks

        self.log.debug(f"{doc['id']}: running {len(doc['hooks'][kind])} {kind} hook(s)")
        run_hooks(doc.get("hooks"), kind, spec_state(doc, status, pid), self.log,
                  fatal=kind not in ("poststart", "poststop"), cwd=cwd, env=env)

    # --- start, state, kill, delete --------------------------------------------------------------------

    def start(self, cid, wait=True):
        """Let the init go on to exec the user program: see start.start (and its wait=False)."""
        from .start import start

        return start(self.store, self.log, cid, lambda: self, wait)

    def state(self, cid):
        return self.store.load(cid).oci_state()

    def kill(self, cid, sig, all_=False):
        c = self.store.load(cid)
        if all_:
            mgr = _manager(c)
            if mgr is None or not c.alive() and not mgr.pids():
                return
            mgr.kill_all(sig)
            return
        if not c.alive():
            raise StateError("container not running")
        signal_init(c, sig)

    def delete(self, cid, force=False):
        try:
            self._delete(cid, force)
        except NotFound:
            if not force:
                raise

    def _delete(self, cid, force):
        """Kill under the lock, wait for the processes without it, then remove the cgroup and the state under
        it again; poststop hooks run last, outside the lock.  If the cgroup cannot be removed the state stays,
        so that delete can be run again."""
        with self.store.lock(cid) as first:
            try:
                c = self.store.load(cid)  # under the lock: never a document another delete already acted on
            except NotFound:
                # A directory without state.json: a create that died (SIGKILL, OOM) before writing it; any
                # create still running would hold this lock.  Remove what its record says it made, then the
                # directory, so the id can be used again; the answer stays "does not exist" (runc delete.go).
                self._destroy(self.store.load_provisional(cid))
                raise
            status = c.status()
            self.log.debug(f"delete {cid}: status {status}{', force' if force else ''}")
            if status in ("running", "paused") and not force:
                raise StateError(f"cannot delete container {cid} that is not stopped: {status}")
            mgr = _manager(c)
            if status != "stopped":
                if status == "paused" and mgr is not None:
                    mgr.thaw()
                try:
                    signal_init(c, signal.SIGKILL)
                except PyruncError:
                    pass
            if mgr is not None and not _own_pidns(c):
                _kill_all(mgr)
            # An fd on the container's directory (no lock), held over the wait: its inode cannot be reused
            # meanwhile, so the second lock can tell this container from a new one of the same id
            pin = os.open(first.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            wait_dead(c)
            if mgr is not None and not _wait_empty(mgr) and force:
                # still busy: processes put into our cgroups from outside the container's pid namespace
                _kill_created(mgr)
                _wait_empty(mgr)
            with Lock(self.store.path(cid)) as again:
                pinned = os.fstat(pin)
                if again.dir_id != (pinned.st_dev, pinned.st_ino):
                    # another delete finished this container while we waited, and a create made a new one of
                    # the same id: not ours to touch
                    raise NotFound("container does not exist")
                before, c = c, self.store.load(cid)
                # the manager opened above, unless the document changed meanwhile
                self._destroy(c, mgr if _cgroup_record(c) == _cgroup_record(before) else _manager(c))
        finally:
            os.close(pin)
        self._hooks(c.doc, "poststop", 0, "stopped")

    def _destroy(self, c, mgr=None):
        if mgr is None:
            mgr = _manager(c)
        if mgr is not None:
            if not _own_pidns(c):
                # the processes of a container without its own pid namespace outlive its init (runc destroy());
                # with one, the kernel killed them all, and what is left in the cgroup is not ours to kill
                _kill_all(mgr)
            try:
                mgr.destroy()
            except PyruncError as e:
                raise PyruncError(f"container {c.id}: remove cgroup: {e}") from None
        self.log.debug(f"delete {c.id}: cgroup {mgr.paths if mgr else None} removed")
        if c.doc.get("intel_rdt"):
            _destroy_rdt(c.doc["intel_rdt"], self.log)
        linux = (c.doc.get("config") or {}).get("linux") or {}
        if not any(ns.get("type") == "mount" for ns in linux.get("namespaces") or ()):
            _detach_rootfs(c.doc.get("rootfs"), self.log, c.doc.get("rootfs_base"))
        self.store.remove(c.id)

    def list(self):
        out = []
        for cid in self.store.ids():
            try:
                c = self.store.load(cid)
            except PyruncError:
                continue
            s = c.oci_state()
            try:
                import pwd

                s["owner"] = pwd.getpwuid(os.stat(c.dir).st_uid).pw_name
            except (KeyError, OSError):
                s["owner"] = "#" + str(os.getuid())
            out.append(s)
        return out


def spec_state(doc, status, pid, oci_version=None):
    """The runtime-spec state object that hooks and seccomp agents read: doc is the stored state document (or
    the same keys before it exists); oci_version defaults to the config's."""
    state = {"ociVersion": oci_version or doc.get("ociVersion", ""), "id": doc["id"], "status": status, "pid": pid,
             "bundle": doc.get("bundle", "")}
    if doc.get("annotations"):
        state["annotations"] = doc["annotations"]
    return state


def init_namespaces(c):
    """[(type, /proc/<init>/ns/<name>)] for every namespace the config lists, ordered user first, mount last."""
    from ..linux import NAMESPACES
    from ..process.plan import JOIN_ORDER

    types = [ns.get("type") for ns in ((c.doc.get("config") or {}).get("linux") or {}).get("namespaces") or ()]
    out = []
    for t in JOIN_ORDER:
        if t in types:
            path = f"/proc/{c.pid}/ns/{NAMESPACES[t][1]}"
            if t == "user" and os.readlink(path) == os.readlink("/proc/self/ns/user"):
                continue  # setns into our own user namespace fails with EINVAL
            out.append((t, path))
    if not c.alive():
        raise StateError("container not running")
    return out


def _cgroup_record(c):
    return [c.doc.get(k) for k in ("cgroup_paths", "cgroup_created", "cgroup_unit")]


def _manager(c):
    paths = c.doc.get("cgroup_paths")
    if not paths:
        return None
    from ..cgroups import manager_from_paths

    return manager_from_paths(paths, created=c.doc.get("cgroup_created") or [], unit=c.doc.get("cgroup_unit"))


def _record_cgroup(prov, mgr, before):
    """Into the creation record: the cgroup dirs create makes.  Before mgr.create(), the leaf dirs that do not
    exist yet (a kill during create leaves some of them); after it, exactly those it made.  The systemd driver's
    unit too: delete reopens that manager (it stops the unit and removes all of the unit's dirs).  A record that
    would say what the file already says is not written again: on a plain create mkdir makes exactly the leaves
    the first record named (one file write and rename less)."""
    if mgr is None:  # rootless without cgroup access: none made
        rec = {"cgroup_paths": {}, "cgroup_created": [], "cgroup_unit": None}
    else:
        made = [d for d in dict.fromkeys(mgr.paths.values()) if not os.path.isdir(d)] if before else mgr.created
        rec = {"cgroup_paths": mgr.paths, "cgroup_created": made, "cgroup_unit": mgr.unit}
    if not before and all(k in prov.doc and prov.doc[k] == v for k, v in rec.items()):
        return
    prov.doc.update(rec)
    prov.save(PROVISIONAL)


def _top_mount(path):
    """The id of the topmost mount at path (the one no other mount at path sits on), 0 if path is no mount point."""
    from ..mountinfo import unescape

    at = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if unescape(fields[4]) == path:
                at[int(fields[0])] = int(fields[1])
    tops = [m for m in at if m not in at.values()]
    return tops[-1] if tops else 0


def _detach_rootfs(rootfs, log, base=None):
    """A container without its own mount namespace mounted on the host, under its rootfs (pyrunc's bind of the
    rootfs onto itself, and everything under it): detach all of it.  base: the topmost mount at the rootfs before
    pyrunc made its bind (0: none), so that only pyrunc's own is detached, never the caller's (containerd mounts
    the image's overlay there, and a create may fail before pyrunc's bind exists).  None: unknown (a state
    written by an older pyrunc): any mount at the rootfs is taken for ours."""
    if not rootfs:
        return
    top = _top_mount(rootfs)
    if not top or top == base:
        return
    from ..errors import SysError
    from ..linux import MNT_DETACH, real

    try:
        real.umount2(rootfs, MNT_DETACH)
    except SysError as e:
        log.warning(f"detach rootfs mounts: {e}")


def _destroy_rdt(rec, log):
    from ..process import intelrdt

    try:
        intelrdt.destroy(rec)
    except PyruncError as e:
        log.warning(f"remove intel rdt group: {e}")


def _destroy_cgroup(mgr, log):
    try:
        mgr.destroy()
    except PyruncError as e:
        log.warning(f"remove cgroup: {e}")


def _kill_all(mgr):
    try:
        if mgr.pids():
            mgr.kill_all(signal.SIGKILL)
    except (PyruncError, OSError):
        pass


def _own_pidns(c):
    linux = (c.doc.get("config") or {}).get("linux") or {}
    return any(ns.get("type") == "pid" and not ns.get("path") for ns in linux.get("namespaces") or ())


def _own_created(mgr):
    """The container's own cgroup dirs that create made: a pre-existing cgroup is not ours to wait on or to empty,
    nor is a parent made on the way (containerd's /<namespace>), where other containers live too."""
    own = set(mgr.paths.values())
    return [d for d in mgr.created if d in own]


def _wait_empty(mgr, timeout=3.0):
    """Wait (bounded; never under the container's lock) for the killed processes to leave our own cgroups."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while time.monotonic() < deadline:
        if not any(_procs_under(d) for d in _own_created(mgr)):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return False


def _procs_under(d):
    from ..cgroups.manager import procs_under  # loaded already: only a manager's dirs are checked

    return procs_under(d)


def _kill_created(mgr):
    for d in _own_created(mgr):
        for pid in _procs_under(d):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_dead(c, timeout=10.0):
    if not c.alive():  # the usual case (delete after kill): no import, no clock
        return
    from ..process import waiter

    deadline = time.monotonic() + timeout
    while c.alive():
        try:
            waiter.waitpid(c.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise PyruncError(f"container {c.id}: init process {c.pid} did not exit after SIGKILL")
        time.sleep(0.005)
