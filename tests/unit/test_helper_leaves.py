"""The helper leaves the init protocol uses instead of _socket, struct and fcntl (csrc/pyrunc_helper.c): each is one
system call, and a failure is a SysError naming what it was about.  No root needed."""

import errno
import posix

import pytest

from pyrunc.errors import SysError
from pyrunc.linux import AF_INET, AF_UNIX, IFF_UP, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET, real
from pyrunc.process import stub

F_GETFD = 1
IFF_LOOPBACK = 0x8


def test_socketpair_is_seqpacket_and_close_on_exec():
    a, b = real.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)
    try:
        assert not posix.get_inheritable(a) and not posix.get_inheritable(b)
        posix.write(a, b"one")
        posix.write(a, b"two")
        assert posix.read(b, 100) == b"one"  # message boundaries kept
        assert posix.read(b, 100) == b"two"
    finally:
        posix.close(a)
        posix.close(b)


def test_interface_flags_and_a_missing_interface():
    s = real.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC)
    try:
        assert real.get_ifflags(s, "lo") & IFF_LOOPBACK
        with pytest.raises(SysError, match="^get flags of interface pyrtnosuch0: no such device") as e:
            real.get_ifflags(s, "pyrtnosuch0")
        assert e.value.errno == errno.ENODEV
        assert IFF_UP == 1
    finally:
        posix.close(s)


def test_fcntl_seals_a_memfd_and_clears_close_on_exec():
    fd = posix.memfd_create("t", posix.MFD_CLOEXEC | posix.MFD_ALLOW_SEALING)
    try:
        posix.write(fd, b"x")
        real.fcntl(fd, stub.F_ADD_SEALS, stub.F_SEAL_WRITE | stub.F_SEAL_GROW | stub.F_SEAL_SHRINK)
        with pytest.raises(PermissionError):
            posix.write(fd, b"y")
        assert real.fcntl(fd, F_GETFD, 0) == 1  # FD_CLOEXEC
        real.fcntl(fd, 2, 0)  # F_SETFD: what prepare_exec does for the stub's fds
        assert posix.get_inheritable(fd)
        with pytest.raises(SysError, match="^fcntl F_ADD_SEALS seal: bad file descriptor"):
            real.fcntl(-1, stub.F_ADD_SEALS, 1, "seal")
    finally:
        posix.close(fd)


def test_flock_is_the_same_lock_as_fcntl_flock(tmp_path):
    """The state store locks with the helper's flock where the helper is loaded (create, run, the shim) and with
    fcntl.flock elsewhere (the hot verbs): both must be flock(2), on open file descriptions, or they would not
    exclude each other."""
    import fcntl

    LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
    assert (LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN) == (fcntl.LOCK_SH, fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN)
    a = posix.open(str(tmp_path), posix.O_RDONLY | posix.O_DIRECTORY)
    b = posix.open(str(tmp_path), posix.O_RDONLY | posix.O_DIRECTORY)
    try:
        real.flock(a, LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b, LOCK_EX | LOCK_NB)
        real.flock(a, LOCK_UN)
        fcntl.flock(b, LOCK_SH)
        with pytest.raises(BlockingIOError):
            real.flock(a, LOCK_EX | LOCK_NB)
        real.flock(a, LOCK_SH | LOCK_NB)  # shared with b's
    finally:
        posix.close(a)
        posix.close(b)
    with pytest.raises(OSError) as e:
        real.flock(a, LOCK_EX)  # closed
    assert e.value.errno == errno.EBADF
