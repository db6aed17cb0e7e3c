"""The task service over a fake runtime (no root): real child processes stand in for container processes, a real
reaper reaps them, and the events go through the real publisher to a fake containerd (a ttrpc server from
pyrunc/shim/ttrpc.py) — so the order rules of SHIM.md §4.3 are checked on the wire.  Synchronised on events and
exits only: the reaper thread blocks in waitid(WNOWAIT) until a child exits, the test waits for events."""

import contextlib
import os
import socket
import threading

import pytest

from pyrunc.errors import Logger
from pyrunc.shim import api, events, reaper, service, stdio, ttrpc, wire

TIMEOUT = 20


class FakeContainer:
    def __init__(self, pid):
        self.pid = pid
        self.doc = {"config": {"linux": {"namespaces": [{"type": "pid"}]}}}


class FakeRuntime:
    """create forks the 'init', which exits with its code when the test calls release(pid)."""

    def __init__(self, root):
        self.root = root
        self.gates = {}
        self.started = set()

    def fork(self, code):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for fd in (w, *self.gates.values()):  # another child's gate kept open here would never close
                os.close(fd)
            os.read(r, 1)
            os._exit(code)
        os.close(r)
        self.gates[pid] = w
        return pid

    def release(self, pid):
        os.close(self.gates.pop(pid))

    def create(self, cid, bundle, **kw):
        assert kw["stdio"] and len(kw["stdio"]) == 3
        self.warmings = getattr(self, "warmings", []) + [kw.get("warming")]
        self.inits = getattr(self, "inits", {})
        self.inits[cid] = self.fork(7)
        return FakeContainer(self.inits[cid])

    def start(self, cid):
        self.started.add(cid)

    def state(self, cid):
        return {"status": "running" if cid in self.started else "created"}

    def kill(self, cid, sig, all_=False):
        if sig == 9 and self.inits[cid] in self.gates:
            self.release(self.inits[cid])

    def delete(self, cid, force=False):
        self.deleted = cid


class FakeService(service.Service):
    def _runtime(self, root, opts):
        self.rt = FakeRuntime(root)
        return self.rt

    def _exec_process(self, t, spec, console, stdio):
        """args: ["now"|"gated", exit code]"""
        pid = self.rt.fork(int(spec["args"][-1]))
        if spec["args"][0] == "now":
            self.rt.release(pid)
        return pid

    def _watch_oom(self, t):
        pass


class FakeContainerd:
    """Events/Forward on a unix socket: records (topic, event) in arrival order."""

    def __init__(self, path):
        self.got = []
        self.cond = threading.Condition()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(8)
        self.server = ttrpc.Server(sock, {api.EVENTS_SERVICE: {"Forward": self.forward}})
        threading.Thread(target=self.server.serve, daemon=True).start()

    def forward(self, payload):
        env = api.ForwardRequest.decode(payload).envelope
        assert env.timestamp.seconds > 0 and env.namespace == "ns1"
        assert not env.event.type_url.startswith("type.googleapis.com/")
        with self.cond:
            self.got.append((env.topic, wire.unpack(env.event, api.REGISTRY)))
            self.cond.notify_all()
        return b""

    def wait_for(self, pred):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.got), TIMEOUT), self.got

    def topics(self):
        with self.cond:
            return [(t, getattr(e, "id", "") or getattr(e, "exec_id", "")) for t, e in self.got]


def run_isolated(fn, *args):
    """Run fn(*args) in a forked child of pytest and fail with its traceback.  A shim's reaper reaps EVERY child of
    its process: in pytest's own process it would take the statuses of pytest's other children (the e2e
    containerd, ctr, other tests' subprocesses).  In the child it reaps only what the test started."""
    import select
    import time
    import traceback

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001: everything goes to the parent
            os.write(w, traceback.format_exc().encode(errors="replace"))
            code = 1
        os._exit(code)
    os.close(w)
    out = b""
    deadline = time.monotonic() + 4 * TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, 9)
                out += b"\n(test child killed after its deadline)"
                break
            b = os.read(r, 65536)
            if not b:
                break
            out += b
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if status != 0:
        pytest.fail(out.decode(errors="replace") or f"test child: wait status {status}", pytrace=False)


def _reap_forever(rp, stop):
    """The daemon reaps on SIGCHLD in its main thread; here a thread blocks until some child has exited."""
    while not stop.is_set():
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            if stop.wait(0.01):
                return
            continue
        rp.reap()


