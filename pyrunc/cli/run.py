"""pyrunc run [-d] [--keep] ... ID: create and start in one go; in the foreground, pass stdio through, forward
signals, exit with the container's status (128+N when killed by signal N) and delete it afterwards."""

import os
import signal

from ..errors import PyruncError
from .common import failed, one_id, runtime

_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP}


def run(g, o, log):
    rt = runtime(g, log)
    cid = one_id(o, "run")
    try:
        c = rt.create(cid, o.bundle or ".", pid_file=o.pid_file, console_socket=o.console_socket,
                      no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring, preserve_fds=o.preserve_fds, fifo=False)
    except PyruncError as e:
        raise failed("run", e) from None
    rt._hooks(c.doc, "poststart", c.pid, "running")
    if o.detach:
        return 0
    status = wait_forwarding(c.pid)
    if not o.keep:
        rt.delete(cid, force=True)
    return status


def wait_forwarding(pid):
    """Forward every catchable signal to pid and reap children (we are their subreaper) until pid exits."""

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in signal.valid_signals():
        if sig in _NOT_FORWARDED or sig >= signal.SIGRTMIN:
            continue
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if wpid == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
