"""child.default_signals: the container process starts with runc's clean slate: nothing ignored, nothing blocked
(an ignored disposition and the blocked mask survive execve; a handler does not, the kernel resets it)."""

import os
import signal

from pyrunc.process import child


# the signals Python can set (glibc keeps 32 and 33 for itself: a caller's SIG_IGN on them, which `make` can pass
# down, is out of Python's reach, as it was before)
SETTABLE = sum(1 << (s - 1) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP))


def _status(field):
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")), 16) & SETTABLE


def _in_child(setup):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            setup()
            ignored = bin(_status("SigIgn")).count("1")
            calls = []
            real = child.signal.signal
            child.signal.signal = lambda *a: calls.append(a[0]) or real(*a)
            try:
                child.default_signals()
            finally:
                child.signal.signal = real
            os.write(w, f"{_status('SigIgn')} {_status('SigBlk')} {len(calls)} {ignored}".encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.waitpid(pid, 0)
        return [int(x) for x in os.read(r, 100).split()]
    finally:
        os.close(r)


def test_ignored_and_blocked_signals_are_cleared_with_a_call_per_ignored_signal():
    def setup():
        for s in (signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR2, signal.SIGRTMIN + 3):
            signal.signal(s, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, lambda *a: None)  # a handler: execve resets it, nothing to do
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

    ign, blk, calls, ignored = _in_child(setup)
    assert (ign, blk) == (0, 0)
    assert calls == ignored >= 4  # one per ignored signal (ours and Python's SIGXFSZ), not ~60 sigaction calls