@contextlib.contextmanager
def _shim(tmp_path, warming=None):
    fake = FakeContainerd(str(tmp_path / "containerd.ttrpc"))
    rp = reaper.Reaper()
    log = Logger(path=str(tmp_path / "shim.log"))
    pub = events.Publisher(str(tmp_path / "containerd.ttrpc"), "ns1", log)
    loop = stdio.Loop(log)
    stopped = []
    svc = FakeService("ns1", pub, rp, log, loop, lambda: stopped.append(True), warming=warming)
    stop = threading.Event()
    t = threading.Thread(target=_reap_forever, args=(rp, stop), daemon=True)
    t.start()
    h = svc.handlers()

    def call(method, **kw):
        req_cls, resp_cls = api.TASK_METHODS[method]
        return resp_cls.decode(h[method](req_cls(**kw).encode()))

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    try:
        yield svc, call, fake, str(bundle), stopped
    finally:
        stop.set()
        for pid in list(getattr(svc, "rt", FakeRuntime("")).gates):
            svc.rt.release(pid)
        t.join(TIMEOUT)
        pub.close(5)
        fake.server.shutdown()


def _until(pred):
    """Poll a state the service keeps (not a sleep standing in for an event), with a deadline."""
    import time

    deadline = time.monotonic() + TIMEOUT
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def _exec_spec(code, when="gated"):
    return wire.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                    value=b'{"args": ["%s", "%d"], "cwd": "/"}' % (when.encode(), code))


def test_event_order_exec_exits_before_init_exit_before_delete(tmp_path):
    run_isolated(_event_order, tmp_path)


def _event_order(tmp_path):
    with _shim(tmp_path) as (svc, call, fake, bundle, stopped):
        pid = call("Create", id="c1", bundle=bundle).pid
        assert call("State", id="c1").status == api.CREATED
        assert call("Connect", id="c1").task_pid == pid
        with pytest.raises(ttrpc.Error) as e:
            call("Create", id="c1", bundle=bundle)
        assert e.value.code == ttrpc.ALREADY_EXISTS
        call("Start", id="c1")
        assert call("State", id="c1").status == api.RUNNING
        # an exec that exits at once: its start event still comes before its exit
        call("Exec", id="c1", exec_id="e1", spec=_exec_spec(3, "now"))
        with pytest.raises(ttrpc.Error) as e:
            call("Exec", id="c1", exec_id="e1", spec=_exec_spec(3))
        assert e.value.code == ttrpc.ALREADY_EXISTS
        e1 = call("Start", id="c1", exec_id="e1").pid
        assert call("Wait", id="c1", exec_id="e1").exit_status == 3
        # a long exec; the init exits first: its exit is held until the exec's
        call("Exec", id="c1", exec_id="e2", spec=_exec_spec(4))
        e2 = call("Start", id="c1", exec_id="e2").pid
        svc.rt.release(pid)
        waiter = threading.Thread(target=lambda: call("Wait", id="c1"))
        waiter.start()
        _until(lambda: svc.tasks["c1"].init.reaped is not None)
        assert call("State", id="c1").status == api.RUNNING  # reaped, but reported only after the exec's exit
        assert not svc.tasks["c1"].init.exited.is_set()
        svc.rt.release(e2)
        w = call("Wait", id="c1")
        waiter.join(TIMEOUT)
        assert w.exit_status == 7 and w.exited_at.seconds > 0
        assert call("State", id="c1").status == api.STOPPED
        with pytest.raises(ttrpc.Error) as e:
            call("Kill", id="c1", signal=15)
        assert (e.value.code, e.value.message) == (ttrpc.NOT_FOUND, "process already finished: not found")
        call("Delete", id="c1", exec_id="e1")
        call("Delete", id="c1", exec_id="e2")
        d = call("Delete", id="c1")
        assert (d.pid, d.exit_status) == (pid, 7)
        with pytest.raises(ttrpc.Error) as e:
            call("State", id="c1")
        assert (e.value.code, e.value.message) == (ttrpc.NOT_FOUND, "container not created: not found")
        fake.wait_for(lambda got: got and got[-1][0] == "/tasks/delete")
        assert fake.topics() == [("/tasks/create", ""), ("/tasks/start", ""), ("/tasks/exec-added", "e1"),
                                 ("/tasks/exec-started", "e1"), ("/tasks/exit", "e1"), ("/tasks/exec-added", "e2"),
                                 ("/tasks/exec-started", "e2"), ("/tasks/exit", "e2"), ("/tasks/exit", "c1"),
                                 ("/tasks/delete", "")]
        exits = [e for t, e in fake.got if t == "/tasks/exit"]
        assert [(x.pid, x.exit_status) for x in exits] == [(e1, 3), (e2, 4), (pid, 7)]
        call("Shutdown", id="c1")
        assert stopped == [True]


