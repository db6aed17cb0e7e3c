"""Terminals: a pty made inside the container's devpts, its master handed to the caller over --console-socket.

The caller's socket is connected by the parent before fork (the container cannot see the host path); the
container process opens /dev/pts/ptmx of its own devpts instance (verified to be a devpts character device, not
something the image put there), unlocks it, makes the slave its controlling terminal and stdio, and sends the
master in one SCM_RIGHTS message whose payload is the pty's name, as runc does.
"""

import _stat as stat  # compiled in: `stat` is a file to load
import fcntl
import struct
import termios

from .. import osx as os
from ..errors import PyruncError, SysError
from ..linux import O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS
from . import sock as socket

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise SysError("connect console socket", path, e.errno) from None
    return s


def _check_char(fd, path, ok):
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or not ok(os.major(st.st_rdev), os.minor(st.st_rdev)):
        os.close(fd)
        raise PyruncError(f"open {path}: not a pty device")


def new_pty(lx):
    """(master fd, slave fd, slave path) from the devpts mounted at /dev/pts inside the current root."""
    # Opened directly inside the root, never through /proc/self/fd: `exec` prepares the pty in a process that is
    # not in the container's pid namespace, so the container's /proc has no "self" for it.
    root = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        master = lx.openat2(root, "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC, 0,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
    finally:
        os.close(root)
    _check_char(master, "/dev/pts/ptmx", lambda major, minor: (major, minor) == (5, 2))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    # the slave straight from the master (TIOCGPTPEER, Linux 4.13): no path a container could have replaced
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    _check_char(slave, f"/dev/pts/{n}", lambda major, minor: 136 <= major < 144)
    return master, slave, f"/dev/pts/{n}"


def set_size(fd, size):
    if size:
        rows, cols = int(size.get("height", 0)), int(size.get("width", 0))
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def attach(slave, ctty=True):
    """The slave becomes stdio and (ctty) the controlling terminal (the caller already did setsid)."""
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if ctty:
        set_ctty(0)
    if slave > 2:
        os.close(slave)


def set_ctty(fd):
    """TIOCSCTTY: the terminal on fd becomes the caller's controlling terminal (after setsid)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def send_master(sock, master, name="/dev/ptmx"):
    socket.send_fds(sock, [name.encode()], [master])


def setup(lx, console_sock, size, ctty=True):
    """In the container process, after pivot_root: make the pty, send the master, attach the slave."""
    master, slave, _ = new_pty(lx)
    try:
        set_size(master, size)
        send_master(console_sock, master)
    finally:
        os.close(master)
    console_sock.close()
    attach(slave, ctty)


def recv_master(sock):
    """Parent side of an internal console socket (foreground run/exec with a terminal)."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise PyruncError("console socket: no pty master received")
    return fds[0]


def proxy(master, pid, wait_status):
    """Foreground terminal: copy between our stdio and the pty master, pass window-size changes, return the exit
    status of pid (wait_status(pid, block) returns it or None) once it has exited and its output is drained."""
    import select
    import signal
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def winch(*_):
        if stdin_tty:
            try:
                ws = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
                if struct.unpack("HHHH", ws)[:2] != (0, 0):  # an unsized terminal keeps consoleSize
                    fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
            except OSError:
                pass

    try:
        if stdin_tty:
            tty.setraw(0)
            winch()
            signal.signal(signal.SIGWINCH, winch)
        fds = [master, 0]
        status = None
        while True:
            try:
                r, _, _ = select.select(fds, [], [], 0.1)
            except InterruptedError:
                continue
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    fds.remove(master)
                else:
                    os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    fds.remove(0)
            if status is None:
                status = wait_status(pid, False)
            if status is not None and (master not in fds or not r):
                return status
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
