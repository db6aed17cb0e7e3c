"""pyrunc/shim/ttrpc.py over real unix sockets: framing, concurrency, status codes as the Go server sends them
(SHIM.md §2), peer credentials, shutdown. Synchronisation is by events; every wait has a timeout."""

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from pyrunc.shim import api, ttrpc, wire

T = 10  # seconds: the bound of every wait


class Log:
    def __init__(self):
        self.lines = []

    def error(self, msg):
        self.lines.append(("error", msg))

    def warning(self, msg):
        self.lines.append(("warning", msg))


class Handlers:
    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def echo(self, payload):
        return payload

    def empty(self, payload):
        return b""

    def block(self, payload):
        self.entered.set()
        assert self.release.wait(T)
        return b"unblocked:" + payload

    def boom(self, payload):
        raise KeyError("no such thing")

    def msg(self, payload):
        return api.StartResponse(pid=int(payload))

    def huge(self, payload):
        return b"x" * (ttrpc.MAX_MESSAGE + 1)

    def bad(self, payload):
        return 42  # a bug: neither bytes nor a message

    def notfound(self, payload):
        raise ttrpc.Error(ttrpc.NOT_FOUND, "container not created: not found")

    def services(self):
        return {"t.S": {"Echo": self.echo, "Empty": self.empty, "Block": self.block, "Boom": self.boom,
                        "NotFound": self.notfound, "Msg": self.msg, "Bad": self.bad,
                        "Huge": self.huge}}


def start_server(address, handlers, **kw):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(16)
    srv = ttrpc.Server(sock, handlers.services(), **kw)
    th = threading.Thread(target=srv.serve, daemon=True)
    th.start()
    return srv, th


@pytest.fixture
def served(tmp_path):
    h, log = Handlers(), Log()
    path = str(tmp_path / "s.sock")
    srv, th = start_server(path, h, log=log)
    yield srv, path, h, log
    h.release.set()
    srv.shutdown(grace=T)
    th.join(T)
    assert not th.is_alive(), "serve() did not return after shutdown()"


def raw(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(T)
    s.connect(path)
    return s


def request(service, method, payload=b""):
    return api.Request(service=service, method=method, payload=payload).encode()


def read_response(s):
    sid, mtype, flags, body = ttrpc.read_frame(s)
    assert mtype == ttrpc.RESPONSE and flags == 0
    return sid, api.Response.decode(body), body


def test_unary_call(served):
    _srv, path, _h, _log = served
    for addr in (path, "unix://" + path):
        with ttrpc.Client(addr) as c:
            assert c.call("t.S", "Echo", b"hello") == b"hello"
            assert c.call("t.S", "Empty", b"x") == b""
            assert c.call("t.S", "Echo", b"again", timeout=T, metadata=(("k", "v"),)) == b"again"


def test_abstract_socket_address():
    h = Handlers()
    name = "\0pyrunc-test-" + uuid.uuid4().hex
    srv, th = start_server(name, h)
    try:
        with ttrpc.Client(name) as c:
            assert c.call("t.S", "Echo", b"a") == b"a"
        with ttrpc.Client("@" + name[1:]) as c:
            assert c.call("t.S", "Echo", b"b") == b"b"
    finally:
        srv.shutdown(grace=T)
        th.join(T)


def test_wire_bytes_match_the_go_shim(served):
    """Success: Response without status; an empty result is a 0-byte body; stream ids are echoed."""
    _srv, path, _h, _log = served
    s = raw(path)
    s.sendall(ttrpc.frame(1, ttrpc.REQUEST, request("t.S", "Echo", b"\x08\x90\x27")))
    assert ttrpc.read_frame(s) == (1, ttrpc.RESPONSE, 0, bytes.fromhex("1203089027"))
    s.sendall(ttrpc.frame(3, ttrpc.REQUEST, request("t.S", "Empty")))
    assert ttrpc.read_frame(s) == (3, ttrpc.RESPONSE, 0, b"")
    s.sendall(ttrpc.frame(5, ttrpc.REQUEST, request("t.S", "NotFound")))
    assert ttrpc.read_frame(s)[3] == bytes.fromhex("0a2408051220") + b"container not created: not found"
    s.close()


def test_a_blocked_call_does_not_block_others_on_the_same_connection(served):
    _srv, path, h, _log = served
    with ttrpc.Client(path) as c:
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("block", c.call("t.S", "Block", b"w", timeout=T)))
        t.start()
        assert h.entered.wait(T)
        for i in range(5):  # answered while Block (stream 1) is still pending
            assert c.call("t.S", "Echo", b"%d" % i, timeout=T) == b"%d" % i
        assert "block" not in result
        h.release.set()
        t.join(T)
        assert result["block"] == b"unblocked:w"