def test_shutdown_keeps_serving_while_a_task_is_left(tmp_path):
    run_isolated(_shutdown_keeps_serving, tmp_path)


def _shutdown_keeps_serving(tmp_path):
    with _shim(tmp_path) as (svc, call, fake, bundle, stopped):
        call("Create", id="c2", bundle=bundle)
        call("Shutdown", id="c2")
        assert stopped == []
        with pytest.raises(ttrpc.Error) as e:
            call("Checkpoint", id="c2")
        assert e.value.code == ttrpc.UNIMPLEMENTED
        d = call("Delete", id="c2")  # never started: killed, its exit reaped, then deleted
        assert d.exit_status == 7
        call("Shutdown", id="c2")
        assert stopped == [True]
        fake.wait_for(lambda got: got and got[-1][0] == "/tasks/delete")
        assert [t for t, _ in fake.got] == ["/tasks/create", "/tasks/exit", "/tasks/delete"]


def test_publish_leaves_the_encoding_to_the_publisher_thread(tmp_path, monkeypatch):
    """publish() runs under a container's lock, on the paths of Create, Start, Delete and of the exit that Wait
    answers: it only queues the event (and its time); the publisher thread encodes it."""
    import _thread

    fake = FakeContainerd(str(tmp_path / "containerd.ttrpc"))
    encoded_on = []
    encode = api.ForwardRequest.encode
    monkeypatch.setattr(api.ForwardRequest, "encode",
                        lambda self: encoded_on.append(_thread.get_ident()) or encode(self))
    pub = events.Publisher(str(tmp_path / "containerd.ttrpc"), "ns1", Logger(path=str(tmp_path / "log")))
    try:
        pub.publish("/tasks/exit", api.TaskExit(container_id="c1", exit_status=3))
        fake.wait_for(lambda got: got)
        assert encoded_on and _thread.get_ident() not in encoded_on
        assert fake.got[0][1] == api.TaskExit(container_id="c1", exit_status=3)
    finally:
        pub.close(5)
        fake.server.shutdown()


class FakeWarmup:
    """A cgroups.warm.Warmup as the daemon begins it at fork (its thread does not matter here)."""

    def __init__(self):
        self.calls = []

    def threaded(self):
        self.calls.append("threaded")
        return self

    def stop(self):
        self.calls.append("stop")


def test_the_first_create_gets_the_cgroup_warmup_the_daemon_began(tmp_path):
    """The daemon begins the cgroup lock's warm-up (cgroups/warm.py) at fork, so that its grace period passes while
    the daemon imports; the first Create hands it to the library (counted again: the daemon has started threads
    since, so it is told not to wait for the thread count), later ones begin their own (the shim's threads keep
    its creates on cgroup.procs writes: init.Spawn._own_join)."""
    run_isolated(_first_create_warming, tmp_path)


def _own_warmups(mp):
    """The warm-ups the service begins itself (cgroups.warm.start, faked), in a list."""
    from pyrunc.cgroups import warm

    begun = []
    mp.setattr(warm, "start", lambda: begun.append(FakeWarmup()) or begun[-1])
    return begun


def _first_create_warming(tmp_path):
    import pytest

    w = FakeWarmup()
    with pytest.MonkeyPatch.context() as mp, _shim(tmp_path, warming=w) as (svc, call, fake, bundle, stopped):
        begun = _own_warmups(mp)
        call("Create", id="c6", bundle=bundle)
        call("Create", id="c7", bundle=bundle)
        assert len(begun) == 1
        assert (svc.tasks["c6"].rt.warmings, svc.tasks["c7"].rt.warmings) == ([w], [begun[0]])
        assert w.calls == ["threaded"] and begun[0].calls == ["threaded"]  # the library's create stops them
        svc.drop_warming()
        assert w.calls == ["threaded"]


def test_a_warmup_no_create_took_is_stopped(tmp_path):
    """A daemon whose first request is not a Create (or none comes): drop_warming() ends the warm-up's writes,
    and a Create after that begins its own."""
    run_isolated(_warming_dropped, tmp_path)


