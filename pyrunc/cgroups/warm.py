"""Pay the cgroup migration lock's RCU grace period while create is still busy with other things.

The first write of a pid into any cgroup.procs after a quiet period takes ~8-15 ms here, nearly all of it asleep in
the kernel: the writer side of cgroup_threadgroup_rwsem (a global percpu rwsem) waits for an RCU grace period
before it can be taken; writes that follow within about one more grace period are fast (~0.05 ms).  runc pays it
on every create, in the middle of its init protocol; pyrunc paid it the same way, with stage A waiting for it.

A create by the CLI pays none of it: its first process joins its cgroups without that lock (Manager.own_join: a
v1 `tasks` write of 0 by the process itself, and a clone3 into its cgroup2 cgroup).  The clone3 needs a process
with one thread, so a shim, which serves in several, still writes cgroup.procs, and warms the lock up first: the
daemon starts a warm-up at fork for its first Create, and each later Create starts its own (shim/service.py).

start() writes our own pid into the cgroup2 cgroup we are already in, in a thread: a migration to where we are,
which changes nothing but takes (and so readies) that lock, while the main thread imports, reads the config and
plans.  The container's cgroup steps come last before the fork: a cgroup mkdir takes cgroup_mutex, which the
waiting write holds all along.  wait() joins it before the first fork.  It never moves a process and never touches
a cgroup other than the one we are in; any error (no cgroup2, no permission, a cgroup that refuses processes) is
ignored: the real write then pays the wait, as without it.

The lock stays ready only for about one more grace period after its last writer (kernel/rcu/sync.c: GP_EXIT, then
GP_IDLE): measured here, a write 15 ms after the previous one is fast, one 20 ms after it pays the whole wait
again.  A create that reaches its first container write later than that (a loaded machine, a config with hooks
or seccomp, strace) paid the grace period twice.  So the thread keeps writing, every KEEP_ALIVE seconds (each
write ~0.03 ms), until wait() or stop() tells it to end.
"""

import _thread
import sys

from pyrunc import osx as os

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


# Until its first write is done, the thread gets the GIL this soon from the main thread (busy importing, holding
# it), instead of Python's default 5 ms: the write's start and end are what create waits for before it forks.
# Only until then: each forced switch makes the main thread wait until the thread has run, which on a loaded
# machine means waiting for a CPU; the keep-alive writes take the GIL when the main thread lets it go anyway (any
# file I/O, and imports do plenty).  Process-wide, so counted: the interval set before the first warm-up comes
# back after the last one (a shim may create containers in several threads at once).
SWITCH_INTERVAL = 0.0002
_interval_lock = _thread.allocate_lock()
_interval = [0, None]  # warm-ups whose first write is pending, the interval before the first
# Seconds between the writes that keep the lock ready: inside its window (one grace period, ~15 ms here, longer on
# a busy machine), with room for a late wake-up.  A create that forks within that long of the first write makes
# none; each one takes the global cgroup_mutex briefly and the GIL once.
KEEP_ALIVE = 0.010


def _fast_switch():
    with _interval_lock:
        if _interval[0] == 0:
            _interval[1] = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
        _interval[0] += 1


class Warmup:
    def __init__(self, path):
        self.path = path
        self.result = None  # None: not done; else 0 or the errno of the first write (for tests)
        self.writes = 0  # writes the kernel took: the first and the keep-alive ones (for tests)
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._end = _thread.allocate_lock()  # released by stop(): the thread's cue to end
        self._end.acquire()
        self._ending = False
        self._fast = False
        self._threads = _thread._count()
        if path is None:
            self._done.release()
            return
        _fast_switch()
        self._fast = True
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError:  # no thread to spare: the real write pays
            self._done.release()

    def _run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            self.result = e.errno
            self._done.release()
            return
        try:
            pid = str(os.getpid()).encode()
            os.write(fd, pid)
            self.writes += 1
            self.result = 0
            self._slow_switch()
            while not self._end.acquire(True, KEEP_ALIVE):  # the wait releases the GIL
                os.write(fd, pid)
                self.writes += 1
        except OSError as e:
            if self.result is None:
                self.result = e.errno
        finally:
            os.close(fd)
            self._done.release()

    def wait(self):
        """End the thread and block until it is gone (at once if it already is); call before forking."""
        self.stop()
        if self._done.acquire():
            self._done.release()
        if self._threads is None:
            return
        for _ in range(10000):  # the thread ends right after its release: a few yields at most
            if _thread._count() <= self._threads:
                break
            os.sched_yield()

    def threaded(self):
        """For a caller that runs threads of its own anyway (the shim daemon, whose server threads start after its
        warm-up and come and go): wait() then waits for the thread's last write only, not for the thread count to
        fall back to start()'s (it may never: 10000 yields).  Returns self."""
        self._threads = None
        return self

    def stop(self):
        """Tell the thread to end after its current write and give the switch interval back, without waiting
        (a create that failed early).  Idempotent."""
        if not self._ending:
            self._ending = True
            self._end.release()
        self._slow_switch()

    def _slow_switch(self):
        """Python's switch interval back, once per warm-up (from the thread after its first write, or stop())."""
        with _interval_lock:
            if not self._fast:
                return
            self._fast = False
            _interval[0] -= 1
            if _interval[0] == 0:
                sys.setswitchinterval(_interval[1])


def start(path=None):
    """A warm-up of our own cgroup (path: a cgroup.procs file, for tests)."""
    return Warmup(own_procs_file() if path is None else path)
