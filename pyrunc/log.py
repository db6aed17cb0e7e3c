"""Logs are an interface: logrus-style lines that containerd and humans read.

text: time="2026-01-02T03:04:05Z" level=error msg="..."
json: {"level":"error","msg":"...","time":"2026-01-02T03:04:05Z"}

containerd-shim-runc-v2 shows users the msg of the LAST "level":"error" line of --log, so each failure is logged
exactly once, at the top, with the real reason.  Fatal errors also go to stderr when --log is a file (podman reads
stderr, never the log).
"""

import posix  # not os (pyrunc/launch.py); the flags are os's own values
import time

_APPEND = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
            posix.close(posix.open(self.path, _APPEND, 0o644))

    def format(self, level, msg):
        if self.fmt == "json":  # json.dumps({...}, separators=(",", ":")) byte for byte, without json (re, enum)
            from _json import encode_basestring_ascii as q

            return f'{{"level":{q(level)},"msg":{q(msg)},"time":{q(_now())}}}'
        return f"time={_quote(_now())} level={level} msg={_quote(msg)}"

    def _write(self, level, msg):
        line = (self.format(level, msg) + "\n").encode()
        if self.path:
            try:
                fd = posix.open(self.path, _APPEND, 0o644)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    posix.write(fd, line)
                finally:
                    posix.close(fd)
                return
        try:
            posix.write(2, line)
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
                posix.write(2, (msg + "\n").encode())
            except OSError:
                pass