def _warming_dropped(tmp_path):
    import pytest

    w = FakeWarmup()
    with pytest.MonkeyPatch.context() as mp, _shim(tmp_path, warming=w) as (svc, call, fake, bundle, stopped):
        begun = _own_warmups(mp)
        svc.drop_warming()
        svc.drop_warming()
        assert w.calls == ["stop"]
        call("Create", id="c8", bundle=bundle)
        assert svc.tasks["c8"].rt.warmings == begun and len(begun) == 1


def test_threaded_warmup_waits_for_the_last_write_only(tmp_path, monkeypatch):
    """wait() waits for the thread count to fall back to what it was at start(): in the shim daemon, which starts
    its server threads after the warm-up, it never does (10000 yields in Create) unless told threaded(); then it
    waits for the warm-up thread's last write only."""
    import _thread

    from pyrunc.cgroups import warm

    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    yields = []
    monkeypatch.setattr(warm.os, "sched_yield", lambda: yields.append(1))
    w = warm.start(str(procs))
    held = _thread.allocate_lock()
    held.acquire()
    other = ttrpc.go(held.acquire)  # a thread that outlives the warm-up: a server thread of the daemon
    assert w.threaded() is w
    w.wait()
    assert w.result == 0 and w.writes >= 1
    assert yields == []
    writes = w.writes
    held.release()
    assert ttrpc.joined(other, TIMEOUT)
    assert w.writes == writes  # ended: nothing writes after wait()