def test_responses_out_of_order_are_matched_by_stream_id(served):
    _srv, path, h, _log = served
    s = raw(path)
    s.sendall(ttrpc.frame(1, ttrpc.REQUEST, request("t.S", "Block", b"first")))
    assert h.entered.wait(T)
    s.sendall(ttrpc.frame(3, ttrpc.REQUEST, request("t.S", "Echo", b"second")))
    sid, resp, _ = read_response(s)
    assert (sid, resp.payload) == (3, b"second")
    h.release.set()
    sid, resp, _ = read_response(s)
    assert (sid, resp.payload) == (1, b"unblocked:first")
    s.close()


def test_many_concurrent_callers_share_one_client(served):
    _srv, path, _h, _log = served
    with ttrpc.Client(path) as c:
        barrier = threading.Barrier(8, timeout=T)
        out, errors = {}, []

        def worker(i):
            try:
                barrier.wait()
                for j in range(20):
                    out[(i, j)] = c.call("t.S", "Echo", b"%d-%d" % (i, j), timeout=T)
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T)
        assert not errors
        assert out == {(i, j): b"%d-%d" % (i, j) for i in range(8) for j in range(20)}


def test_handlers_run_concurrently_also_when_threads_are_reused(served):
    """8 calls whose handlers each wait for all 8 to be running: passes only if none waits for another's thread;
    done twice, so the second round runs on reused worker threads."""
    srv, path, _h, _log = served
    for _round in range(2):
        barrier = threading.Barrier(8, timeout=T)
        srv.services["t.B"] = {"Meet": lambda p: b"met" if barrier.wait() >= 0 else b""}
        with ttrpc.Client(path) as c:
            out, threads = [], []
            for _ in range(8):
                threads.append(threading.Thread(target=lambda: out.append(c.call("t.B", "Meet", b"", timeout=T))))
                threads[-1].start()
            for t in threads:
                t.join(T)
            assert out == [b"met"] * 8


def test_unknown_service_and_method_are_unimplemented(served):
    _srv, path, _h, _log = served
    with ttrpc.Client(path) as c:
        with pytest.raises(ttrpc.Error) as e:
            c.call("containerd.task.v9.Task", "State", b"")
        assert (e.value.code, e.value.message) == (12, "service containerd.task.v9.Task")
        with pytest.raises(ttrpc.Error) as e:
            c.call("t.S", "Nope", b"")
        assert (e.value.code, e.value.message) == (12, "method Nope")
        assert c.call("t.S", "Echo", b"still fine") == b"still fine"


def test_even_stream_id_is_invalid_argument(served):
    _srv, path, _h, _log = served
    s = raw(path)
    s.sendall(ttrpc.frame(2, ttrpc.REQUEST, request("t.S", "Echo", b"x")))
    sid, resp, _ = read_response(s)
    assert sid == 2 and resp.status == api.Status(code=3, message="StreamID must be odd for client initiated streams")
    s.sendall(ttrpc.frame(7, ttrpc.REQUEST, request("t.S", "Echo", b"ok")))
    assert read_response(s)[1].payload == b"ok"
    s.close()


def test_oversized_frame_is_resource_exhausted_and_the_connection_survives(served):
    _srv, path, _h, _log = served
    s = raw(path)
    n = ttrpc.MAX_MESSAGE + 1
    s.sendall(ttrpc.HEADER.pack(n, 9, ttrpc.REQUEST, 0))
    s.sendall(b"\0" * n)
    sid, resp, _ = read_response(s)
    assert sid == 9 and resp.status.code == ttrpc.RESOURCE_EXHAUSTED
    assert resp.status.message == "message length 4194305 exceed maximum message size of 4194304"
    s.sendall(ttrpc.frame(11, ttrpc.REQUEST, request("t.S", "Echo", b"after")))
    assert read_response(s)[:2] == (11, api.Response(payload=b"after"))
    s.close()
    with pytest.raises(ttrpc.Error) as e:
        ttrpc.frame(1, ttrpc.REQUEST, b"\0" * n)
    assert e.value.code == ttrpc.RESOURCE_EXHAUSTED
    with ttrpc.Client(path) as c:  # a response too large to send: the caller gets the status, not a hang
        with pytest.raises(ttrpc.Error) as e:
            c.call("t.S", "Huge", b"", timeout=T)
        assert e.value.code == ttrpc.RESOURCE_EXHAUSTED and "exceed maximum message size" in e.value.message
        assert c.call("t.S", "Echo", b"fine") == b"fine"


