"""The few thread primitives the shim daemon uses, on the C module `_thread` alone.

`threading` imports functools, collections (with keyword, operator, reprlib, heapq...), _weakrefset and types:
~3 ms measured on the daemon's start-up path (and more on a loaded machine), before it can answer the first
Create.  The daemon needs locks, events, one condition per queue and thread-local flags, nothing else; threads
start with ttrpc.go.  Same semantics as threading's (the subset used here); the library never imports threading.
"""

import _thread
from time import monotonic as _time

Lock = _thread.allocate_lock
RLock = _thread.RLock
local = _thread._local


class Condition:
    """threading.Condition's wait/wait_for/notify/notify_all over a lock (an RLock by default)."""

    def __init__(self, lock=None):
        self._lock = RLock() if lock is None else lock
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._waiters = []

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def _release_save(self):
        if hasattr(self._lock, "_release_save"):  # an RLock held recursively: release every level
            return self._lock._release_save()
        self._lock.release()
        return None

    def _acquire_restore(self, state):
        if state is not None:
            self._lock._acquire_restore(state)
        else:
            self._lock.acquire()

    def wait(self, timeout=None):
        """Release the lock, wait for a notify (or timeout seconds), take it again; True unless timed out."""
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        state = self._release_save()
        got = False
        try:
            if timeout is None:
                waiter.acquire()
                got = True
            elif timeout > 0:
                got = waiter.acquire(True, timeout)
            return got
        finally:
            self._acquire_restore(state)
            if not got:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def wait_for(self, predicate, timeout=None):
        end = None if timeout is None else _time() + timeout
        result = predicate()
        while not result:
            if end is not None:
                left = end - _time()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        waiters, self._waiters = self._waiters[:n], self._waiters[n:]
        for w in waiters:
            w.release()

    def notify_all(self):
        self.notify(len(self._waiters))


class Event:
    """threading.Event: set, clear, is_set, wait(timeout) -> the flag."""

    def __init__(self):
        self._cond = Condition(Lock())
        self._flag = False

    def is_set(self):
        return self._flag

    def set(self):
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._flag = False

    def wait(self, timeout=None):
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag
