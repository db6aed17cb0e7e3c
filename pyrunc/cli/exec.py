"""pyrunc exec [options] ID [COMMAND [ARGS...]]: run a new process inside a running container.

Foreground: stdio passes through (a terminal is proxied), signals are forwarded, and the exit status is the
process's (128+N when killed by signal N).  -d/--detach returns once the process runs (with --pid-file).
As with runc, a failure before the process runs (no such container, paused or stopped, a bad --cgroup, an
unwritable --pid-file, no such program) exits 255 with "exec failed: ...": callers tell it from the process's own
status that way."""

from .. import gc_for_a_long_wait
from ..errors import PyruncError, UsageError
from .common import runtime


def run(g, o, log):
    if not o.args:
        raise UsageError('"exec" requires a minimum of 1 argument')
    try:
        pid, ours = _start(g, o, log)
    except PyruncError as e:
        err = PyruncError(f"exec failed: {e}")
        err.exit_code = 255
        raise err from None
    if o.detach:
        return 0
    from .run import forward_signals, reap

    forward_signals(pid)
    gc_for_a_long_wait()
    if ours is not None:
        from ..process.console import proxy, recv_master

        return proxy(recv_master(ours), pid, reap)
    return reap(pid, True)


def _start(g, o, log):
    from ..container.execute import build_process, exec_process

    if o.apparmor or o.process_label:  # refused on every host until applied (process_plan refuses the fields)
        flag = "--apparmor" if o.apparmor else "--process-label"
        raise UsageError(f"exec {flag}: apparmor profiles and selinux labels are not supported by pyrunc yet")
    rt = runtime(g, log)
    cid = o.args[0]
    proc = build_process(rt.store.load(cid).doc, o)
    ours = theirs = None
    if proc.get("terminal") and not o.console_socket:
        if o.detach:
            raise UsageError("cannot allocate tty if pyrunc will detach without setting console socket")
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = exec_process(rt, cid, proc, console_socket=o.console_socket, console=theirs, pid_file=o.pid_file,
                           preserve_fds=o.preserve_fds, ignore_paused=o.ignore_paused,
                           pidfd_socket=o.pidfd_socket, cgroup=o.cgroup)
    finally:
        if theirs is not None:
            theirs.close()
    return pid, ours