def test_non_request_frames_are_ignored_and_garbage_is_invalid_argument(served):
    _srv, path, _h, _log = served
    s = raw(path)
    s.sendall(ttrpc.frame(13, ttrpc.DATA, b"ignored") + ttrpc.frame(13, 0x7F, b"")
              + ttrpc.frame(15, ttrpc.REQUEST, b"\x0a\x05ab"))
    sid, resp, _ = read_response(s)
    assert sid == 15 and resp.status.code == ttrpc.INVALID_ARGUMENT and "overruns" in resp.status.message
    s.close()


def test_handler_exception_is_unknown_and_logged(served):
    _srv, path, _h, log = served
    with ttrpc.Client(path) as c:
        with pytest.raises(ttrpc.Error) as e:
            c.call("t.S", "Boom", b"")
        assert (e.value.code, e.value.message) == (ttrpc.UNKNOWN, "'no such thing'")
        assert c.call("t.S", "Echo", b"alive") == b"alive"
    assert log.lines == [("error", "ttrpc t.S/Boom: KeyError: 'no such thing'")]


def test_handler_may_return_a_message_and_a_bad_result_is_unknown_not_a_hang(served):
    _srv, path, _h, log = served
    with ttrpc.Client(path) as c:
        assert api.StartResponse.decode(c.call("t.S", "Msg", b"42")) == api.StartResponse(pid=42)
        with pytest.raises(ttrpc.Error) as e:
            c.call("t.S", "Bad", b"", timeout=T)
        assert e.value.code == ttrpc.UNKNOWN
    assert log.lines == [("error", "ttrpc t.S/Bad: ValueError: ttrpc.Response.payload: 42 is not bytes")]


def test_peer_with_other_credentials_is_refused(served):
    srv, path, _h, log = served
    srv.expected_creds = (os.geteuid() + 1, os.getegid())
    with ttrpc.Client(path) as c:
        with pytest.raises(ttrpc.Error) as e:
            c.call("t.S", "Echo", b"x", timeout=T)
        assert isinstance(e.value, ttrpc.Closed)
    assert log.lines and log.lines[0][0] == "warning" and "refused connection from uid %d" % os.geteuid() \
        in log.lines[0][1]
    srv.expected_creds = (os.geteuid(), os.getegid())
    with ttrpc.Client(path) as c:
        assert c.call("t.S", "Echo", b"y") == b"y"


CHILD = """
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(chr(0) + sys.argv[1][1:])
body = bytes.fromhex(sys.argv[2])
try:
    s.sendall(struct.pack(">IIBB", len(body), 1, 1, 0) + body)
    data = s.recv(100)
except (ConnectionResetError, BrokenPipeError):  # closed by the server, our request unread
    data = b""
sys.stdout.write(data.hex() or "closed")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as nobody")
def test_peer_running_as_nobody_is_refused():
    h = Handlers()
    name = "\0pyrunc-test-" + uuid.uuid4().hex  # abstract: no file permission stands in the way
    srv, th = start_server(name, h, log=Log())
    try:
        body = request("t.S", "Echo", b"z").hex()
        py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable  # nobody can run it
        argv = [py, "-I", "-S", "-c", CHILD, "@" + name[1:], body]
        as_root = subprocess.run(argv, capture_output=True, text=True, timeout=T)
        assert as_root.returncode == 0 and as_root.stdout.endswith(api.Response(payload=b"z").encode().hex())
        as_nobody = subprocess.run(argv, capture_output=True, text=True, timeout=T, user=65534, group=65534,
                                   extra_groups=[])
        assert as_nobody.returncode == 0, as_nobody.stderr
        assert as_nobody.stdout == "closed"  # closed without an answer
    finally:
        srv.shutdown(grace=T)
        th.join(T)


def _wait_for(cond):
    deadline = time.monotonic() + T
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in %ds" % T
        time.sleep(0.001)


def test_shutdown_flushes_the_response_in_flight_then_serve_returns(tmp_path):
    h = Handlers()
    path = str(tmp_path / "s.sock")
    srv, serve_thread = start_server(path, h)
    c = ttrpc.Client(path)
    result = {}
    caller = threading.Thread(target=lambda: result.setdefault("r", c.call("t.S", "Block", b"last", timeout=T)))
    caller.start()
    assert h.entered.wait(T)
    stopper = threading.Thread(target=srv.shutdown, kwargs={"grace": T})
    stopper.start()
    _wait_for(lambda: srv._closing)
    stopper.join(0.05)
    assert stopper.is_alive() and serve_thread.is_alive(), "shutdown() returned with a response still in flight"
    with pytest.raises(ConnectionRefusedError):  # not accepting any more
        ttrpc.Client(path, connect_timeout=T)
    h.release.set()
    caller.join(T)
    assert result["r"] == b"unblocked:last"  # written before the connection was closed
    stopper.join(T)
    serve_thread.join(T)
    assert not stopper.is_alive() and not serve_thread.is_alive()
    with pytest.raises(ttrpc.Closed):  # the server closed our connection after the flush
        c.call("t.S", "Echo", b"x", timeout=T)
    c.close()


def test_shutdown_called_from_a_handler_does_not_wait_for_itself(tmp_path):
    path = str(tmp_path / "s.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    box = {}
    srv = ttrpc.Server(sock, {"t.S": {"Shutdown": lambda p: box["srv"].shutdown(grace=T) or b""}})
    box["srv"] = srv
    th = threading.Thread(target=srv.serve, daemon=True)
    th.start()
    with ttrpc.Client(path) as c:
        t0 = time.monotonic()
        assert c.call("t.S", "Shutdown", b"", timeout=T) == b""
        th.join(T)
        assert not th.is_alive() and time.monotonic() - t0 < T / 2


def test_client_timeout_and_closed_connection(served):
    srv, path, h, _log = served
    c = ttrpc.Client(path)
    with pytest.raises(ttrpc.Error) as e:
        c.call("t.S", "Block", b"", timeout=0.05)
    assert e.value.code == ttrpc.DEADLINE_EXCEEDED
    h.release.set()
    assert c.call("t.S", "Echo", b"next") == b"next"  # the late answer to the timed-out call is dropped
    c.close()
    with pytest.raises(ttrpc.Closed):
        c.call("t.S", "Echo", b"")


def test_pending_calls_fail_when_the_server_goes_away(tmp_path):
    """A raw server that reads one request and closes: the waiting caller gets Closed, not a hang."""
    path = str(tmp_path / "s.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)

    def serve_once():
        conn, _ = ls.accept()
        ttrpc.read_frame(conn)
        conn.close()
    t = threading.Thread(target=serve_once)
    t.start()
    c = ttrpc.Client(path)
    with pytest.raises(ttrpc.Closed, match="ttrpc: closed"):
        c.call("t.S", "Echo", b"", timeout=T)
    t.join(T)
    c.close()
    ls.close()


def test_forward_request_round_trip_like_the_event_publisher(served):
    """The shape of an event Forward: metadata carries the namespace; the envelope survives the trip."""
    srv, path, _h, _log = served
    seen = []
    srv.services[api.EVENTS_SERVICE] = {"Forward": lambda p: seen.append(api.ForwardRequest.decode(p)) or b""}
    env = api.TtrpcEnvelope(timestamp=wire.Timestamp.now(), namespace="default", topic="/tasks/exit",
                            event=wire.pack(api.TaskExit(container_id="c", id="c", pid=42, exit_status=137)))
    with ttrpc.Client(path) as c:
        assert c.call(api.EVENTS_SERVICE, "Forward", api.ForwardRequest(envelope=env).encode(), timeout=T,
                      metadata=(("containerd-namespace-ttrpc", "default"),)) == b""
    assert seen == [api.ForwardRequest(envelope=env)]
    assert wire.unpack(seen[0].envelope.event, api.REGISTRY).exit_status == 137
