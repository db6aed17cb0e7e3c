"""pyrunc.cgroups.warm: the early write that readies the cgroup migration lock moves nothing and fails quietly."""

import errno
import os

import pytest

from pyrunc.cgroups import warm


def test_writes_our_pid_to_our_own_cgroup2_procs(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("12:pids:/x\n0::/user.slice/me.scope\n")
    unified = tmp_path / "unified"
    (unified / "user.slice" / "me.scope").mkdir(parents=True)
    procs = unified / "user.slice" / "me.scope" / "cgroup.procs"
    procs.write_text("")
    path = warm.own_procs_file(str(proc), (str(tmp_path / "nothing-here"), str(unified)))
    assert path == str(procs)
    w = warm.start(path)
    w.wait()
    assert w.result == 0 and procs.read_text() == str(os.getpid())


def test_no_cgroup2_line_or_mount_means_no_write(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("12:pids:/x\n")
    assert warm.own_procs_file(str(proc), (str(tmp_path),)) is None
    (proc / "self" / "cgroup").write_text("0::/a\n")
    assert warm.own_procs_file(str(proc), (str(tmp_path),)) is None  # no such cgroup dir under the mount
    w = warm.start(str(tmp_path / "missing" / "cgroup.procs"))
    w.wait()
    assert w.result == errno.ENOENT  # an error is kept, never raised


def test_real_warmup_leaves_us_where_we_are(needs_root):
    path = warm.own_procs_file()
    if path is None:
        pytest.skip("no cgroup2 mount holding our cgroup")
    with open("/proc/self/cgroup") as f:
        before = f.read()
    w = warm.start(path)
    w.wait()
    assert w.result == 0, os.strerror(w.result)  # the kernel took the write: a migration to where we are
    with open("/proc/self/cgroup") as f:
        assert f.read() == before


def test_switch_interval_fast_only_until_the_first_write_and_no_thread_is_left(tmp_path):
    """Fast while a first write is pending (a fifo without a reader holds both threads in open()), Python's own
    again once both first writes are done: the keep-alive writes force no switch.  Before: fast until wait()."""
    import _thread
    import sys
    import time

    before, threads = sys.getswitchinterval(), _thread._count()
    fifo = str(tmp_path / "cgroup.procs")
    os.mkfifo(fifo)
    a = warm.start(fifo)
    b = warm.start(fifo)  # two at once (a shim's threads): the first interval comes back after the last
    assert abs(sys.getswitchinterval() - warm.SWITCH_INTERVAL) < 1e-6
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: their opens and first writes go through
    try:
        deadline = time.monotonic() + 10
        while (a.writes < 1 or b.writes < 1) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert a.writes >= 1 and b.writes >= 1
        deadline = time.monotonic() + 10  # each thread gives the interval back right after its first write
        while sys.getswitchinterval() != before and time.monotonic() < deadline:
            time.sleep(0.001)
        assert sys.getswitchinterval() == before
        b.stop()  # a create that failed early: no wait
        b.stop()
        a.wait()
        b.wait()
        assert sys.getswitchinterval() == before
    finally:
        os.close(r)
    assert _thread._count() == threads and (a.result, b.result) == (0, 0)


def test_keeps_writing_until_told_to_end(tmp_path):
    """The lock stays ready only ~one grace period after its last writer: the thread keeps writing (every
    KEEP_ALIVE) until wait(), so a create that reaches its first container write late does not pay twice."""
    import _thread
    import time

    threads = _thread._count()
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    w = warm.start(str(procs))
    deadline = time.monotonic() + 10
    while w.writes < 3 and time.monotonic() < deadline:  # the main thread stays busy, as create is
        sum(range(10000))
    assert w.writes >= 3 and w.result == 0
    w.wait()
    done = w.writes
    assert _thread._count() == threads  # the thread is gone: nothing writes after wait()
    assert procs.read_text() == str(os.getpid()) * done


def test_stop_alone_ends_the_thread(tmp_path):
    import _thread
    import time

    threads = _thread._count()
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    w = warm.start(str(procs))
    w.stop()  # a create that failed early: no wait, and still no thread left writing
    deadline = time.monotonic() + 10
    while _thread._count() > threads and time.monotonic() < deadline:
        time.sleep(0.001)
    assert _thread._count() == threads
