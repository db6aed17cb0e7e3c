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


def test_a_list_read_before_the_fork_is_used_as_is():
    """The parent reads which signals are ignored before it forks (ignored_signals): the init then makes one
    call per signal in the list and none to look (Python work in the just-forked init costs copy-on-write
    faults)."""
    before = child.ignored_signals()

    def setup():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)

    def look(*a):
        raise AssertionError("getsignal called")

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            setup()
            ignored = child.ignored_signals()
            child.signal.getsignal = look
            child.default_signals(ignored)
            os.write(w, f"{_status('SigIgn')} {sorted(ignored)}".encode())
        except BaseException as e:  # noqa: BLE001
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 1000).decode()
    os.close(r)
    assert out.startswith("0 "), out
    assert str(int(signal.SIGPIPE)) in out and str(int(signal.SIGUSR2)) in out
    assert signal.SIGUSR2 not in before


def test_the_init_never_collects_garbage():
    """A collection in the just-forked init would write the header of every object it walks (a copy-on-write
    fault per page): run_stage turns the collector off first."""
    import gc

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child.run_stage(lambda *a: os.write(w, b"1" if gc.isenabled() else b"0"), None, None, None, None)
        finally:
            os._exit(1)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 10) == b"0"
    os.close(r)
