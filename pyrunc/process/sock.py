"""The socket calls of the init protocol that pass fds, over the C module `_socket`, without the `socket` package.

`import socket` costs ~3 ms (it imports `selectors` and `enum`, and wraps every constant in an IntEnum); even
`_socket` and `_struct` cost ~0.6 ms, so a plain create loads neither: its sync channel is init.Channel (the
helper's socketpair, posix read and write).  This module is for what needs a socket object: fd passing (bind
sources at sync 3b, a console's pty master) and the connections to a console socket or a seccomp agent.
Spawn.run imports it before the fork when the config needs it (init.load_stage_modules); nothing here imports
anything later.  The names match the `socket` package's.
"""

import _socket
import _struct  # not array: it imports collections.abc

from _socket import (AF_INET, AF_UNIX, CMSG_LEN, SCM_RIGHTS, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET,  # noqa: F401
                     SOCK_STREAM, SOL_SOCKET, sethostname)


class socket(_socket.socket):
    """_socket.socket plus the context manager of socket.socket."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _borrowed:
    """A socket object for the fd of one that has none (init.Channel), detached again after the call: the fd
    stays its owner's."""

    __slots__ = ("sock", "temp")

    def __init__(self, sock):
        self.sock, self.temp = sock, not isinstance(sock, _socket.socket)

    def __enter__(self):
        if self.temp:
            self.sock = _socket.socket(fileno=self.sock.fileno())
        return self.sock

    def __exit__(self, *exc):
        if self.temp:
            self.sock.detach()


def socketpair(family=AF_UNIX, type=SOCK_STREAM, proto=0):
    """Two connected sockets, close-on-exec (as socket.socketpair makes them)."""
    a, b = _socket.socketpair(family, type | SOCK_CLOEXEC, proto)
    return socket(fileno=a.detach()), socket(fileno=b.detach())


def send_fds(sock, buffers, fds, flags=0, address=None):
    """socket.send_fds: the buffers and, in one SCM_RIGHTS message, the fds.  sock: a socket, or anything with
    fileno() (the init protocol's Channel)."""
    data = _struct.pack(f"{len(fds)}i", *fds)
    with _borrowed(sock) as s:
        return s.sendmsg(buffers, [(SOL_SOCKET, SCM_RIGHTS, data)], flags, *((address,) if address else ()))


def recv_fds(sock, bufsize, maxfds, flags=0):
    """socket.recv_fds: (data, [fds], msg_flags, address).  sock: as for send_fds."""
    fds = []
    with _borrowed(sock) as s:
        msg, ancdata, msg_flags, addr = s.recvmsg(bufsize, CMSG_LEN(maxfds * 4), flags)
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            n = len(data) // 4
            fds += _struct.unpack(f"{n}i", data[:n * 4])
    return msg, fds, msg_flags, addr
