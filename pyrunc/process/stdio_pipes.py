"""Pipes of pyrunc's own for a foreground `run` without a terminal whose container has a user namespace (runc's
setupProcessPipes, utils_linux.go).

The caller's stdio belongs to host ids that the container's user namespace does not map: its root cannot chown it
(EPERM), so a process that reopens /dev/stdout (/proc/self/fd/1, where the kernel checks the pipe's owner) gets
EACCES.  runc's foreground run never hands the caller's fds over: it makes three pipes, gives them to the
container's root (whose init then gives them to the process's user, fixStdioPermissions) and copies between them
and its own stdio.  pyrunc does the same where it must, in a user namespace; without one it passes the caller's
fds through unchanged, and the init hands the pipes and sockets among them to the user (child.fix_stdio_owner).

The copy runs in a thread with every signal blocked (the main thread waits for the init and forwards signals): it
writes the caller's stdin into the container's until EOF, which it passes on by closing the pipe, and the
container's stdout and stderr to ours until every writer is gone, that is until the init and every process that
inherited them have exited (a pid namespace of its own dies with its init; `run` deletes the rest).
"""

import _signal as signal
import _thread
import os

BUF = 65536


class Pipes:
    """theirs: the container's (stdin, stdout, stderr); ours: the other ends, which copy() serves."""

    def __init__(self):
        self.theirs, self.ours, self._done = [], [], None
        try:
            for i in range(3):
                r, w = os.pipe2(os.O_CLOEXEC)
                self.theirs.append(r if i == 0 else w)
                self.ours.append(w if i == 0 else r)
        except BaseException:
            self.close()
            raise

    def hand_over(self, pid, uid):
        """After create, before start: the pipes become the process user's and the namespace root's group (what
        runc's two steps leave), by the ids of the init's user namespace; pyrunc's copies of the container's ends
        are closed, and the copy starts."""
        host_uid, host_gid = _host_id(pid, "uid", uid), _host_id(pid, "gid", 0)
        if host_uid is not None and host_gid is not None:
            for fd in self.ours:  # one inode per pipe: either end will do
                try:
                    os.fchown(fd, host_uid, host_gid)
                except PermissionError:  # a caller that is not root: its pipes are already the namespace's root's
                    pass
        for fd in self.theirs:
            os.close(fd)
        self.theirs = []
        self._done = _thread.allocate_lock()
        self._done.acquire()
        # the thread inherits this mask: every signal stays the main thread's, which forwards them
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            _thread.start_new_thread(self._run, ())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def wait(self):
        """Until the container's stdout and stderr are at EOF and copied."""
        if self._done is not None:
            self._done.acquire()
            self._done.release()

    def close(self):
        """Before hand_over (create failed); after it the copy owns our ends and ends with the container."""
        if self._done is not None:
            return
        for fd in self.theirs + self.ours:
            try:
                os.close(fd)
            except OSError:
                pass
        self.theirs, self.ours = [], []

    def _run(self):
        try:
            copy(*self.ours)
        finally:
            self.ours = []
            self._done.release()


def _host_id(pid, kind, cid):
    """The host id of cid in pid's user namespace; None if unmapped (or pid is gone: start reports that)."""
    try:
        with open(f"/proc/{pid}/{kind}_map") as f:
            maps = f.read().split()
    except OSError:
        return None
    for i in range(0, len(maps) - 2, 3):
        inside, outside, count = int(maps[i]), int(maps[i + 1]), int(maps[i + 2])
        if inside <= cid < inside + count:
            return outside + cid - inside
    return None


def copy(in_w, out_r, err_r):
    """Our stdin into in_w until EOF (then in_w is closed: the container reads EOF); out_r and err_r into our
    stdout and stderr until EOF.  Returns once both are at EOF; closes all three.  stdin is dropped (the
    container's end closed) when the container closes its end, or when our stdin fails; an output whose
    destination fails is closed, so the container gets EPIPE as it would have on the caller's own pipe."""
    import select

    os.set_blocking(in_w, False)  # our end only: a full pipe (the container does not read) never stops the output
    outs = {out_r: 1, err_r: 2}
    pending = b""
    try:
        while outs:
            p = select.poll()
            for fd in outs:
                p.register(fd, select.POLLIN)
            if in_w >= 0 and pending:
                p.register(in_w, select.POLLOUT)
            elif in_w >= 0:
                p.register(0, select.POLLIN)
            for fd, _ in p.poll():
                if fd == 0:
                    data = _read(0)
                    if data:
                        pending = data
                    elif data is not None:  # EOF (or an unreadable stdin): the container's stdin ends too
                        os.close(in_w)
                        in_w = -1
                elif fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending):]
                    except BlockingIOError:
                        pass
                    except OSError:  # EPIPE: nobody in the container reads stdin any more
                        os.close(in_w)
                        in_w, pending = -1, b""
                elif fd in outs:
                    data = _read(fd)
                    if data is None:
                        continue
                    if not data or not _write_all(outs[fd], data):
                        os.close(fd)
                        del outs[fd]
    finally:
        for fd in (in_w, *outs):
            if fd >= 0:
                os.close(fd)


def _read(fd):
    """Data, b"" at EOF or on an error, None if there is nothing yet (a stdin the caller made non-blocking)."""
    try:
        return os.read(fd, BUF)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _write_all(fd, data):
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        return False
    return True
