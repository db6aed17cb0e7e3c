"""A process's stdio as containerd hands it over (SHIM.md §5): fifos, `file://`, `binary://` loggers, terminals.

Every copy (container pipe -> stdout fifo, stdin fifo -> container pipe, pty master <-> fifos) runs in ONE epoll
loop thread shared by every process of the shim, with non-blocking fds and a pending buffer per copy: a reader
that stops reading (containerd down) stalls only its own copy, never the loop.

Output fifos: the shim opens its own read end first, then the write end, and keeps both, so the container never
gets EPIPE/SIGPIPE when containerd restarts and its reader goes away (containerd/rust-extensions#154).  At EOF
of the container's side the shim closes its ends: ctr waits for that EOF before it deletes the task.
Stdin: the shim keeps a write end of the stdin fifo (so the copy does not see EOF before the client opened it)
until CloseIO; then the client's close gives EOF and the container's stdin pipe is closed.
"""

import _signal as signal  # not `signal`: its enum wrappers cost ~4 ms on the daemon's start-up path
import os
import select

from . import sync

_BUF = 65536


class _Copy:
    __slots__ = ("src", "dst", "pending", "on_eof", "close_dst", "done", "name", "finished")

    def __init__(self, src, dst, on_eof, close_dst, name):
        self.src, self.dst, self.on_eof, self.close_dst, self.name = src, dst, on_eof, close_dst, name
        self.pending = b""
        self.done = sync.Event()
        self.finished = False  # set once, under the loop's lock: its fds are closed exactly once


class Loop:
    """The epoll loop.  add(src, dst) copies until EOF on src, then closes src (and dst if close_dst)."""

    def __init__(self, log=None):
        self.log = log
        self.ep = select.epoll()
        self.copies = {}  # fd registered -> (copy, "in"|"out")
        # Held around every read/write of a copy's fds and around closing them: a copy cancelled from another
        # thread (Delete, CloseIO) and finished by the loop at once must not close an fd twice, nor may the loop
        # read an fd number that a cancel closed and something else reused meanwhile.
        self.lock = sync.RLock()
        self.thread = None

    def add(self, src, dst, *, on_eof=None, close_dst=True, name=""):
        c = _Copy(src, dst, on_eof, close_dst, name)
        os.set_blocking(src, False)
        os.set_blocking(dst, False)
        with self.lock:
            self.copies[src] = (c, "in")
            self.ep.register(src, select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)
            if self.thread is None:
                from .ttrpc import go

                self.thread = go(self._run)
        return c

    def _finish(self, c):
        with self.lock:
            if c.finished:
                return
            c.finished = True
            for fd in (c.src, c.dst):
                if fd in self.copies and self.copies[fd][0] is c:
                    del self.copies[fd]
                    try:
                        self.ep.unregister(fd)
                    except OSError:
                        pass
            _close(c.src)
            if c.close_dst:
                _close(c.dst)
        c.done.set()  # outside the lock: on_eof may take the service's locks
        if c.on_eof:
            c.on_eof()

    def cancel(self, c):
        """Stop a copy now (its process is gone and nothing more is wanted from it)."""
        if not c.done.is_set():
            self._finish(c)

    def _run(self):
        while True:
            try:
                events = self.ep.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                failed = None
                with self.lock:
                    entry = self.copies.get(fd)
                    if entry is None or entry[0].finished:
                        continue
                    c, role = entry
                    try:
                        eof = self._readable(c) if role == "in" else self._writable(c)
                    except OSError as e:
                        eof, failed = True, e
                if failed is not None and self.log:
                    self.log.warning(f"copy {c.name}: {failed}")
                if eof:
                    self._finish(c)

    def _readable(self, c):
        """One read and its write (under the loop's lock); True at EOF."""
        try:
            data = os.read(c.src, _BUF)
        except BlockingIOError:
            return False
        except OSError:  # EIO: the pty's last slave fd closed
            data = b""
        if not data:
            return True
        self._write(c, data)
        return False

    def _write(self, c, data):
        try:
            n = os.write(c.dst, data)
        except BlockingIOError:
            n = 0
        if n < len(data):  # the reader is slow or away: wait until the destination takes more
            c.pending = data[n:]
            with self.lock:
                del self.copies[c.src]
                self.ep.unregister(c.src)
                self.copies[c.dst] = (c, "out")
                self.ep.register(c.dst, select.EPOLLOUT | select.EPOLLERR)

    def _writable(self, c):
        try:
            n = os.write(c.dst, c.pending)
        except BlockingIOError:
            return False
        c.pending = c.pending[n:]
        if not c.pending:
            with self.lock:
                del self.copies[c.dst]
                self.ep.unregister(c.dst)
                self.copies[c.src] = (c, "in")
                self.ep.register(c.src, select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)
        return False


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class ProcIO:
    """The stdio of one process: .child = the (stdin, stdout, stderr) fds for the process; after the runtime
    started it, close_child() drops the shim's copies of them."""

    def __init__(self):
        self.child = ()
        self.copies = []
        self.stdin_writer = None  # the shim's own write end of the stdin fifo, until CloseIO
        self.console = None  # pty master
        self.logger_pid = 0
        self.stdin_copy = None
        self.fifos = ()

    def close_child(self):
        for fd in set(self.child):
            _close(fd)
        self.child = ()

    def close_stdin(self):
        if self.stdin_writer is not None:
            _close(self.stdin_writer)
            self.stdin_writer = None

    def wait(self, timeout):
        for c in self.copies:
            if not c.done.wait(timeout):
                return False
        return True

    def close(self, loop):
        self.close_child()
        self.close_stdin()
        for c in self.copies + ([self.stdin_copy] if self.stdin_copy else []):
            loop.cancel(c)
        if self.console is not None:
            _close(self.console)
            self.console = None
        if self.logger_pid:
            try:
                os.kill(self.logger_pid, 15)
            except ProcessLookupError:
                pass
            self.logger_pid = 0


