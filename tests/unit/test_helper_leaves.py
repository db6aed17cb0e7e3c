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
