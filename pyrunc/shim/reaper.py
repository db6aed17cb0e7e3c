"""One reaper for every child of the shim (SHIM.md §6).

The daemon is a subreaper: container inits and exec'd processes re-parent to it when the setup process that forked
them exits.  Only reap() calls wait4, in a loop on SIGCHLD (main thread).  A reaped status goes to whoever asked
for that pid: the service's subscription for a container process (subscribe), or the library waiting for its own
setup children (waitpid, installed as pyrunc.process.waiter.waitpid).  A status nobody asked for yet is parked
(the process can exit before the code that started it learns its pid) and handed over when asked; parked statuses
nobody claims (orphans of orphans) are forgotten after PARK_SECONDS.

subprocess waits for its own child with waitpid(pid): exclusive() holds the reaper off meanwhile (hooks), so
neither steals from the other; exits reaped late are still delivered.
"""

import os
import time

from . import sync

PARK_SECONDS = 60.0


def exit_code(status):
    """Exit code as containerd reports it: the code, or 128 + signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Reaper:
    def __init__(self):
        self.cond = sync.Condition()
        self.gate = sync.RLock()  # held by reap() and by exclusive() sections
        self.parked = {}  # pid -> (raw status, monotonic time)
        self.subs = {}  # pid -> callback(raw status)

    def reap(self):
        calls = []
        # wait4 and the parking under one lock: waitpid() never sees a pid gone from /proc but not parked yet
        with self.gate, self.cond:
            while True:
                try:
                    pid, status, _ = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                except InterruptedError:
                    continue
                if pid == 0:
                    break
                cb = self.subs.pop(pid, None)
                if cb is None:
                    self.parked[pid] = (status, time.monotonic())
                else:
                    calls.append((cb, status))
            self.cond.notify_all()
        with self.cond:
            old = time.monotonic() - PARK_SECONDS
            for pid in [p for p, (_, t) in self.parked.items() if t < old]:
                del self.parked[pid]
        for cb, status in calls:  # outside every lock: callbacks take the service's locks
            cb(status)

    def subscribe(self, pid, callback):
        """callback(raw status) once pid is reaped: now (in this thread) if it already was, else in reap()."""
        with self.cond:
            parked = self.parked.pop(pid, None)
            if parked is None:
                self.subs[pid] = callback
                return
        callback(parked[0])

    def waitpid(self, pid, options=0):
        """os.waitpid for the library's own children, from the reaper.  A subscribed pid is not the library's:
        WNOHANG reports it as still running (the caller looks at the process itself)."""
        if pid <= 0:
            raise ValueError("the shim's waitpid takes one pid")
        with self.cond:
            while True:
                got = self.parked.pop(pid, None)
                if got is not None:
                    return pid, got[0]
                if options & os.WNOHANG:
                    return 0, 0
                if pid not in self.subs and not _is_child(pid):
                    raise ChildProcessError(10, "No child processes")
                self.cond.wait(1.0)

    def exclusive(self):
        return self.gate


def _is_child(pid):
    """pid is still ours and not yet reaped (a zombie counts): its /proc entry names us as parent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return int(data.rsplit(b")", 1)[1].split()[1]) == os.getpid()


def install(reaper):
    """Route the library's waits through the reaper (pyrunc.process.waiter)."""
    from ..process import waiter

    waiter.waitpid = reaper.waitpid
    waiter.exclusive = reaper.exclusive
