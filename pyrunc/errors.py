"""One exception class per kind of failure, and the Logger that reports them.

Messages are lowercase, carry no trailing period and name the thing that failed ("verb object: cause"), because
callers show them to users verbatim (containerd shows the last error line of the log) and some match on them
(see ../shared/CALLERS.md: "container does not exist", "container not running", ...).

The Logger lives here: every call loads this module anyway, and each module more costs ~0.1 ms of the start-up
of the hot verbs (pyrunc/launch.py).  Logs are an interface: logrus-style lines that
containerd and humans read.

text: time="2026-01-02T03:04:05Z" level=error msg="..."
json: {"level":"error","msg":"...","time":"2026-01-02T03:04:05Z"}

containerd-shim-runc-v2 shows users the msg of the LAST "level":"error" line of --log, so each failure is logged
exactly once, at the top, with the real reason.  Fatal errors also go to stderr when --log is a file (podman reads
stderr, never the log).
"""

import _thread
import posix as _posix  # not os: the hot verbs never import it (pyrunc/launch.py)
import time as _time

# The kinds of failure.  Their classes are made the first time any of them is named (PEP 562's module __getattr__,
# which `from pyrunc.errors import NotFound` and `errors.NotFound` both go through): creating a class costs ~20-30 us
# here, an exception class the most, seven of them as much as three small modules, and a hot verb that succeeds
# (state, start, kill, delete) names none of them (its modules name them where they raise or catch one).
KINDS = ("PyruncError", "UsageError", "ConfigError", "StateError", "NotFound", "Exists", "SysError", "NeedClick")
_LOCK = _thread.allocate_lock()  # the shim's threads: two first namings must not make two sets of classes


def __getattr__(name):
    if name not in KINDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _LOCK:
        if name not in globals():
            _define()
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(KINDS))


def _define():
    global PyruncError, UsageError, ConfigError, StateError, NotFound, Exists, SysError, NeedClick

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

    class NeedClick(Exception):
        """Not a failure: the fast parser (cli/main.py) hands this argv to click, for help or a usage error."""

    for cls in (PyruncError, UsageError, ConfigError, StateError, NotFound, Exists, SysError, NeedClick):
        cls.__qualname__ = cls.__name__  # as if made at the top level: tracebacks and pickle name errors.X


def syserror(op, path, exc):
    """Wrap an OSError raised by the stdlib into a SysError naming op and path."""
    return __getattr__("SysError")(op, path, getattr(exc, "errno", 0) or 0)  # a global name skips __getattr__


# --- the log -------------------------------------------------------------------------------------------------------

_APPEND = _posix.O_WRONLY | _posix.O_APPEND | _posix.O_CREAT | _posix.O_CLOEXEC  # os's own values


def _now():
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime())


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Logger:
    """Writes log lines to a file (or stderr); cheap to create, imports nothing heavy."""

    def __init__(self, path=None, fmt="text", debug=False):
        self.path = path or None
        self.fmt = fmt or "text"
        self.debug_enabled = bool(debug)

    def touch(self):
        """Create the log file now, as runc opens it at start-up: it exists after any call made with --log, and a
        path that cannot be opened fails the call (OSError) before it does anything."""
        if self.path:
            _posix.close(_posix.open(self.path, _APPEND, 0o644))

    def format(self, level, msg):
        if self.fmt == "json":  # json.dumps({...}, separators=(",", ":")) byte for byte, without json (re, enum)
            from _json import encode_basestring_ascii as q

            return f'{{"level":{q(level)},"msg":{q(msg)},"time":{q(_now())}}}'
        return f"time={_quote(_now())} level={level} msg={_quote(msg)}"

    def _write(self, level, msg):
        line = (self.format(level, msg) + "\n").encode()
        if self.path:
            try:
                fd = _posix.open(self.path, _APPEND, 0o644)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    _posix.write(fd, line)
                finally:
                    _posix.close(fd)
                return
        try:
            _posix.write(2, line)
        except OSError:
            pass

    def debug(self, msg):
        """A --debug line.  Off, it costs one attribute test; callers build costly messages only under
        `if log.debug_enabled:`."""
        if self.debug_enabled:
            self._write("debug", msg)

    def info(self, msg):
        self._write("info", msg)

    def warning(self, msg):
        self._write("warning", msg)

    def error(self, msg):
        """The fatal error of this call: to the log, and to stderr as well when the log is a file (the bare
        message, as runc prints it there: podman and people read stderr, containerd reads the log)."""
        self._write("error", msg)
        if self.path:
            try:
                _posix.write(2, (msg + "\n").encode())
            except OSError:
                pass
