"""process.init.recv when stage A failed before it read our message: the kernel reports ECONNRESET first (a Unix
socket closed with unread data resets its peer, and recv checks that error before the queue), then the ERROR that
stage A sent is still there to read.  Seen once the parent's cgroup writes got fast enough to send sync 2's GO
before a failing stage A exited (tests/integration/test_crash_safety.py, ipc namespace path that does not exist):
create then failed with "internal error: ConnectionResetError" instead of stage A's message."""

import pytest

from pyrunc.process import init
from pyrunc.process import sock as socket


def test_error_sent_before_a_reset_is_still_reported():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        theirs.send(init.ERROR + b"open /no-such-ns: no such file or directory")
        ours.send(init.GO)  # never read: closing theirs now resets ours
        theirs.close()
        with pytest.raises(init.InitError, match="^unable to start container process: open /no-such-ns: no such"):
            init.recv(ours)
    finally:
        ours.close()


def test_reset_without_a_message_is_an_early_exit():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        ours.send(init.GO)
        theirs.close()
        with pytest.raises(init.InitError, match="exited before it was set up"):
            init.recv(ours)
    finally:
        ours.close()
