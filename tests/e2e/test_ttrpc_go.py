"""pyrunc's ttrpc and codec against Go's: drive containerd-shim-runc-v2 (+ runc) with no containerd at all.

Our `ttrpc.Client` speaks to the Go shim's ttrpc server (Connect, Create, Start, Wait, State, Delete, Shutdown, errors)
and our `ttrpc.Server` stands in for containerd's ttrpc socket (TTRPC_ADDRESS), where the Go shim's publisher
Forwards its events. So both directions of the wire, and the task/event messages, meet the reference implementation.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from pyrunc.shim import api, ttrpc, wire
from tests.conftest import is_root
from tests.e2e.conftest import _SYS_PATH, _busybox_path

T = 30
GO_SHIM = shutil.which("containerd-shim-runc-v2", path=_SYS_PATH)
RUNC = shutil.which("runc", path=_SYS_PATH)

pytestmark = [pytest.mark.skipif(not is_root(), reason="needs root: runc containers"),
              pytest.mark.skipif(not (GO_SHIM and RUNC), reason="containerd-shim-runc-v2 and runc are not installed"),
              pytest.mark.skipif(_busybox_path() is None, reason="no static busybox")]


class Events:
    """containerd's side of Forward: records every envelope, in arrival order."""

    def __init__(self):
        self.cond = threading.Condition()
        self.envelopes = []

    def forward(self, payload):
        env = api.ForwardRequest.decode(payload).envelope
        with self.cond:
            self.envelopes.append(env)
            self.cond.notify_all()
        return b""

    def wait_topics(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.envelopes) >= n, T), [e.topic for e in self.envelopes]
            return list(self.envelopes)