class GatedOomService(FakeService):
    """_watch_oom blocks until the test opens the gate; rt.start records whether the watch was set up by then."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.gate = threading.Event()
        self.watch_began = threading.Event()
        self.watched = []

    def _runtime(self, root, opts):
        rt = super()._runtime(root, opts)
        start = rt.start
        rt.start = lambda cid: (self.watched.append(("start", cid)), start(cid))
        return rt

    def _watch_oom(self, t):
        self.watch_began.set()
        assert self.gate.wait(TIMEOUT)
        self.watched.append(("watch", t.id))


def test_oom_watch_is_set_up_after_the_create_reply_and_before_start(tmp_path):
    """The OOM watch (cgroup files, an eventfd, a thread: ~1.5 ms) is set up after Create has answered, in the gap
    before containerd sends Start, and Start waits for it before it lets the process run: an OOM kill is still
    never missed, and neither reply waits for the watch in the usual case."""
    run_isolated(_oom_watch_deferred, tmp_path)


def _oom_watch_deferred(tmp_path):
    with _shim(tmp_path) as (svc0, call0, fake, bundle, stopped):
        svc = GatedOomService("ns1", svc0.events, svc0.reaper, svc0.log, svc0.loop, lambda: None)
        h = svc.handlers()

        def call(method, **kw):
            req_cls, resp_cls = api.TASK_METHODS[method]
            return resp_cls.decode(h[method](req_cls(**kw).encode()))

        pid = call("Create", id="c10", bundle=bundle).pid  # answered while the watch set-up is still blocked
        assert svc.watch_began.wait(TIMEOUT) and svc.watched == []
        starter = threading.Thread(target=lambda: call("Start", id="c10"))
        starter.start()
        starter.join(0.05)
        assert starter.is_alive() and svc.watched == []  # Start waits for the watch
        svc.gate.set()
        starter.join(TIMEOUT)
        assert svc.watched == [("watch", "c10"), ("start", "c10")]
        svc.rt.release(pid)
        assert call("Wait", id="c10").exit_status == 7
        call("Delete", id="c10")

        # killed before Start: the exit waits for the set-up too (no watch is left running after the exit)
        svc.gate.clear()
        svc.watch_began.clear()
        pid = call("Create", id="c11", bundle=bundle).pid
        assert svc.watch_began.wait(TIMEOUT)
        svc.rt.release(pid)
        waiter = threading.Thread(target=lambda: call("Wait", id="c11"))
        waiter.start()
        waiter.join(0.05)
        assert waiter.is_alive()
        svc.gate.set()
        waiter.join(TIMEOUT)
        assert not waiter.is_alive() and svc.watched[-1] == ("watch", "c11")
        call("Delete", id="c11")


def test_delete_keeps_the_options_file_while_the_rootfs_stays_mounted(tmp_path):
    """The options file's absence tells `delete` (the launcher's shell part, cleanup.py) that nothing is left to
    clean up: a Delete whose unmount failed keeps it, so that the cleanup after the shim tries again."""
    run_isolated(_options_file_kept, tmp_path)


def _options_file_kept(tmp_path):
    from pyrunc.shim import mounts

    with _shim(tmp_path) as (svc, call, fake, bundle, stopped):
        options = os.path.join(bundle, "pyrunc-shim.json")
        call("Create", id="c4", bundle=bundle)
        assert os.path.exists(options)
        svc.tasks["c4"].mounted = True
        mounts.unmount = lambda target, lx=None: False  # this forked test child only: a mount that stays
        call("Delete", id="c4")
        assert os.path.exists(options)
        call("Create", id="c5", bundle=bundle)
        svc.tasks["c5"].mounted = True
        mounts.unmount = lambda target, lx=None: True
        call("Delete", id="c5")
        assert not os.path.exists(options)


def test_unmount_reports_a_mount_left_behind(monkeypatch):
    from pyrunc.errors import SysError
    from pyrunc.shim import mounts

    class Lx:
        calls = 0

        def umount2(self, target, flags):
            self.calls += 1
            if self.calls == 2:
                raise SysError("umount2", target, 16)

    monkeypatch.setattr(mounts, "mounted", lambda target: 3)
    assert mounts.unmount("/x", Lx()) is False
    monkeypatch.setattr(mounts, "mounted", lambda target: 0)
    assert mounts.unmount("/x", Lx()) is True


def test_runtime_options(tmp_path):
    assert service.parse_options(None)["root"] == ""
    runc = api.RuncOptions(root="/r", systemd_cgroup=True, no_pivot_root=True, io_uid=1000, io_gid=1001)
    o = service.parse_options(wire.pack(runc))
    assert (o["root"], o["systemd_cgroup"], o["no_pivot"], o["io_uid"], o["io_gid"]) == ("/r", True, True, 1000, 1001)
    toml = tmp_path / "shim.toml"
    toml.write_text('root = "/x"\nno_new_keyring = true\n')
    o = service.parse_options(wire.pack(api.RuntimeOptions(config_path=str(toml))))
    assert (o["root"], o["no_new_keyring"], o["io_uid"]) == ("/x", True, -1)
    toml.write_text('rooot = "/x"\n')
    with pytest.raises(ttrpc.Error, match="unknown or mistyped key 'rooot'"):
        service.parse_options(wire.pack(api.RuntimeOptions(config_path=str(toml))))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_unmount_finds_a_rootfs_whose_path_mountinfo_escapes(tmp_path):
    """mountinfo writes a space in a mount point as \\040: a bundle path with one is still found and detached."""
    from pyrunc.linux import real as lx
    from pyrunc.shim import mounts

    target = tmp_path / "my bundle" / "rootfs"
    target.mkdir(parents=True)
    lx.mount("tmpfs", str(target), "tmpfs", 0, None)
    try:
        assert mounts.mounted(str(target)) == 1
        assert mounts.unmount(str(target)) is True
        assert mounts.mounted(str(target)) == 0
    finally:
        while os.path.ismount(target):
            lx.umount2(str(target), mounts.MNT_DETACH)


def test_daemon_ends_a_warmup_no_create_came_for(tmp_path):
    """The daemon's main loop ends the warm-up begun at fork once it has waited WARM_IDLE for a Create, and serves
    on; SIGTERM then stops it."""
    run_isolated(_daemon_idle_warming, tmp_path)


def _daemon_idle_warming(tmp_path):
    import signal

    from pyrunc.shim import daemon, main

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "shim.sock"))
    sock.listen(8)
    os.dup2(sock.fileno(), 3)  # where `start` leaves the listening socket for the daemon
    sock.close()
    os.environ.pop("TTRPC_ADDRESS", None)
    daemon.WARM_IDLE = 0.05
    w = FakeWarmup()

    def stop_when_dropped():
        _until(lambda: w.calls)
        os.kill(os.getpid(), signal.SIGTERM)

    ttrpc.go(stop_when_dropped)
    flags, _ = main.parse(["-namespace", "ns1", "-id", "c9"])
    assert daemon.run(flags, str(tmp_path), "unix://" + str(tmp_path / "shim.sock"), w) == 0
    assert w.calls == ["stop"]
    assert not os.path.exists(tmp_path / "shim.sock")
