"""start: let a created container's init exec the user program.

Its own module, apart from lifecycle.py's create machinery: containerd execs `pyrunc start` for every container,
so this path loads the state store and nothing else of the library (posix, not os: pyrunc/launch.py).  Hooks are
the exception: a startContainer or poststart hook loads what it needs (lifecycle, hooks, the exec path) itself.
"""

import _signal  # the C module (`signal` imports enum), loaded by every interpreter
import posix
from time import monotonic, sleep  # time is built in and loaded by every interpreter

from .. import errors  # its classes are made when first named (errors.py)
from .state import FIFO, signal_init

SPIN = 0.0005  # how long release() looks for the init's byte before it polls (seconds)


def start(store, log, cid, runtime, wait=True):
    """The container is claimed under the lock (its exec fifo renamed: from then on it is "running", as under runc
    once `start` has read the fifo); the startContainer hooks, the wait for the init and the poststart hooks all
    run after the lock is released, so that they may call pyrunc on this container (and a concurrent
    pause/resume/delete is never stuck behind them).  runtime: a function returning the lifecycle.Runtime that
    runs hooks, called only if there are any.

    wait=False, for a foreground `run`, which waits on the init next anyway: unless poststart hooks must run once
    the process is started, the fifo is opened for reading and returned, open, instead of waited on (no poll: the
    init goes on whenever it gets there).  The caller keeps it open until the init is reaped, then asks
    started(fd) whether the init got as far as the fifo."""
    with store.lock(cid):
        c = store.load(cid)
        status = c.status()
        if status == "stopped":
            raise errors.StateError("cannot start a container that has stopped")
        if status == "running":
            raise errors.StateError("cannot start an already running container")
        if status != "created":
            raise errors.StateError(f"cannot start a container in the {status} state")
        fifo = f"{c.dir}/{FIFO}.start"
        posix.rename(f"{c.dir}/{FIFO}", fifo)
    hooks = c.doc.get("hooks") or {}
    try:
        if hooks.get("startContainer"):
            from .hooks import run_in_container

            run_in_container(runtime(), c, "startContainer")
        if not wait and not hooks.get("poststart"):
            reader = posix.open(fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
            posix.unlink(fifo)  # the init reopens the fifo through its own fd of it, not by this name
            if log.debug_enabled:
                log.debug(f"start {cid}: exec fifo opened, init pid {c.pid} runs the process when it gets there")
            return reader
        release(c, fifo)
        if log.debug_enabled:  # the message is built only under --debug
            log.debug(f"start {cid}: exec fifo released, init pid {c.pid} runs the process")
    except BaseException:
        # as under runc, where a failed startContainer hook ends the init: the container is stopped
        try:
            signal_init(c, _signal.SIGKILL)
        except errors.PyruncError:
            pass
        raise
    if hooks.get("poststart"):
        runtime()._hooks(c.doc, "poststart", c.pid, "running")
    return None


def started(fd):
    """After start(wait=False) and the init's end: whether the init wrote its byte (it got to the fifo and went
    on to exec the process) before it ended."""
    return bool(_byte(fd))


def release(c, path):
    """Open the exec fifo for reading: the init, blocked opening it for writing, goes on: it writes one byte and
    execs the user program.  In the usual start (the init has waited on the fifo since create) the byte is there
    microseconds later: it is looked for at once, giving the CPU up between looks (the init may have been woken on
    this one), for up to SPIN seconds; an init that is slower (not scheduled yet, or still on its way to the fifo
    when start follows create at once) is waited for with poll.  No sleep: the shortest one costs ~0.1 ms here (50
    us of timer slack), and `select` alone ~0.2 ms of CPU to import, 1-2% of the whole verb."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    try:
        deadline = monotonic() + SPIN
        while not _byte(fd):
            if monotonic() > deadline:
                _wait_byte(c, fd)
                break
            posix.sched_yield()
    finally:
        posix.close(fd)
    posix.unlink(path)


def _wait_byte(c, fd):
    """Poll for the init's byte, checking every 100 ms that the init lives (as runc does)."""
    import select

    poll = select.poll()
    poll.register(fd, select.POLLIN)
    while True:
        if poll.poll(100):
            if _byte(fd):
                return
            # readable without a byte: a writer came and went without writing (the init writes before it closes:
            # not the init, whose byte may still come); poll would say so at once again, so wait here instead
            sleep(0.01)
        if not c.alive() and not _byte(fd):  # the byte may have come between the poll and the check
            raise errors.StateError("container init process exited before start")


def _byte(fd):
    try:
        return posix.read(fd, 1)
    except BlockingIOError:  # a writer holds the fifo, without a byte yet
        return b""