def _open_out_fifo(path):
    """(our read end, our write end): the read end first, so the write end opens without blocking."""
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        w = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(r)
        raise
    return r, w


def _scheme(uri):
    if "://" in uri:
        s, _, rest = uri.partition("://")
        return s, rest
    return "fifo", uri


def _pipe(uid, gid):
    r, w = os.pipe2(os.O_CLOEXEC)
    if uid >= 0 or gid >= 0:
        for fd in (r, w):
            os.fchown(fd, uid, gid)
    return r, w


def open_io(loop, cid, ns, stdin, stdout, stderr, *, terminal=False, uid=-1, gid=-1):
    """Set up the stdio of a process; the caller passes io.child to the runtime (ignored with a terminal, whose
    pty then carries stdin and stdout) and calls attach_console() with the pty master."""
    io = ProcIO()
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    fds = [null, null, null]
    extra = []
    try:
        scheme, path = _scheme(stdout or "")
        if scheme not in ("fifo", "file", "binary"):
            raise ValueError(f"unknown STDIO scheme {scheme}")
        if terminal:
            io.fifos = (stdin, stdout)
        elif scheme == "file":
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            f = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            extra.append(f)
            for i in (1, 2):
                r, w = _pipe(uid, gid)
                fds[i] = w
                io.copies.append(loop.add(r, os.dup(f), name=f"{cid} fd {i} to {path}"))
        elif scheme == "binary":
            fds[1], fds[2], io.logger_pid = _start_logger(path, cid, ns, uid, gid)
        else:
            for i, p in ((1, stdout), (2, stderr)):
                if not p:
                    continue
                r, w = _pipe(uid, gid)
                fds[i] = w
                keep_r, fifo_w = _open_out_fifo(p)
                io.copies.append(loop.add(r, fifo_w, name=f"{cid} fd {i}",
                                          on_eof=lambda keep_r=keep_r: _close(keep_r)))
        if stdin and not terminal:
            r, w = _pipe(uid, gid)
            fds[0] = r
            src = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            io.stdin_writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            io.copies.append(loop.add(src, w, name=f"{cid} stdin"))
            io.stdin_copy = io.copies.pop()  # not waited for: stdin may stay open after the process exits
    except BaseException:
        for fd in set(fds) | set(extra):
            _close(fd)
        io.close(loop)
        raise
    for fd in extra:
        _close(fd)
    if null not in fds:
        _close(null)
    io.child = tuple(fds)  # closed by close_child once the runtime has started the process
    return io


def attach_console(loop, io, master, cid):
    """The pty master: its output to the stdout fifo, the stdin fifo to it (a dup: one fd per epoll role)."""
    stdin, stdout = io.fifos
    io.console = os.dup(master)  # for ResizePty
    if stdout:
        keep_r, fifo_w = _open_out_fifo(stdout)
        io.copies.append(loop.add(os.dup(master), fifo_w, name=f"{cid} console",
                                  on_eof=lambda: _close(keep_r)))
    if stdin:
        src = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        io.stdin_writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        io.stdin_copy = loop.add(src, os.dup(master), name=f"{cid} console stdin")
    os.close(master)


def _start_logger(path, cid, ns, uid, gid):
    """binary:// logger (containerd's protocol): fd 3 = stdout, fd 4 = stderr, fd 5 closed by the logger when
    it is ready; args = each query key and its value; env CONTAINER_ID, CONTAINER_NAMESPACE."""
    from urllib.parse import parse_qsl

    exe, _, query = path.partition("?")
    args = [exe]
    for k, v in parse_qsl(query, keep_blank_values=True):
        args += [k, v] if v else [k]
    out_r, out_w = _pipe(uid, gid)
    err_r, err_w = _pipe(uid, gid)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ, CONTAINER_ID=cid, CONTAINER_NAMESPACE=ns)
    try:
        pid = os.posix_spawn(exe, args, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out_r, 3), (os.POSIX_SPAWN_DUP2, err_r, 4), (os.POSIX_SPAWN_DUP2, ready_w, 5)],
            setsid=True, setsigdef=(signal.SIGPIPE,))  # our SIG_IGN would survive the exec
    except OSError as e:
        for fd in (out_r, out_w, err_r, err_w, ready_r, ready_w):
            _close(fd)
        raise OSError(e.errno, f"start logger {exe}: {os.strerror(e.errno).lower()}") from None
    for fd in (out_r, err_r, ready_w):
        os.close(fd)
    select.select([ready_r], [], [], 10)  # the logger closes fd 5 when ready (EOF), or times out
    os.close(ready_r)
    return out_w, err_w, pid
