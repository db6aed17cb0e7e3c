"""The task service (containerd.task.v2.Task, SHIM.md §3): containers of one shim (one, or a whole pod), driven
in-process through pyrunc's library, the same calls the CLI makes.

Locks: one RLock per container guards its processes and the order of its events.  Exits arrive from the reaper
(main thread) through reaper.subscribe(); the callback takes the container's lock, so an exit is never published
before the start of its process (Start holds the lock until TaskStart is queued), the init's exit waits for the
exec exits (and an OOM seen at that moment), and TaskDelete comes after TaskExit.
"""

import os
import time

from ..cgroups import warm
from ..errors import NotFound, PyruncError, StateError
from . import api, sync, ttrpc, wire
from .main import OPTIONS_FILE  # main, not cleanup: one module less to load before the first Create
from .reaper import exit_code

STATUS = {"created": api.CREATED, "running": api.RUNNING, "paused": api.PAUSED, "stopped": api.STOPPED,
          "pausing": api.PAUSING}
DEFAULT_ROOT = "/run/containerd/pyrunc"


def _not_found(what):
    return ttrpc.Error(ttrpc.NOT_FOUND, f"{what}: not found")


class Proc:
    def __init__(self, exec_id, stdin, stdout, stderr, terminal, spec=None):
        self.exec_id = exec_id
        self.stdin, self.stdout, self.stderr, self.terminal = stdin, stdout, stderr, terminal
        self.spec = spec
        self.pid = 0
        self.started = False
        self.exit_status = 0
        self.exited_at = 0  # ns; 0 = running
        self.exited = sync.Event()
        self.io = None
        self.reaped = None  # raw status held back (the init waits for its exec exits)


class Task:
    def __init__(self, cid, bundle, rt, opts, init):
        self.id, self.bundle, self.rt, self.opts = cid, bundle, rt, opts
        self.init = init
        self.execs = {}
        self.lock = sync.RLock()
        self.mounted = False
        self.oom = None
        self.oom_ready = None  # held while the OOM watch is being set up (Service._watch_oom_soon)
        self.pidns = True


def _ts(ns):
    return wire.Timestamp.from_ns(ns) if ns else wire.Timestamp(seconds=wire.GO_ZERO_SECONDS)


def parse_options(any_):
    """containerd.runc.v1.Options or runtimeoptions.v1.Options (its TOML: root, systemd_cgroup, ...) -> dict."""
    o = {"root": "", "systemd_cgroup": False, "no_pivot": False, "no_new_keyring": False, "io_uid": -1,
         "io_gid": -1}
    if any_ is None or not any_.type_url:
        return o
    name = any_.type_url.rsplit("/", 1)[-1]
    if name == api.RuncOptions.NAME:
        r = api.RuncOptions.decode(any_.value)
        o.update(root=r.root, systemd_cgroup=r.systemd_cgroup, no_pivot=r.no_pivot_root,
                 no_new_keyring=r.no_new_keyring)
        if r.io_uid or r.io_gid:
            o.update(io_uid=r.io_uid, io_gid=r.io_gid)
    elif name == api.RuntimeOptions.NAME:
        r = api.RuntimeOptions.decode(any_.value)
        if r.config_path:
            o.update(_read_toml(r.config_path))
    return o


def _read_toml(path):
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, ValueError) as e:
        raise ttrpc.Error(ttrpc.INVALID_ARGUMENT, f"read runtime options {path}: {e}") from None
    keys = {"root": str, "systemd_cgroup": bool, "no_pivot": bool, "no_new_keyring": bool, "io_uid": int,
            "io_gid": int, "shim_cgroup": str}  # shim_cgroup: read by `start` (main.py)
    out = {}
    for k, v in doc.items():
        if k not in keys or not isinstance(v, keys[k]):
            raise ttrpc.Error(ttrpc.INVALID_ARGUMENT, f"runtime options {path}: unknown or mistyped key {k!r}")
        out[k] = v
    return out


