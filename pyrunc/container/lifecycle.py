"""The container lifecycle: create, start, kill, delete (and run as create+start), as a library.

No global state: a Runtime holds the --root store, the logger and the global options, so a shim can use it
in-process.  Every operation locks the container directory; create validates everything before its first side
effect and undoes everything it did on failure (init process, cgroup, state directory).
"""

import _signal as signal  # the C module: `signal` imports enum (~3.5 ms on every verb)
import os
import time

from ..errors import ConfigError, NotFound, PyruncError, StateError
from .state import FIFO, Container, Lock, Store, check_id, proc_start_time, write_pid_file


def load_bundle(bundle):
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {os.strerror(e.errno).lower()}") from None
    import json

    try:
        cfg = json.loads(data)
    except ValueError as e:
        raise ConfigError(f"parse {path}: {e}") from None
    from ..spec.validate import validate_config

    validate_config(cfg)
    return cfg


def parse_signal(s):
    if s is None or s == "":
        return signal.SIGTERM
    try:
        n = int(s)
    except ValueError:
        name = s.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        n = getattr(signal, name, None)
        if not isinstance(n, int) or name.startswith("SIG_") or name in ("SIGRTMIN", "SIGRTMAX"):
            raise PyruncError(f"unknown signal {s!r}")
        return n
    if n <= 0 or n > 64:
        raise PyruncError(f"unknown signal {s!r}")
    return n


def _now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


