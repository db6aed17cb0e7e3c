"""pyrunc.cli.run.Forwarder without root: which signals it catches, that it keeps them until the process is
known and then sends them through a pidfd to a real child process, and that stop() restores the dispositions."""

import os
import signal
import subprocess
import sys

import pytest

from pyrunc.cli.run import Forwarder

# a child that reports the signals it receives, one number a line, after saying it is ready
CHILD = r"""
import os, signal, sys
def note(sig, _):
    os.write(1, b"%d\n" % sig)
    if sig == signal.SIGTERM:
        os._exit(0)
for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGRTMIN + 3, signal.SIGRTMAX, signal.SIGHUP):
    signal.signal(s, note)
os.write(1, b"ready\n")
while True:
    signal.pause()
"""


def _lines(proc, n):
    return [proc.stdout.readline().strip() for _ in range(n)]


@pytest.fixture
def child():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    yield p
    p.kill()
    p.wait(timeout=10)
    p.stdout.close()


def test_catches_what_runc_forwards():
    before = {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}
    fwd = Forwarder()
    try:
        caught = set(fwd.saved)
        assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGPIPE,
                signal.SIGTSTP, signal.SIGRTMIN, signal.SIGRTMIN + 3, signal.SIGRTMAX} <= caught
        assert not caught & {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGKILL, signal.SIGSTOP}
        assert signal.getsignal(signal.SIGRTMIN + 3) == fwd._on_signal
    finally:
        fwd.stop()
    assert {s: signal.getsignal(s) for s in before} == before


def test_early_signals_are_kept_then_forwarded_through_a_pidfd(child):
    fwd = Forwarder()
    try:
        os.kill(os.getpid(), signal.SIGRTMIN + 3)  # before the process is known: kept (and pyrunc survives)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert sorted(fwd.pending) == sorted([signal.SIGRTMIN + 3, signal.SIGUSR1])
        fwd.attach(child.pid)
        assert sorted(_lines(child, 2)) == sorted([str(int(signal.SIGRTMIN + 3)), str(int(signal.SIGUSR1))])
        os.kill(os.getpid(), signal.SIGRTMAX)
        assert _lines(child, 1) == [str(int(signal.SIGRTMAX))]
        os.kill(os.getpid(), signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        fwd.stop()
    assert fwd.pidfd == -1 and fwd.saved == {}


def test_after_stop_nothing_is_forwarded(child):
    fwd = Forwarder()
    fwd.attach(child.pid)
    fwd.stop()
    old = signal.signal(signal.SIGHUP, lambda *_: None)  # stop() gave SIGHUP back: a handler of ours now
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        child.send_signal(signal.SIGUSR1)  # the control: the child still reports what it receives
        assert _lines(child, 1) == [str(int(signal.SIGUSR1))]  # and SIGHUP never reached it
    finally:
        signal.signal(signal.SIGHUP, old)
