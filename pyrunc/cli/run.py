"""pyrunc run [-d] [--keep] ... ID: create and start in one go; in the foreground, pass stdio through (a terminal
is proxied, window size included), forward signals, exit with the container's status (128+N when killed by signal
N) and delete it afterwards."""

import _signal as signal  # the C module: `signal` imports enum (README, Speed)
from .. import gc_for_a_long_wait, osx as os

from ..errors import PyruncError, UsageError
from .common import failed, runtime
from .main import one_id

# runc forwards every signal but SIGCHLD (it reaps), SIGWINCH (it resizes the terminal) and SIGURG (the Go
# runtime's own); SIGKILL and SIGSTOP cannot be caught.  The real-time signals are forwarded too: SIGRTMIN+3 is
# systemd's stop signal, and left at its default action it would kill pyrunc and orphan the container.
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGKILL, signal.SIGSTOP}


def _peek_config(bundle):
    """config.json, read once for a foreground run's own choices (a terminal? a user namespace?) and handed to
    create (which validates it), or None: a missing or malformed file is create's to read and report."""
    from .. import fastjson  # not `json`: it imports `re` (~5 ms)

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            cfg = fastjson.loads(f.read())
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _wants_tty(cfg):
    try:
        return bool((cfg.get("process") or {}).get("terminal"))
    except AttributeError:
        return False  # create reports it properly


def _wants_userns(cfg):
    """A user namespace, new or joined (see _own_pipes)?  Here rather than process/stdio_pipes.py: a run without
    one then never loads that module."""
    try:
        return any(ns.get("type") == "user" for ns in (cfg.get("linux") or {}).get("namespaces") or ())
    except AttributeError:
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
    peeked = None if o.detach else _peek_config(bundle)
    cfg = peeked or {}
    if not o.detach and not o.console_socket and _wants_tty(cfg):
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # Catch signals before the container exists, as runc does (its handler is installed before it starts the
    # container): a SIGTERM arriving while the container is created or just after it started is kept and
    # forwarded once the init's pid is known, instead of killing pyrunc and orphaning a running container.
    fwd = None if o.detach else Forwarder()
    pipes = _own_pipes(o, cfg, ours)
    c = reader = None
    try:
        c = rt.create(cid, bundle, pid_file=o.pid_file, console_socket=o.console_socket, console=theirs,
                      no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring, preserve_fds=o.preserve_fds,
                      pidfd_socket=o.pidfd_socket, stdio=pipes and pipes.theirs, config=peeked)
        if pipes:
            pipes.hand_over(c.pid, ((c.doc["config"].get("process") or {}).get("user") or {}).get("uid", 0))
        reader = rt.start(cid, wait=o.detach)  # run is create + start, hooks and all; in the foreground the
        # exec fifo stays open for reading while run waits on the init (start.py: no poll for the init's byte)
    except PyruncError as e:
        if fwd is not None:
            fwd.stop()
        if pipes:
            pipes.close()
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
    fwd.attach(c.pid)
    gc_for_a_long_wait()
    try:
        if ours is not None:
            from ..process.console import proxy, recv_master

            status = proxy(recv_master(ours), c.pid, reap)
            ours.close()
        else:
            status = reap(c.pid, True)
    finally:
        fwd.stop()  # the init is reaped: nothing may be sent to its pid any more, and delete runs undisturbed
        ran = True
        if reader is not None:
            from ..container.start import started

            ran = started(reader)
            os.close(reader)
    if not o.keep:
        _delete(rt, log, cid)
    if pipes:
        pipes.wait()  # every writer is gone: the init and, with delete, the rest of the container
    if not ran:  # what start says of an init that never got to the fifo
        from ..errors import StateError

        raise failed("run", StateError("container init process exited before start"))
    return status


def _delete(rt, log, cid):
    """The container, once its init is reaped: with its own pid and mount namespaces (the default config) the
    kernel killed all of it, and the quick delete (the lock, one rmdir per cgroup dir, the state dir: what
    `pyrunc delete` does for a stopped container) is enough; anything else, or a cgroup still busy while the
    killed processes leave it, goes to the full delete (kill, wait, retries), as before."""
    from ..container.state import quick

    try:
        if quick(rt.store, log, cid, True):
            return
    except PyruncError:  # a state the quick path cannot read: the full delete says what is wrong
        pass
    rt.delete(cid, force=True)


def _own_pipes(o, cfg, tty):
    """A foreground run without a terminal in a user namespace gets pipes of pyrunc's own (runc's, always in the
    foreground): see process/stdio_pipes.py."""
    if o.detach or tty is not None or not _wants_userns(cfg):
        return None
    from ..process.stdio_pipes import Pipes

    return Pipes()


class Forwarder:
    """Catches every signal runc forwards from now on: kept while the process does not exist yet (runc installs
    its handler before it starts the container, so an early SIGTERM cannot kill pyrunc and orphan a running
    container), then sent to the process through a pidfd (never to a pid that may have been recycled).  stop()
    puts back the dispositions it replaced.  Only in this process: the init protocol's forked stages inherit the
    handler until they exec, and ignore it."""

    def __init__(self):
        self.me, self.pidfd, self.pending, self.saved = os.getpid(), None, [], {}
        for sig in signal.valid_signals():
            if sig not in _NOT_FORWARDED:
                try:
                    self.saved[sig] = signal.signal(sig, self._on_signal)
                except (OSError, ValueError):  # glibc's reserved real-time signals
                    pass

    def _on_signal(self, sig, _frame):
        if os.getpid() != self.me:
            return
        if self.pidfd is None:
            self.pending.append(sig)
        else:
            self._send(sig)

    def _send(self, sig):
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except OSError:  # gone (ESRCH); never raise inside a signal handler
            pass

    def attach(self, pid):
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:  # already gone: nothing to forward to
            self.pidfd = -1
        pending, self.pending = self.pending, []
        for sig in pending:
            self._send(sig)

    def stop(self):
        for sig, old in self.saved.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self.saved = {}
        if self.pidfd is not None and self.pidfd >= 0:
            os.close(self.pidfd)
        self.pidfd = -1


def forward_signals(pid):
    """Forward signals to pid from now on; returns the Forwarder (stop() it once pid is reaped)."""
    fwd = Forwarder()
    fwd.attach(pid)
    return fwd


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
