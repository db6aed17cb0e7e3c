"""One exception class per kind of failure.

Messages are lowercase, carry no trailing period and name the thing that failed ("verb object: cause"), because
callers show them to users verbatim (containerd shows the last error line of the log) and some match on them
(see ../shared/CALLERS.md: "container does not exist", "container not running", ...).
"""

import posix as _posix  # not os: the hot verbs never import it (pyrunc/launch.py)


class PyruncError(Exception):
    """Base class: str(e) is the message shown to the user; exit code 1 unless a subclass says otherwise."""

    exit_code = 1


class UsageError(PyruncError):
    """Bad command line."""


class ConfigError(PyruncError):
    """config.json (or a process.json / resources JSON) is malformed or asks for something invalid."""


class StateError(PyruncError):
    """The operation does not fit the container's state (not running, not stopped, ...)."""


class NotFound(PyruncError):
    """The container does not exist."""


class Exists(PyruncError):
    """A container with that id exists already."""


class SysError(PyruncError):
    """A system call failed: keeps the errno so callers (and tests) can look at it."""

    def __init__(self, op, path=None, err=None):
        self.errno = err or 0
        self.op = op
        self.path = path
        cause = _posix.strerror(err).lower() if err else "failed"
        name = ""
        if err:
            import errno  # builtin, but not loaded by the interpreter: only when a syscall failed

            name = errno.errorcode.get(err, "")
        where = f" {path}" if path is not None else ""
        super().__init__(f"{op}{where}: {cause}" + (f" ({name})" if name else ""))


def syserror(op, path, exc):
    """Wrap an OSError raised by the stdlib into a SysError naming op and path."""
    return SysError(op, path, getattr(exc, "errno", 0) or 0)
