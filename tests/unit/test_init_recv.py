"""process.init.recv when stage A failed before it read our message: the kernel reports ECONNRESET first (a Unix
socket closed with unread data resets its peer, and recv checks that error before the queue), then the ERROR that
stage A sent is still there to read.  Seen once the parent's cgroup writes got fast enough to send sync 2's GO
before a failing stage A exited (tests/integration/test_crash_safety.py, ipc namespace path that does not exist):
create then failed with "internal error: ConnectionResetError" instead of stage A's message."""

import pytest

from pyrunc.linux import real
from pyrunc.process import init
from pyrunc.process import sock as socket


def _sockets():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# the sync channel itself (the helper's socketpair, posix read and write) and socket objects: the same errors
PAIRS = pytest.mark.parametrize("pair", [lambda: init.channel_pair(real), _sockets], ids=["channel", "socket"])


@PAIRS
def test_error_sent_before_a_reset_is_still_reported(pair):
    ours, theirs = pair()
    try:
        theirs.send(init.ERROR + b"open /no-such-ns: no such file or directory")
        ours.send(init.GO)  # never read: closing theirs now resets ours
        theirs.close()
        with pytest.raises(init.InitError, match="^unable to start container process: open /no-such-ns: no such"):
            init.recv(ours)
    finally:
        ours.close()


@PAIRS
def test_reset_without_a_message_is_an_early_exit(pair):
    ours, theirs = pair()
    try:
        ours.send(init.GO)
        theirs.close()
        with pytest.raises(init.InitError, match="exited before it was set up"):
            init.recv(ours)
    finally:
        ours.close()


@PAIRS
def test_the_last_message_after_a_reset_is_read_too(pair):
    """receive(), what sync 7 reads (READY, or EOF for exec, or ERROR): a first stage that failed before it read
    our GO (a refused cgroup `tasks` write, its first step) closes with it unread; its ERROR is still returned,
    and without one the end (b"") is, never ConnectionResetError (tests/integration/test_own_join.py)."""
    ours, theirs = pair()
    try:
        theirs.send(init.ERROR + b"write /sys/fs/cgroup/cpuset/c1/tasks")
        ours.send(init.GO)
        theirs.close()
        assert init.receive(ours) == init.ERROR + b"write /sys/fs/cgroup/cpuset/c1/tasks"
    finally:
        ours.close()
    ours, theirs = pair()
    try:
        ours.send(init.GO)
        theirs.close()
        assert init.receive(ours) == b""
    finally:
        ours.close()


def test_channel_keeps_message_boundaries_and_reports_a_gone_peer():
    """SEQPACKET through read and write: one write is one message, a read takes one; a write to a closed peer is
    EPIPE (the parent's `except BrokenPipeError` after sync 2), a read of a closed one EOF."""
    ours, theirs = init.channel_pair(real)
    try:
        ours.send(init.GO)
        ours.send(init.PID + b"42")
        assert theirs.recv(65536) == init.GO
        assert theirs.recv(65536) == b"pid 42"
        theirs.close()
        theirs.close()  # twice: a no-op, as for a socket
        assert ours.recv(65536) == b""
        with pytest.raises(BrokenPipeError):
            ours.send(init.GO)
    finally:
        ours.close()
        theirs.close()
