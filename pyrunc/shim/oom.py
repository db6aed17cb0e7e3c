"""OOM events (SHIM.md §6): v1 — an eventfd registered on memory.oom_control through cgroup.event_control;
v2 — inotify on memory.events, publishing when oom_kill grows.  One thread per watched container waits on its
fd; check_now() lets the service report an OOM kill before the init's exit it caused."""

import _thread
import os
import select

from .ttrpc import go

IN_MODIFY = 0x2


def _memory_cgroup(pid):
    """('v1'|'v2', directory) of pid's memory cgroup."""
    v1 = v2 = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                v1 = "/sys/fs/cgroup/memory" + path
            elif ctrls == "":
                v2 = path
    if v1:
        return "v1", v1
    base = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"
    return "v2", base + (v2 or "/")


def _oom_kills(d):
    try:
        with open(os.path.join(d, "memory.events")) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0


class Watch:
    def __init__(self, mode, d, publish, lock, log):
        self.mode, self.dir, self.publish, self.lock, self.log = mode, d, publish, lock, log
        self.stopped = False
        self.closed = False
        self.fds_lock = _thread.allocate_lock()
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)
        if mode == "v1":
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            ctl = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                with open(os.path.join(d, "cgroup.event_control"), "w") as f:
                    f.write(f"{self.fd} {ctl}")
            finally:
                os.close(ctl)
        else:
            self.count = _oom_kills(d)
            self.fd = _inotify(d)
        self.thread = go(self._run)

    def check_now(self):
        """Publish an OOM that happened but was not reported yet (caller holds the container's lock)."""
        if self.mode == "v1":
            with self.fds_lock:
                if self.closed:
                    return
                try:
                    n = os.eventfd_read(self.fd)
                except BlockingIOError:
                    n = 0
            if n:
                self.publish()
        else:
            n = _oom_kills(self.dir)
            if n > self.count:
                self.count = n
                self.publish()

    def _run(self):
        try:
            self._watch()
        finally:  # the thread closes its fds: stop() does not wait for it (it runs on the init's exit path)
            with self.fds_lock:
                self.closed = True
                for fd in (self.fd, self.stop_r, self.stop_w):
                    os.close(fd)

    def _watch(self):
        while not self.stopped:
            r, _, _ = select.select([self.fd, self.stop_r], [], [])
            if self.stop_r in r:
                return
            if self.mode == "v2":
                try:
                    os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
            with self.lock:
                if not self.stopped:
                    self.check_now()

    def stop(self):
        """Once, with the container's lock held (check_now() is not running): the thread ends and closes the fds."""
        self.stopped = True
        with self.fds_lock:
            if not self.closed:  # else the thread ended early (an error): its fd numbers may be reused by now
                os.write(self.stop_w, b"x")


def _inotify(d):
    """inotify without the helper: ctypes is not on any hot path (only the daemon on cgroup v2 uses it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if libc.inotify_add_watch(fd, os.path.join(d, "memory.events").encode(), IN_MODIFY) < 0:
        e = ctypes.get_errno()
        os.close(fd)
        raise OSError(e, f"inotify_add_watch {d}/memory.events")
    return fd


def watch(pid, publish, lock, log):
    mode, d = _memory_cgroup(pid)
    if not os.path.isdir(d):
        return None
    return Watch(mode, d, publish, lock, log)
