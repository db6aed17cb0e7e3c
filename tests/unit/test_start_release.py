"""pyrunc.container.start.release: the exec fifo handshake of `start`, on a real fifo with a thread as the init.
The init may have its write end open already (the usual case: it has waited there since create), open it later
(a start right after create), or die before writing its byte; no root needed."""

import os
import threading
import time

import pytest

from pyrunc.container.start import release
from pyrunc.errors import StateError


class Init:
    """What release() asks of the container: is its init alive."""

    def __init__(self):
        self.dead = False

    def alive(self):
        return not self.dead


def _fifo(tmp_path):
    path = str(tmp_path / "exec.fifo.start")
    os.mkfifo(path, 0o600)
    return path


def _writer(path, delay, byte=b"0", opened=None):
    def run():
        time.sleep(delay)  # only to let release() get there first: the result does not depend on it
        fd = os.open(path, os.O_WRONLY)
        if opened:
            opened.set()
        if byte:
            os.write(fd, byte)
        os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_init_waiting_on_the_fifo_is_released(tmp_path):
    path = _fifo(tmp_path)
    t = _writer(path, 0)  # blocks in open(O_WRONLY) until release() opens the read end
    release(Init(), path)
    t.join(10)
    assert not t.is_alive() and not os.path.exists(path), "the fifo is removed once read"


def test_init_that_opens_the_fifo_later_is_waited_for(tmp_path):
    path = _fifo(tmp_path)
    t = _writer(path, 0.2)
    release(Init(), path)
    t.join(10)
    assert not t.is_alive() and not os.path.exists(path)


def test_init_dying_before_its_byte_fails_the_start(tmp_path):
    path = _fifo(tmp_path)
    init = Init()
    opened = threading.Event()

    def die():  # the init opens its end and dies (its fds close) without writing
        opened.wait(10)
        init.dead = True

    threading.Thread(target=die).start()
    t = _writer(path, 0, byte=b"", opened=opened)
    with pytest.raises(StateError, match="container init process exited before start"):
        release(init, path)
    t.join(10)


def test_init_exiting_right_after_its_byte_is_a_start(tmp_path):
    """The init writes its byte and execs the user program, which may exit at once: the byte counts, not whether
    the init is still alive when release() gets to look."""
    path = _fifo(tmp_path)
    init = Init()

    def run():
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, b"0")
        init.dead = True  # gone before release() reads the byte
        os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    release(init, path)
    t.join(10)


def test_byte_written_at_once_needs_no_poll(tmp_path, monkeypatch):
    """The usual start: the init has waited on the fifo since create and writes its byte microseconds after
    release() opens the read end.  That byte is read after a short sleep, without loading `select` (its import
    is ~0.2 ms of CPU, 2% of the interpreter's start-up); only an init that takes longer gets the poll loop.
    Here the byte is in the pipe before release() looks (a second reader holds the pipe), and `select` cannot
    be imported at all."""
    import sys

    path = _fifo(tmp_path)
    holder = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that the write below does not block
    try:
        t = _writer(path, 0)
        t.join(10)
        monkeypatch.setitem(sys.modules, "select", None)  # `import select` raises ImportError
        release(Init(), path)
    finally:
        os.close(holder)
    assert not os.path.exists(path)
