"""How the library waits for the children it forks (stage A, the id-map helper, exec'd hooks) and for the
processes it runs with subprocess (hooks).

The CLI uses os.waitpid as is.  A containerd shim is a subreaper with ONE reaper (a wait4(-1) loop on SIGCHLD)
for every child it has, container inits included; a second waiter would steal exit statuses from it, or it from
the library (SHIM.md §6).  The shim replaces `waitpid` with a call that takes the status from its reaper, and
`exclusive` with a lock that holds the reaper off while subprocess waits for its own child.  Callers look the
attributes up at call time (`waiter.waitpid(...)`), so the replacement applies everywhere.
"""

from .. import osx as os

waitpid = os.waitpid


class _Free:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_FREE = _Free()


def exclusive():
    """Context for code that waits on its child itself (subprocess.run): nobody else reaps meanwhile."""
    return _FREE
