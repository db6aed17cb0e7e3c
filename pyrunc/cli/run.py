"""pyrunc run [-d] [--keep] ... ID: create and start in one go; in the foreground, pass stdio through (a terminal
is proxied, window size included), forward signals, exit with the container's status (128+N when killed by signal
N) and delete it afterwards."""

import os
import signal

from ..errors import PyruncError, UsageError
from .common import failed, one_id, runtime

_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH}


def _wants_tty(bundle):
    import json

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            return bool((json.loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return False  # create reports it properly


def bundle_and_id(o, log):
    """(bundle, id).  `pyrunc run DIR/`: an only argument holding a `/` (never part of a container id) is the
    bundle, and the id is its directory's name (characters an id may not hold become `_`) plus 6 random hex
    digits, so the same bundle can run twice; --debug says which id was chosen."""
    arg = one_id(o, "run")
    if "/" not in arg:
        return o.bundle or ".", arg
    if o.bundle:
        raise UsageError(f"run: bundle given twice: --bundle {o.bundle} and the argument {arg}")
    from ..container.state import _ID_CHARS

    name = os.path.basename(os.path.abspath(arg)) or "bundle"
    name = "".join(c if c in _ID_CHARS else "_" for c in name).lstrip(".")[:64] or "bundle"
    cid = f"{name}-{os.urandom(3).hex()}"
    log.debug(f"run: bundle {arg}, container id {cid}")
    return arg, cid


def run(g, o, log):
    rt = runtime(g, log, create=True)
    bundle, cid = bundle_and_id(o, log)
    if o.no_subreaper and not o.detach:
        # the init protocol needs pyrunc to be its init's subreaper (stage B re-parents to us), and a foreground
        # run reaps it; refused rather than ignored.  Detached, runc is no subreaper either: nothing to do.
        raise UsageError("run --no-subreaper: not supported in the foreground (pyrunc reaps the container's init "
                         "as its subreaper)")
    ours = theirs = None
    if not o.detach and not o.console_socket and _wants_tty(bundle):
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # Catch signals before the container exists, as runc does (its handler is installed before it starts the
    # container): a SIGTERM arriving while the container is created or just after it started is kept and
    # forwarded once the init's pid is known, instead of killing pyrunc and orphaning a running container.
    pending = None if o.detach else _catch_early()
    c = None
    try:
        c = rt.create(cid, bundle, pid_file=o.pid_file, console_socket=o.console_socket, console=theirs,
                      no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring, preserve_fds=o.preserve_fds,
                      pidfd_socket=o.pidfd_socket)
        rt.start(cid)  # run is create + start, hooks and all
    except PyruncError as e:
        if c is not None:  # created but not started (a startContainer hook failed): leave nothing, like runc
            try:
                rt.delete(cid, force=True)
            except PyruncError:
                pass
        raise failed("run", e) from None
    finally:
        if theirs is not None:
            theirs.close()
    if o.detach:
        return 0
    forward_signals(c.pid)
    for sig in pending:
        _send(c.pid, sig)
    if ours is not None:
        from ..process.console import proxy, recv_master

        status = proxy(recv_master(ours), c.pid, reap)
        ours.close()
    else:
        status = reap(c.pid, True)
    if not o.keep:
        rt.delete(cid, force=True)
    return status


def _catchable():
    return [sig for sig in signal.valid_signals() if sig not in _NOT_FORWARDED and sig < signal.SIGRTMIN]


def _catch_early():
    """Record catchable signals (in this process only: the init protocol's forked stages inherit the handler)."""
    pending, me = [], os.getpid()

    def keep(sig, _frame):
        if os.getpid() == me:
            pending.append(sig)

    for sig in _catchable():
        try:
            signal.signal(sig, keep)
        except (OSError, ValueError):
            pass
    return pending


def _send(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def forward_signals(pid):
    def forward(sig, _frame):
        _send(pid, sig)

    for sig in _catchable():
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass


def reap(pid, block):
    """Reap our children (we are their subreaper); return pid's exit status once it has exited, else None."""
    while True:
        try:
            wpid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if wpid == 0:
            return None
        if wpid == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
