"""The shim's stdio (no root): one epoll loop copies container pipes into fifos, holds both ends of each output
fifo, closes the fifo at EOF (ctr waits for that), survives a reader that goes away, and copies stdin until
CloseIO."""

import os
import select

import pytest

from pyrunc.shim import stdio

TIMEOUT = 20


@pytest.fixture
def loop():
    return stdio.Loop()


def _read_all(fd):
    out = b""
    while True:
        assert select.select([fd], [], [], TIMEOUT)[0], out
        b = os.read(fd, 65536)
        if not b:
            return out
        out += b


def test_output_to_fifos_then_eof(loop, tmp_path):
    paths = {n: str(tmp_path / n) for n in ("stdin", "stdout", "stderr")}
    for p in paths.values():
        os.mkfifo(p)
    # the client (ctr) opens its read ends first
    out_r = os.open(paths["stdout"], os.O_RDONLY | os.O_NONBLOCK)
    err_r = os.open(paths["stderr"], os.O_RDONLY | os.O_NONBLOCK)
    io = stdio.open_io(loop, "c1", "ns", paths["stdin"], paths["stdout"], paths["stderr"])
    try:
        _, cout, cerr = io.child
        cin = os.dup(io.child[0])  # the container's stdin, kept past close_child
        big = b"x" * 300000  # more than a pipe and a fifo hold: the loop must wait for the reader
        wpid = os.fork()
        if wpid == 0:  # the "container": writes, then exits (closing its ends)
            os.write(cerr, b"to stderr\n")
            view = memoryview(big)
            while view:
                view = view[os.write(cout, view):]
            os._exit(0)
        io.close_child()  # the runtime has passed them on: only the container holds the write ends now
        for fd in (out_r, err_r):
            os.set_blocking(fd, True)
        assert _read_all(out_r) == big  # EOF arrives: the shim closed its write end at the pipe's EOF
        assert _read_all(err_r) == b"to stderr\n"
        assert os.waitpid(wpid, 0)[1] == 0
        assert io.wait(TIMEOUT)
        # stdin: data from the client reaches the container's pipe; CloseIO + the client's close give EOF
        in_w_client = os.open(paths["stdin"], os.O_WRONLY)
        os.write(in_w_client, b"hello\n")
        os.close(in_w_client)
        assert select.select([cin], [], [], TIMEOUT)[0]
        assert os.read(cin, 100) == b"hello\n"
        io.close_stdin()  # CloseIO
        assert select.select([cin], [], [], TIMEOUT)[0]
        assert os.read(cin, 100) == b""
        os.close(cin)
    finally:
        io.close(loop)
        os.close(out_r)
        os.close(err_r)


def test_reader_going_away_never_sigpipes_the_container(loop, tmp_path):
    path = str(tmp_path / "stdout")
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    io = stdio.open_io(loop, "c1", "ns", "", path, "")
    try:
        os.close(r)  # containerd restarts: its reader is gone
        _, cout, _ = io.child
        os.write(cout, b"still fine\n")  # no EPIPE: the shim holds a read end of its own
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # containerd is back
        os.write(cout, b"after\n")
        io.close_child()
        os.set_blocking(r, True)
        data = _read_all(r)
        assert data.endswith(b"after\n"), data
    finally:
        io.close(loop)
        os.close(r)


def test_file_scheme_and_null(loop, tmp_path):
    log = tmp_path / "logs" / "c1.log"
    io = stdio.open_io(loop, "c1", "ns", "", f"file://{log}", "")
    _, cout, cerr = io.child
    os.write(cout, b"out\n")
    os.write(cerr, b"err\n")
    io.close_child()
    assert io.wait(TIMEOUT)
    assert sorted(log.read_bytes().splitlines()) == [b"err", b"out"]
    io.close(loop)
    null = stdio.open_io(loop, "c2", "ns", "", "", "")
    assert len(set(null.child)) == 1 and os.readlink(f"/proc/self/fd/{null.child[0]}") == "/dev/null"
    null.close(loop)
    with pytest.raises(ValueError, match="unknown STDIO scheme"):
        stdio.open_io(loop, "c3", "ns", "", "tcp://x", "")


def test_binary_logger(loop, tmp_path):
    """binary:// (containerd's protocol): stdout on fd 3, stderr on fd 4, fd 5 closed when ready; query -> args;
    CONTAINER_ID and CONTAINER_NAMESPACE in the environment."""
    logger = tmp_path / "logger"
    out = tmp_path / "out"
    logger.write_text('#!/bin/sh\nexec 5>&-\n{ echo "$CONTAINER_NAMESPACE/$CONTAINER_ID $*"; cat <&3; cat <&4; } > "$2"\n')
    logger.chmod(0o755)
    io = stdio.open_io(loop, "c1", "ns1", "", f"binary://{logger}?path={out}", "")
    _, cout, cerr = io.child
    os.write(cout, b"to stdout\n")
    os.write(cerr, b"to stderr\n")
    pid = io.logger_pid
    io.logger_pid = 0  # reaped here, not signalled by close()
    io.close(loop)
    assert os.waitpid(pid, 0)[1] == 0
    assert out.read_text() == f"ns1/c1 path {out}\nto stdout\nto stderr\n"