@pytest.fixture
def go_shim(tmp_path):
    from pyrunc.demo import make_bundle

    ns = "pyrunc-ttrpc-%d" % os.getpid()
    # the Go shim makes these on first use (its socket dir, runc's root): removed afterwards if we caused them
    made = [d for d in ("/run/containerd/runc", "/run/containerd/s", "/run/containerd") if not os.path.exists(d)]
    cid = "go-%s" % tmp_path.name[-12:].replace("_", "-").strip("-")
    bundle = tmp_path / ns / cid  # the runc shim takes the bundle as dirname(cwd)/<id>
    bundle.mkdir(parents=True)
    make_bundle(str(bundle), ["sh", "-c", "echo out-go; echo err-go >&2; exit 7"], busybox=_busybox_path())
    os.mkfifo(bundle / "log", 0o700)
    logfd = os.open(bundle / "log", os.O_RDWR | os.O_NONBLOCK)  # as containerd does before `start`

    events = Events()
    ev_path = str(tmp_path / "ttrpc.sock")
    ev_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ev_sock.bind(ev_path)
    ev_sock.listen(8)
    server = ttrpc.Server(ev_sock, {api.EVENTS_SERVICE: {"Forward": events.forward}})
    serve = threading.Thread(target=server.serve, daemon=True)
    serve.start()

    env = {"PATH": _SYS_PATH, "TTRPC_ADDRESS": ev_path}
    argv = [GO_SHIM, "-namespace", ns, "-address", str(tmp_path / "grpc.sock"), "-publish-binary", "/bin/false",
            "-id", cid]
    started = subprocess.run(argv + ["start"], cwd=bundle, env=env, capture_output=True, text=True, timeout=T,
                             stdin=subprocess.DEVNULL)
    assert started.returncode == 0, started.stderr
    address = started.stdout.strip()
    state = {"ns": ns, "cid": cid, "bundle": str(bundle), "address": address, "events": events, "shim_pid": 0}
    try:
        yield state
    finally:
        with contextlib.suppress(OSError):  # shown by pytest when the test failed
            print("shim log:", os.read(logfd, 1 << 16).decode(errors="replace"))
        if state["shim_pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["shim_pid"], signal.SIGKILL)
        subprocess.run(argv + ["-bundle", str(bundle), "delete"], cwd=bundle, env=env, capture_output=True,
                       timeout=T, stdin=subprocess.DEVNULL)
        subprocess.run([RUNC, "--root", "/run/containerd/runc/" + ns, "delete", "--force", cid], capture_output=True,
                       timeout=T)
        shutil.rmtree("/run/containerd/runc/" + ns, ignore_errors=True)
        if address.startswith("unix://"):
            with contextlib.suppress(OSError):
                os.unlink(address[len("unix://"):])
        for d in made:  # only when empty
            with contextlib.suppress(OSError):
                os.rmdir(d)
        server.shutdown(grace=5)
        serve.join(T)
        os.close(logfd)


def _read_to_eof(fd, timeout=T):
    """All a fifo gives until its writer (the shim's copy) closes it."""
    import select
    data = b""
    while select.select([fd], [], [], timeout)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data


def call(client, method, req):
    resp_cls = api.TASK_METHODS[method][1]
    return resp_cls.decode(client.call(api.TASK_SERVICE, method, req.encode(), timeout=T))


def test_task_lifecycle_and_events_against_the_go_shim(go_shim, tmp_path):
    cid = go_shim["cid"]
    with ttrpc.Client(go_shim["address"]) as c:
        conn = call(c, "Connect", api.ConnectRequest(id=cid))
        assert conn.shim_pid > 0 and conn.task_pid == 0
        go_shim["shim_pid"] = conn.shim_pid

        # errors: status codes and texts as containerd sees them
        with pytest.raises(ttrpc.Error) as e:
            call(c, "State", api.StateRequest(id=cid))
        assert (e.value.code, e.value.message) == (ttrpc.NOT_FOUND, "container not created: not found")
        with pytest.raises(ttrpc.Error) as e:
            c.call(api.TASK_SERVICE, "Nope", b"", timeout=T)
        assert (e.value.code, e.value.message) == (ttrpc.UNIMPLEMENTED, "method Nope")

        stdout, stderr = str(tmp_path / "stdout"), str(tmp_path / "stderr")
        readers = []
        for fifo in (stdout, stderr):  # as containerd's cio: the client makes the fifos and holds a reader
            os.mkfifo(fifo, 0o600)
            readers.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        created = call(c, "Create", api.CreateTaskRequest(id=cid, bundle=go_shim["bundle"], stdout=stdout,
                                                          stderr=stderr))
        assert created.pid > 0
        st = call(c, "State", api.StateRequest(id=cid))
        assert (st.id, st.pid, st.status, st.bundle) == (cid, created.pid, api.CREATED, go_shim["bundle"])
        assert st.exited_at == wire.Timestamp(seconds=wire.GO_ZERO_SECONDS)  # Go's zero time, a negative int64

        waited = {}
        waiter = threading.Thread(target=lambda: waited.setdefault("r", call(c, "Wait", api.WaitRequest(id=cid))))
        waiter.start()  # blocks in the Go server while Start goes through on the same connection
        assert call(c, "Start", api.StartRequest(id=cid)).pid == created.pid
        waiter.join(T)
        assert waited["r"].exit_status == 7 and waited["r"].exited_at.seconds > 0

        st = call(c, "State", api.StateRequest(id=cid))
        assert (st.status, st.exit_status) == (api.STOPPED, 7)
        deleted = call(c, "Delete", api.DeleteRequest(id=cid))
        assert (deleted.pid, deleted.exit_status) == (created.pid, 7)
        assert [_read_to_eof(fd) for fd in readers] == [b"out-go\n", b"err-go\n"]

        try:
            assert c.call(api.TASK_SERVICE, "Shutdown", api.ShutdownRequest(id=cid).encode(), timeout=T) == b""
        except ttrpc.Closed:
            # containerd-shim-runc-v2 1.6.20 exits right after Shutdown, and under load it can be gone before its
            # reply is written (seen once in a full run): the reference's race, not the wire under test
            pass
        _wait_exit(go_shim["shim_pid"])  # it exits after answering; a call made before it is gone may still be served
        with pytest.raises(ttrpc.Closed):
            c.call(api.TASK_SERVICE, "Connect", api.ConnectRequest(id=cid).encode(), timeout=T)

    envs = go_shim["events"].wait_topics(4)
    assert [e.topic for e in envs[:4]] == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    assert all(e.namespace == go_shim["ns"] and e.timestamp.seconds > 0 for e in envs)
    assert [e.event.type_url for e in envs[:4]] == [
        "containerd.events.TaskCreate", "containerd.events.TaskStart", "containerd.events.TaskExit",
        "containerd.events.TaskDelete"]
    create, start, exit_, delete = (wire.unpack(e.event, api.REGISTRY) for e in envs[:4])
    assert (create.container_id, create.bundle, create.pid, create.io.stdout) == (
        cid, go_shim["bundle"], created.pid, stdout)
    assert (start.container_id, start.pid) == (cid, created.pid)
    assert (exit_.container_id, exit_.id, exit_.pid, exit_.exit_status) == (cid, cid, created.pid, 7)
    assert (delete.container_id, delete.pid, delete.exit_status) == (cid, created.pid, 7)


def _wait_exit(pid, timeout=T):
    """Block (bounded) until pid has exited, through a pidfd: no polling, no sleep."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], timeout)[0], f"pid {pid} still running after {timeout}s"
    finally:
        os.close(fd)