class Service:
    def __init__(self, namespace, publisher, reaper, log, loop, on_empty_shutdown, warming=None):
        self.ns = namespace
        self.events = publisher
        self.reaper = reaper
        self.log = log
        self.loop = loop
        self.on_empty_shutdown = on_empty_shutdown
        self.tasks = {}
        self.lock = sync.Lock()
        # the cgroup lock's warm-up (cgroups/warm.py) the daemon began at fork, for the first Create: its grace
        # period (8-20 ms here) passes while the daemon imports, not in the middle of Create's cgroup steps
        self.warming = warming

    def _take_warming(self):
        with self.lock:
            w, self.warming = self.warming, None
        return w

    def drop_warming(self):
        """End the daemon's warm-up if no Create took it (the daemon calls this when idle and at exit)."""
        w = self._take_warming()
        if w is not None:
            w.stop()

    # --- plumbing ------------------------------------------------------------------------------------------

    def handlers(self):
        out = {}
        for method, (req_cls, _) in api.TASK_METHODS.items():
            fn = getattr(self, method.lower(), None)
            if fn is not None:
                out[method] = self._wrap(fn, req_cls)
        return out

    def _wrap(self, fn, req_cls):
        def call(payload):
            t0 = time.monotonic()
            try:
                return _call(payload)
            finally:
                self.log.debug(f"{req_cls.NAME} {(time.monotonic() - t0) * 1000:.1f} ms")

        def _call(payload):
            try:
                req = req_cls.decode(payload)
            except ValueError as e:
                raise ttrpc.Error(ttrpc.INVALID_ARGUMENT, f"decode {req_cls.NAME}: {e}") from None
            try:
                resp = fn(req)
            except ttrpc.Error:
                raise
            except NotFound as e:
                raise ttrpc.Error(ttrpc.NOT_FOUND, f"{e}: not found") from None
            except StateError as e:
                raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, str(e)) from None
            except (PyruncError, OSError) as e:
                raise ttrpc.Error(ttrpc.UNKNOWN, str(e)) from None
            return b"" if resp is None else resp.encode()
        return call

    def _publish(self, event):
        self.events.publish(api.TOPICS[type(event)], event)

    def _task(self, cid):
        t = self.tasks.get(cid)
        if t is None:
            raise _not_found("container not created")
        return t

    def _proc(self, t, exec_id):
        if not exec_id:
            return t.init
        p = t.execs.get(exec_id)
        if p is None:
            raise _not_found(f"process {exec_id} does not exist")
        return p

    # --- create, start ------------------------------------------------------------------------------------

    def _runtime(self, root, opts):
        """The library's Runtime (tests put a fake here)."""
        from ..container.lifecycle import Runtime

        return Runtime(root, self.log, systemd_cgroup=opts["systemd_cgroup"])

    def _exec_process(self, t, spec, console, stdio):
        from ..container.execute import exec_process

        return exec_process(t.rt, t.id, spec, console=console, stdio=stdio)

    def create(self, req):
        from . import mounts, stdio

        if req.checkpoint:
            raise ttrpc.Error(ttrpc.UNIMPLEMENTED, "restore from a checkpoint: not implemented by pyrunc")
        opts = parse_options(req.options)
        root = opts["root"] or os.path.join(DEFAULT_ROOT, self.ns)
        with self.lock:
            if req.id in self.tasks:
                raise ttrpc.Error(ttrpc.ALREADY_EXISTS, f"container {req.id}: already exists")
            init = Proc("", req.stdin, req.stdout, req.stderr, req.terminal)
            t = Task(req.id, req.bundle, self._runtime(root, opts), opts, init)
            self.tasks[req.id] = t
        try:
            with t.lock:
                _write_json(os.path.join(req.bundle, OPTIONS_FILE), {"root": root})
                rootfs = os.path.join(req.bundle, "rootfs")
                if req.rootfs:
                    os.makedirs(rootfs, exist_ok=True)
                    mounts.mount_all(req.rootfs, rootfs)
                    t.mounted = True
                init.io = stdio.open_io(self.loop, req.id, self.ns, req.stdin, req.stdout, req.stderr,
                                        terminal=req.terminal, uid=opts["io_uid"], gid=opts["io_gid"])
                console, theirs = _console_pair(req.terminal)
                warming = self._take_warming() or warm.start()  # threads: the cgroup.procs writes (warm.py)
                try:
                    c = t.rt.create(req.id, req.bundle, console=theirs, no_pivot=opts["no_pivot"],
                                    no_new_keyring=opts["no_new_keyring"], stdio=init.io.child,
                                    warming=warming and warming.threaded())
                    if console is not None:
                        stdio.attach_console(self.loop, init.io, _recv_master(console), req.id)
                finally:
                    for s in (console, theirs):
                        if s is not None:
                            s.close()
                init.io.close_child()
                init.pid = c.pid
                t.pidns = any(n.get("type") == "pid" and not n.get("path")
                              for n in ((c.doc.get("config") or {}).get("linux") or {}).get("namespaces") or ())
                self.reaper.subscribe(c.pid, lambda st, t=t: self._init_exit(t, st))
                self._publish(api.TaskCreate(container_id=req.id, bundle=req.bundle, rootfs=list(req.rootfs),
                                             io=api.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr,
                                                           terminal=req.terminal), pid=c.pid))
                self._watch_oom_soon(t)
        except BaseException:
            self._forget(t)
            raise
        return api.CreateTaskResponse(pid=init.pid)

    def _forget(self, t):
        """Close the task's IO, unmount its rootfs, drop it; False when a rootfs mount stayed behind."""
        from . import mounts

        if t.init.io is not None:
            t.init.io.close(self.loop)
        unmounted = True
        if t.mounted:
            unmounted = mounts.unmount(os.path.join(t.bundle, "rootfs"))
            t.mounted = False
        with self.lock:
            self.tasks.pop(t.id, None)
        return unmounted

    def start(self, req):
        t = self._task(req.id)
        with t.lock:
            p = self._proc(t, req.exec_id)
            if p.started:
                raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"process {req.exec_id or req.id} already started")
            if not req.exec_id:
                _oom_watched(t)  # before the process runs: no OOM kill can come before its watch
                t.rt.start(req.id)
                p.started = True
                self._publish(api.TaskStart(container_id=req.id, pid=p.pid))
                return api.StartResponse(pid=p.pid)
            self._start_exec(t, p)
            return api.StartResponse(pid=p.pid)

    def _start_exec(self, t, p):
        from . import stdio

        if t.init.exited_at or t.init.reaped is not None:
            raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"container {t.id} is stopped: cannot start exec {p.exec_id}")
        p.io = stdio.open_io(self.loop, t.id, self.ns, p.stdin, p.stdout, p.stderr, terminal=p.terminal,
                             uid=t.opts["io_uid"], gid=t.opts["io_gid"])
        console, theirs = _console_pair(p.terminal)
        try:
            p.pid = self._exec_process(t, p.spec, theirs, p.io.child)
            if console is not None:
                stdio.attach_console(self.loop, p.io, _recv_master(console), f"{t.id}/{p.exec_id}")
        except BaseException:
            p.io.close(self.loop)
            self._set_exited(p, 255 << 8)  # a Wait already waiting on it returns (containerd deletes it next)
            raise
        finally:
            for s in (console, theirs):
                if s is not None:
                    s.close()
            p.io.close_child()
        p.started = True
        self._publish(api.TaskExecStarted(container_id=t.id, exec_id=p.exec_id, pid=p.pid))
        self.reaper.subscribe(p.pid, lambda st: self._exec_exit(t, p, st))  # may run now: we hold the lock

    def exec(self, req):
        import json

        t = self._task(req.id)
        with t.lock:
            if req.exec_id in t.execs:
                raise ttrpc.Error(ttrpc.ALREADY_EXISTS, f"id {req.exec_id}: already exists")
            if t.init.exited_at:
                raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"container {req.id} is stopped")
            try:
                spec = json.loads(req.spec.value if req.spec else b"null")
            except ValueError as e:
                raise ttrpc.Error(ttrpc.INVALID_ARGUMENT, f"exec {req.exec_id}: process spec: {e}") from None
            if not isinstance(spec, dict):
                raise ttrpc.Error(ttrpc.INVALID_ARGUMENT, f"exec {req.exec_id}: process spec: expected an object")
            spec["terminal"] = req.terminal
            t.execs[req.exec_id] = Proc(req.exec_id, req.stdin, req.stdout, req.stderr, req.terminal, spec)
            self._publish(api.TaskExecAdded(container_id=req.id, exec_id=req.exec_id))

    # --- exits ----------------------------------------------------------------------------------------------

    def _exec_exit(self, t, p, status):
        with t.lock:
            self._set_exited(p, status)
            self._publish(api.TaskExit(container_id=t.id, id=p.exec_id, pid=p.pid, exit_status=p.exit_status,
                                       exited_at=_ts(p.exited_at)))
            if t.init.reaped is not None and not self._running_execs(t):
                self._finish_init(t)

    def _init_exit(self, t, status):
        with t.lock:
            t.init.reaped = status
            if not t.pidns:  # no pid namespace of its own: nothing else kills what it leaves behind
                try:
                    t.rt.kill(t.id, 9, all_=True)
                except PyruncError:
                    pass
            if not self._running_execs(t):  # else the last exec exit finishes the init (its exit is the last)
                self._finish_init(t)

    def _running_execs(self, t):
        return [p for p in t.execs.values() if p.started and not p.exited_at]

    def _finish_init(self, t):
        _oom_watched(t)  # killed before Start: no watch may be left running after the exit
        if t.oom is not None:
            t.oom.check_now()  # an OOM kill is reported before the exit it caused
            t.oom.stop()
            t.oom = None
        p = t.init
        self._set_exited(p, p.reaped)
        self._publish(api.TaskExit(container_id=t.id, id=t.id, pid=p.pid, exit_status=p.exit_status,
                                   exited_at=_ts(p.exited_at)))

    def _set_exited(self, p, status):
        p.exit_status = exit_code(status)
        p.exited_at = time.time_ns()
        p.exited.set()
        if p.io is not None:
            p.io.close_stdin()

    def _watch_oom_soon(self, t):
        """Set the OOM watch up once Create's reply is out (in a thread of its own, it took the GIL from the reply):
        containerd sends Start only after a Connect or two, and Start waits for it (_oom_watched) before it lets
        the process run."""
        t.oom_ready = sync.Lock()
        t.oom_ready.acquire()

        def watch():
            try:
                self._watch_oom(t)
            finally:
                t.oom_ready.release()

        ttrpc.after_reply(watch)

    def _watch_oom(self, t):
        from . import oom

        try:
            t.oom = oom.watch(t.init.pid, lambda: self._publish(api.TaskOOM(container_id=t.id)), t.lock, self.log)
        except (OSError, PyruncError) as e:
            self.log.warning(f"watch {t.id} for oom: {e}")

    # --- queries ---------------------------------------------------------------------------------------------

    def state(self, req):
        t = self._task(req.id)
        with t.lock:
            p = self._proc(t, req.exec_id)
            if p.exited_at:
                status = api.STOPPED
            elif req.exec_id:
                status = api.RUNNING if p.started else api.CREATED
            elif t.init.reaped is not None:
                status = api.RUNNING  # its exit waits for the exec exits
            else:
                try:
                    status = STATUS.get(t.rt.state(req.id)["status"], api.UNKNOWN)
                except NotFound:
                    status = api.STOPPED
            return api.StateResponse(id=p.exec_id or t.id, bundle=t.bundle, pid=p.pid, status=status,
                                     stdin=p.stdin, stdout=p.stdout, stderr=p.stderr, terminal=p.terminal,
                                     exit_status=p.exit_status, exited_at=_ts(p.exited_at), exec_id=p.exec_id)

    def wait(self, req):
        t = self._task(req.id)
        p = self._proc(t, req.exec_id)
        p.exited.wait()
        return api.WaitResponse(exit_status=p.exit_status, exited_at=_ts(p.exited_at))

    def connect(self, req):
        t = self.tasks.get(req.id)
        return api.ConnectResponse(shim_pid=os.getpid(), task_pid=t.init.pid if t else 0)

    def pids(self, req):
        from ..container import resources

        t = self._task(req.id)
        by_pid = {p.pid: p.exec_id for p in list(t.execs.values()) if p.pid}
        try:
            pids = resources.processes(t.rt.store.root, req.id)
        except NotFound:
            pids = []
        out = []
        for pid in pids:
            info = None
            if pid in by_pid:
                info = wire.pack(api.ProcessDetails(exec_id=by_pid[pid]))
            out.append(api.ProcessInfo(pid=pid, info=info))
        return api.PidsResponse(processes=out)

    def stats(self, req):
        from ..container.lifecycle import _manager
        from .metrics import to_metrics

        t = self._task(req.id)
        c = t.rt.store.load(req.id)
        mgr = _manager(c)
        if mgr is None:
            raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"container {req.id} has no cgroup")
        return api.StatsResponse(stats=wire.pack(to_metrics(mgr.stats(), mgr.layout.mode)))

    # --- control ---------------------------------------------------------------------------------------------

    def kill(self, req):
        t = self._task(req.id)
        with t.lock:
            p = self._proc(t, req.exec_id)
            if req.exec_id:
                if not p.started:
                    raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"process {req.exec_id} not created")
                if p.exited_at:
                    raise _not_found("process already finished")
                # still unreaped (its exit would have been recorded under this lock): the pid is still its own
                os.kill(p.pid, req.signal)
                return None
            if p.exited_at or (p.reaped is not None and not req.all):
                raise _not_found("process already finished")
            try:
                t.rt.kill(req.id, req.signal, all_=req.all)
            except StateError:
                raise _not_found("process already finished") from None
        return None

    def pause(self, req):
        from ..container import resources

        t = self._task(req.id)
        with t.lock:
            resources.pause(t.rt.store.root, req.id)
            self._publish(api.TaskPaused(container_id=req.id))

    def resume(self, req):
        from ..container import resources

        t = self._task(req.id)
        with t.lock:
            resources.resume(t.rt.store.root, req.id)
            self._publish(api.TaskResumed(container_id=req.id))

    def update(self, req):
        from ..container import resources

        t = self._task(req.id)
        patch = resources.patch_from_json(req.resources.value if req.resources else b"{}", "the update request")
        resources.update(t.rt.store.root, req.id, patch, self.log)

    def resizepty(self, req):
        from ..process.console import set_size

        t = self._task(req.id)
        p = self._proc(t, req.exec_id)
        if p.io is not None and p.io.console is not None:
            set_size(p.io.console, {"width": req.width, "height": req.height})

    def closeio(self, req):
        t = self._task(req.id)
        p = self._proc(t, req.exec_id)
        if req.stdin and p.io is not None:
            p.io.close_stdin()

    def checkpoint(self, req):
        raise ttrpc.Error(ttrpc.UNIMPLEMENTED, "checkpoint: not implemented by pyrunc (no CRIU support yet)")

    # --- delete, shutdown ------------------------------------------------------------------------------------

    def delete(self, req):
        t = self._task(req.id)
        if req.exec_id:
            with t.lock:
                p = self._proc(t, req.exec_id)
                if p.started and not p.exited_at:
                    raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"cannot delete running exec {req.exec_id}")
                del t.execs[req.exec_id]
                p.exited.set()  # never started: nothing waits for it any more
                if p.io is not None:
                    p.io.wait(2.0)
                    p.io.close(self.loop)
                return api.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=_ts(p.exited_at))
        p = t.init
        with t.lock:
            if not p.exited_at and p.started:
                raise ttrpc.Error(ttrpc.FAILED_PRECONDITION, f"cannot delete running task {req.id}")
            if not p.exited_at:  # created, never started: kill it; its exit comes through the reaper
                try:
                    t.rt.kill(req.id, 9)
                except (StateError, NotFound):
                    pass
        if not p.exited.wait(10.0):
            raise ttrpc.Error(ttrpc.DEADLINE_EXCEEDED, f"task {req.id}: init {p.pid} did not exit after SIGKILL")
        with t.lock:
            t.rt.delete(req.id, force=True)
            if p.io is not None:
                p.io.wait(2.0)
            # the options file goes last, and only when nothing is left: its absence tells `delete` (the launcher's
            # shell part, cleanup.py) that there is nothing to clean up
            if self._forget(t):
                try:
                    os.unlink(os.path.join(t.bundle, OPTIONS_FILE))
                except FileNotFoundError:
                    pass
            self._publish(api.TaskDelete(container_id=req.id, pid=p.pid, exit_status=p.exit_status,
                                         exited_at=_ts(p.exited_at)))
        return api.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=_ts(p.exited_at))

    def shutdown(self, req):
        with self.lock:
            if self.tasks:
                return None
        self.on_empty_shutdown()
        return None


def _oom_watched(t):
    """Wait until the task's OOM watch is set up (or has failed: logged); a hung set-up is waited for 10 s."""
    if t.oom_ready is not None and t.oom_ready.acquire(timeout=10.0):
        t.oom_ready.release()


def _console_pair(terminal):
    if not terminal:
        return None, None
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def _recv_master(sock):
    from ..process.console import recv_master

    return recv_master(sock)


def _write_json(path, doc):
    from .. import fastjson

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(fastjson.dumps(doc))
    os.rename(tmp, path)
