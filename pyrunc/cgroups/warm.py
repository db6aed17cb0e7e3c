"""Pay the cgroup migration lock's RCU grace period while create is still busy with other things.

The first write of a pid into any cgroup.procs after a quiet period takes ~8-15 ms here, nearly all of it asleep in
the kernel: the writer side of cgroup_threadgroup_rwsem (a global percpu rwsem) waits for an RCU grace period
before it can be taken; writes that follow within about one more grace period are fast (~0.05 ms).  runc pays it
on every create, in the middle of its init protocol; pyrunc paid it the same way, with stage A waiting for it.

start() writes our own pid into the cgroup2 cgroup we are already in, in a thread: a migration to where we are,
which changes nothing but takes (and so readies) that lock, while the main thread imports, reads the config and
makes the container's cgroups.  wait() joins it before the first fork, so that no thread of ours is running when
the init protocol forks.  It never moves a process and never touches a cgroup other than the one we are in; any
error (no cgroup2, no permission, a cgroup that refuses processes) is ignored: the real write then pays the wait,
as without it.
"""

import _thread
import os
import sys

_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")  # cgroup2 on a v2 host, or in a hybrid one


def own_procs_file(proc="/proc", mounts=_MOUNTS):
    """The cgroup.procs of our own cgroup2 cgroup, or None (no cgroup2 line, no such mount)."""
    try:
        with open(os.path.join(proc, "self", "cgroup"), "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            rel = line[3:].lstrip("/")
            for m in mounts:
                path = os.path.join(m, rel, "cgroup.procs")
                if os.path.exists(path):
                    return path
    return None


# While the thread runs, the main thread (busy importing, holding the GIL) lets it have the GIL this soon after
# its write returns, instead of Python's default 5 ms: the write's end is what create waits for before it forks.
# Process-wide, so counted: the interval set before the first warm-up comes back after the last one (a shim may
# create containers in several threads at once).
SWITCH_INTERVAL = 0.0002
_interval_lock = _thread.allocate_lock()
_interval = [0, None]  # warm-ups running, the interval before the first


def _fast_switch(on):
    with _interval_lock:
        if on:
            if _interval[0] == 0:
                _interval[1] = sys.getswitchinterval()
                sys.setswitchinterval(SWITCH_INTERVAL)
            _interval[0] += 1
        else:
            _interval[0] -= 1
            if _interval[0] == 0:
                sys.setswitchinterval(_interval[1])


class Warmup:
    def __init__(self, path):
        self.path = path
        self.result = None  # None: not done; else 0 or the errno of the write (for tests)
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._fast = False
        self._threads = _thread._count()
        if path is None:
            self._done.release()
            return
        _fast_switch(True)
        self._fast = True
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError:  # no thread to spare: the real write pays
            self._done.release()

    def _run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            self.result = 0
        except OSError as e:
            self.result = e.errno
        finally:
            self._done.release()

    def wait(self):
        """Block until the write is done and its thread gone (at once if it already is); call before forking."""
        if self._done.acquire():
            self._done.release()
        for _ in range(10000):  # the thread ends right after its release: a few yields at most
            if _thread._count() <= self._threads:
                break
            os.sched_yield()
        self.stop()

    def stop(self):
        """Give the switch interval back, without waiting (a create that failed early).  Idempotent."""
        if self._fast:
            self._fast = False
            _fast_switch(False)


def start(path=None):
    return Warmup(own_procs_file() if path is None else path)
