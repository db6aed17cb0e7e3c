"""pyrunc/shim/sync.py: the daemon's Condition and Event on _thread alone behave as threading's."""

import _thread
import time

import pytest

from pyrunc.shim import sync
from pyrunc.shim.ttrpc import go, joined


def test_event_set_wakes_every_waiter():
    ev = sync.Event()
    assert not ev.is_set() and ev.wait(0) is False
    got = []
    done = [go(lambda: got.append(ev.wait(10.0))) for _ in range(3)]
    ev.set()
    assert all(joined(d, 10.0) for d in done)
    assert got == [True, True, True] and ev.is_set() and ev.wait() is True
    ev.clear()
    assert not ev.is_set()


def test_event_wait_times_out():
    ev = sync.Event()
    t = time.monotonic()
    assert ev.wait(0.05) is False
    assert time.monotonic() - t >= 0.05


@pytest.mark.parametrize("lock", [None, _thread.allocate_lock()])
def test_condition_wait_releases_the_lock_and_notify_wakes_one(lock):
    cond = sync.Condition(lock)
    items, got = [], []
    entered = _thread.allocate_lock()
    entered.acquire()

    def consumer():
        with cond:
            entered.release()
            got.append(cond.wait_for(lambda: items, 10.0))

    done = go(consumer)
    assert entered.acquire(timeout=10.0)
    with cond:  # the consumer waits without holding the lock
        items.append(1)
        cond.notify()
    assert joined(done, 10.0) and got == [[1]]


def test_condition_wait_under_a_recursively_held_rlock():
    cond = sync.Condition()
    flag = []
    entered = _thread.allocate_lock()
    entered.acquire()

    def waiter():
        with cond, cond:  # held twice: wait releases both levels and takes both back
            entered.release()
            cond.wait_for(lambda: flag, 10.0)
            flag.append("back")

    done = go(waiter)
    assert entered.acquire(timeout=10.0)
    with cond:
        flag.append(1)
        cond.notify_all()
    assert joined(done, 10.0) and flag == [1, "back"]
    assert cond._lock.acquire(blocking=False)  # nothing left held
    cond._lock.release()


def test_condition_wait_for_times_out_and_forgets_the_waiter():
    cond = sync.Condition()
    with cond:
        assert cond.wait_for(lambda: False, 0.05) is False
        assert cond.wait(0.01) is False
    assert cond._waiters == []
    cond.notify_all()  # nobody waits: nothing to release


def test_workers_reuse_an_idle_thread_and_start_one_when_all_are_busy():
    from pyrunc.shim.ttrpc import _Workers

    w = _Workers()
    seen, done = [], sync.Condition()

    def job(tag, gate=None):
        if gate is not None:
            assert gate.acquire(timeout=10.0)
        with done:
            seen.append((tag, _thread.get_ident()))
            done.notify_all()

    w.submit(job, "first")
    with done:
        assert done.wait_for(lambda: len(seen) == 1, 10.0)
    deadline = time.monotonic() + 10  # the first worker goes idle right after its job
    while not w.idle:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    gate = _thread.allocate_lock()
    gate.acquire()
    w.submit(job, "blocked", gate)  # takes the idle worker and blocks in it
    w.submit(job, "second")  # nobody idle: a new thread, not a wait behind the blocked job
    with done:
        assert done.wait_for(lambda: len(seen) == 2, 10.0)
    gate.release()
    with done:
        assert done.wait_for(lambda: len(seen) == 3, 10.0)
    tags = dict(seen)
    assert seen[1][0] == "second" and tags["blocked"] == tags["first"] != tags["second"]
