"""The shim's one reaper (no root): statuses go to the subscriber or to the library's waitpid, never lost,
whoever comes first; exclusive() keeps subprocess's own wait working.  Synchronised on the exits themselves
(a pipe each child closes), never on sleeps."""

import os
import signal
import subprocess
import threading

import pytest

from pyrunc.process import waiter
from pyrunc.shim.reaper import Reaper, exit_code, install


def _child(code, gate=None):
    """A child exiting with code, at once, or (gate = a pipe) when the parent closes the pipe's write end."""
    pid = os.fork()
    if pid == 0:
        if gate is not None:
            os.close(gate[1])
            os.read(gate[0], 1)
        os._exit(code)
    return pid


def _reap_until(rp, done, timeout=10):
    """What the daemon's main thread does on SIGCHLD, driven by hand until done() holds."""
    import time

    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "reaper did not deliver in time"
        rp.reap()
        time.sleep(0.001)


def test_exit_code():
    assert exit_code(7 << 8) == 7
    assert exit_code(signal.SIGKILL) == 137


def test_subscriber_gets_status_reaped_before_and_after_subscribing():
    rp = Reaper()
    got = {}
    early = _child(3)
    _reap_until(rp, lambda: early in rp.parked)  # exited before anyone knew its pid: parked
    rp.subscribe(early, lambda st: got.__setitem__("early", exit_code(st)))
    assert got == {"early": 3} and early not in rp.parked
    r, w = os.pipe()
    late = _child(4, (r, w))
    rp.subscribe(late, lambda st: got.__setitem__("late", exit_code(st)))
    os.close(w)
    _reap_until(rp, lambda: "late" in got)
    os.close(r)
    assert got["late"] == 4


def test_library_waitpid_through_the_reaper():
    rp = Reaper()
    r, w = os.pipe()
    pid = _child(5, (r, w))
    assert rp.waitpid(pid, os.WNOHANG) == (0, 0)
    res = []
    t = threading.Thread(target=lambda: res.append(rp.waitpid(pid, 0)))
    t.start()
    os.close(w)
    _reap_until(rp, lambda: res)
    t.join(10)
    os.close(r)
    assert res[0][0] == pid and os.waitstatus_to_exitcode(res[0][1]) == 5
    with pytest.raises(ChildProcessError):
        rp.waitpid(pid, 0)  # consumed, not ours any more


def test_exclusive_lets_subprocess_wait_for_its_child():
    rp = Reaper()
    saved = waiter.waitpid, waiter.exclusive
    install(rp)
    try:
        stop = threading.Event()

        def reaper_loop():
            while not stop.is_set():
                rp.reap()
                stop.wait(0.001)

        t = threading.Thread(target=reaper_loop)
        t.start()
        try:
            for _ in range(5):
                with waiter.exclusive():
                    p = subprocess.run(["sh", "-c", "exit 9"], timeout=30)
                assert p.returncode == 9  # without the gate the reaper may take it (then Python says 0)
        finally:
            stop.set()
            t.join(10)
    finally:
        waiter.waitpid, waiter.exclusive = saved
