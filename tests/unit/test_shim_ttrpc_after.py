"""ttrpc.after_reply: work a handler leaves for after its response has been written (the shim's Create sets its OOM
watch up there, off the reply's path).  Synchronised on events; every wait has a timeout."""

import socket
import threading

from pyrunc.shim import ttrpc

T = 10


def test_after_reply_runs_once_the_response_is_written(tmp_path):
    path = str(tmp_path / "s.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(8)
    answered = threading.Event()
    ran = []
    later_done = threading.Event()

    def later():
        # the client's call must have returned: this blocks until the test saw the response
        ran.append(answered.wait(T))
        later_done.set()

    def handler(payload):
        ttrpc.after_reply(later)
        return payload

    def boom():
        raise RuntimeError("a bug in the callback: logged, the connection keeps serving")

    errors = []
    logged = threading.Event()

    class Log:
        def error(self, msg):
            errors.append(msg)
            logged.set()

    server = ttrpc.Server(lsock, {"svc": {"echo": handler, "boom": lambda p: ttrpc.after_reply(boom) or p}},
                          log=Log())
    threading.Thread(target=server.serve, daemon=True).start()
    try:
        with ttrpc.Client("unix://" + path) as client:
            assert client.call("svc", "echo", b"hi", timeout=T) == b"hi"
            answered.set()
            assert later_done.wait(T) and ran == [True]
            assert client.call("svc", "boom", b"x", timeout=T) == b"x"
            assert client.call("svc", "echo", b"again", timeout=T) == b"again"
            assert logged.wait(T) and "a bug in the callback" in errors[0]
    finally:
        server.shutdown()


def test_after_reply_outside_a_handler_runs_in_a_thread_of_its_own():
    gate = threading.Event()
    done = threading.Event()
    ttrpc.after_reply(lambda: gate.wait(T) and done.set())  # returns although the callback blocks
    assert not done.is_set()
    gate.set()
    assert done.wait(T)