class Runtime:
    def __init__(self, root, log, systemd_cgroup=False):
        self.store = Store(root)
        self.log = log
        self.systemd_cgroup = systemd_cgroup

    # --- create ----------------------------------------------------------------------------------------

    def create(self, cid, bundle, *, pid_file=None, console_socket=None, console=None, no_pivot=False,
               no_new_keyring=False, preserve_fds=0, pidfd_socket=None, stdio=None):
        """Bring up the init process, blocked on the exec fifo until start().  stdio: the process's
        (stdin, stdout, stderr) fds instead of ours."""
        from ..process.init import Ctx, Spawn
        from .procsetup import _security, _spec_version, listen_fds, seccomp_notify, send_pidfd

        check_id(cid)
        bundle = os.path.abspath(bundle or ".")
        cfg = load_bundle(bundle)
        self.log.debug(f"create {cid}: config loaded from {bundle}/config.json")
        from ..process.plan import build

        listen = listen_fds()
        plan = build(cfg, bundle, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                     preserve_fds=listen + preserve_fds)
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
        mgr = None
        try:
            with Lock(ddir):
                ctx.fifo = os.path.join(ddir, FIFO)
                os.mkfifo(ctx.fifo, 0o622)
                os.chmod(ctx.fifo, 0o622)  # past the umask: the init may be a non-root user by then
                mgr = self._cgroup(cfg, cid)
                ctx.cgroup = mgr
                if self.log.debug_enabled:
                    self.log.debug(f"create {cid}: cgroup {mgr.paths if mgr else None}; namespaces "
                                   f"{[n.get('path') or n['type'] for n in (cfg.get('linux') or {}).get('namespaces') or ()]}")
                from ..process.stub import sealed_stub

                ctx.stub_fd = sealed_stub()
                from ..process.idmap import userns_fds

                ctx.idmap_fds = userns_fds(plan.mounts)
                doc = {"ociVersion": cfg.get("ociVersion", ""), "id": cid, "bundle": bundle, "rootfs": plan.rootfs,
                       "created": _now(), "annotations": cfg.get("annotations") or {},
                       "cgroup_paths": mgr.paths if mgr else {}, "cgroup_created": mgr.created if mgr else [],
                       "hooks": cfg.get("hooks") or {}, "config": {"process": cfg.get("process"),
                                                                   "linux": cfg.get("linux") or {}}}
                ctx.run_hooks = lambda kind, pid: self._hooks(doc, kind, pid, "creating")
                if (cfg.get("hooks") or {}).get("createContainer"):
                    # run in the init before pivot_root: the host's /proc still tells its host pid (the spec wants
                    # that one in the state, not 1)
                    ctx.run_container_hooks = lambda: self._hooks(doc, "createContainer", int(os.readlink("/proc/self")),
                                                                  "creating")
                pid = Spawn(plan, ctx).run()
                self.log.debug(f"create {cid}: init pid {pid}, waiting on the exec fifo for start")
                st = proc_start_time(pid)
                doc["init_pid"] = pid
                doc["init_start"] = st[1] if st else 0
                c = Container(self.store.root, cid, doc)
                c.save()
                if pid_file:
                    write_pid_file(pid_file, pid)
                if pidfd_socket:
                    send_pidfd(pidfd_socket, pid)
                return c
        except BaseException:
            if mgr is not None:
                try:
                    mgr.kill_all(signal.SIGKILL)
                except Exception:  # noqa: BLE001
                    pass
                _destroy_cgroup(mgr, self.log)
            if not plan.mountns:
                _detach_rootfs(plan.rootfs, self.log)
            self.store.remove(cid)
            raise
        finally:
            for fd in (ctx.stub_fd, ctx.seccomp_fd, *(ctx.idmap_fds or {}).values()):
                if fd is not None:
                    os.close(fd)
            if ctx.console is not None and console is None:
                ctx.console.close()

    def _cgroup(self, cfg, cid):
        from ..cgroups import open_manager

        linux = cfg.get("linux") or {}
        mgr = open_manager(linux.get("cgroupsPath"), cid, systemd=self.systemd_cgroup)
        mgr.create()
        try:
            if linux.get("resources"):
                mgr.apply(linux["resources"])
        except BaseException:
            _destroy_cgroup(mgr, self.log)
            raise
        return mgr

    def _hooks(self, doc, kind, pid, status):
        if not (doc.get("hooks") or {}).get(kind):
            return
        from .hooks import run_hooks

        self.log.debug(f"{doc['id']}: running {len(doc['hooks'][kind])} {kind} hook(s)")
        run_hooks(doc.get("hooks"), kind, spec_state(doc, status, pid), self.log,
                  fatal=kind not in ("poststart", "poststop"))

    # --- start, state, kill, delete --------------------------------------------------------------------

    def start(self, cid):
        with Lock(self.store.path(cid)):
            c = self.store.load(cid)
            status = c.status()
            if status == "stopped":
                raise StateError("cannot start a container that has stopped")
            if status != "created":
                raise StateError("cannot start an already running container")
            if (c.doc.get("hooks") or {}).get("startContainer"):
                from .hooks import run_in_container

                run_in_container(self, c, "startContainer")
            self._release(c)
            self.log.debug(f"start {cid}: exec fifo released, init pid {c.pid} runs the process")
            self._hooks(c.doc, "poststart", c.pid, "running")

    def _release(self, c):
        """Open the exec fifo for reading: the init, blocked opening it for writing, goes on to exec."""
        path = os.path.join(c.dir, FIFO)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            import select

            poll = select.poll()
            poll.register(fd, select.POLLIN)
            while True:
                if poll.poll(100):
                    data = os.read(fd, 1)
                    if data:
                        break
                if not c.alive():
                    raise StateError("container init process exited before start")
        finally:
            os.close(fd)
        os.unlink(path)

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
        with Lock(self.store.path(cid)):
            c = self.store.load(cid)  # under the lock: never a document another delete already acted on
            status = c.status()
            self.log.debug(f"delete {cid}: status {status}{', force' if force else ''}")
            if status in ("running", "paused") and not force:
                raise StateError(f"cannot delete container {cid} that is not stopped: {status}")
            if status != "stopped":
                mgr = _manager(c)
                if status == "paused" and mgr is not None:
                    mgr.thaw()
                try:
                    signal_init(c, signal.SIGKILL)
                except PyruncError:
                    pass
                if mgr is not None:
                    mgr.kill_all(signal.SIGKILL)
                wait_dead(c)
            self._destroy(c)

    def _destroy(self, c):
        mgr = _manager(c)
        if mgr is not None:
            try:
                if mgr.pids():
                    mgr.kill_all(signal.SIGKILL)
            except Exception:  # noqa: BLE001
                pass
            _destroy_cgroup(mgr, self.log)
        self.log.debug(f"delete {c.id}: cgroup {mgr.paths if mgr else None} removed")
        linux = (c.doc.get("config") or {}).get("linux") or {}
        if not any(ns.get("type") == "mount" for ns in linux.get("namespaces") or ()):
            _detach_rootfs(c.doc.get("rootfs"), self.log)
        self.store.remove(c.id)
        self._hooks(c.doc, "poststop", 0, "stopped")

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


def _manager(c):
    paths = c.doc.get("cgroup_paths")
    if not paths:
        return None
    from ..cgroups import manager_from_paths

    return manager_from_paths(paths, created=c.doc.get("cgroup_created") or [])


def _detach_rootfs(rootfs, log):
    """A container without its own mount namespace mounted on the host, under its rootfs: detach all of it, if the
    rootfs is still a mount point of ours (a bind of itself)."""
    if not rootfs:
        return
    with open("/proc/self/mountinfo") as f:
        if not any(line.split()[4] == rootfs for line in f):
            return
    from ..errors import SysError
    from ..linux import MNT_DETACH, real

    try:
        real.umount2(rootfs, MNT_DETACH)
    except SysError as e:
        log.warning(f"detach rootfs mounts: {e}")


def _destroy_cgroup(mgr, log):
    try:
        mgr.destroy()
    except PyruncError as e:
        log.warning(f"remove cgroup: {e}")


def signal_init(c, sig):
    """Signal the init process through a pidfd checked against the recorded start time (never a recycled pid)."""
    try:
        pidfd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        raise StateError("container not running") from None
    try:
        if not c.alive():
            raise StateError("container not running")
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise StateError("container not running") from None
    finally:
        os.close(pidfd)


def wait_dead(c, timeout=10.0):
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
