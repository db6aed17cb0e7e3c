"""`os` for create, run and the init protocol, without importing `os`.

`import os` costs ~1.5-2.5 ms on this VM, on every create and run: os runs _collections_abc (a hundred ABC
classes), stat, posixpath and genericpath.  The verbs only need what `posix`, the C module every interpreter has
loaded, already holds, and a few of os.path's functions on str paths.  So a module on those paths writes
`from .. import osx as os` and keeps its `os.open(...)`, `os.path.join(...)`: the calls are posix's own, and
`path` below has the same results as posixpath for str arguments (tests/unit/test_osx.py compares them).

What os has and this has not (walk, makedirs, fdopen, the os.path functions not below...) is an AttributeError
here: a rare path imports os itself, in the function that needs it.  So is `environ` (posix's has bytes keys,
where `os.environ.get("X")` would quietly find nothing): read the environment with getenv(), as os has it.
"""

import sys as _sys
from posix import *  # noqa: F401,F403  (posix has no __all__: every public name, as os re-exports them)
from posix import environ as _environb
from posix import lstat as _lstat
from posix import open as _open
from posix import readlink as _readlink
from posix import close as _close

from . import abspath as _abspath, exists as _exists, isdir as _isdir  # the state store's too

del environ  # noqa: F821  (posix's bytes mapping: getenv() below)
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
sep = "/"


def fsencode(name):
    """os.fsencode, for this interpreter's file system encoding (utf-8, surrogateescape on Linux)."""
    return name if isinstance(name, bytes) else name.encode(_sys.getfilesystemencoding(), "surrogateescape")


def fsdecode(name):
    """os.fsdecode, as fsencode."""
    return name if isinstance(name, str) else name.decode(_sys.getfilesystemencoding(), "surrogateescape")


def getenv(key, default=None):
    """os.getenv: os.environ's value when os is loaded (the shim, a test: it may have been changed since start),
    else the environment the process started with, decoded as os decodes it."""
    os = _sys.modules.get("os")
    if os is not None:
        return os.environ.get(key, default)
    value = _environb.get(fsencode(key))
    return default if value is None else fsdecode(value)


class path:
    """The os.path functions create and run use, on str paths, with posixpath's results."""

    @staticmethod
    def join(a, *p):
        for b in p:
            if b.startswith("/"):
                a = b
            elif not a or a.endswith("/"):
                a += b
            else:
                a += "/" + b
        return a

    @staticmethod
    def split(p):
        i = p.rfind("/") + 1
        head, tail = p[:i], p[i:]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head, tail

    @staticmethod
    def dirname(p):
        return path.split(p)[0]

    @staticmethod
    def basename(p):
        return p[p.rfind("/") + 1:]

    @staticmethod
    def normpath(p):
        if not p:
            return "."
        # POSIX: exactly two leading slashes are kept, one or three and more become one
        lead = 2 if p.startswith("//") and not p.startswith("///") else 1 if p.startswith("/") else 0
        out = []
        for part in p.split("/"):
            if part in ("", "."):
                continue
            if part != ".." or (not lead and not out) or (out and out[-1] == ".."):
                out.append(part)
            elif out:
                out.pop()
        return "/" * lead + "/".join(out) or "."

    abspath = staticmethod(_abspath)

    @staticmethod
    def relpath(p, start="."):
        if not p:
            raise ValueError("no path specified")
        a = [x for x in path.abspath(start).split("/") if x]
        b = [x for x in path.abspath(p).split("/") if x]
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        rel = [".."] * (len(a) - n) + b[n:]
        return "/".join(rel) if rel else "."

    @staticmethod
    def realpath(p):
        """The path the kernel gives for p opened with O_PATH: symlinks resolved, as os.path.realpath for a path
        that exists; os's own for one that does not (where realpath resolves what it can)."""
        try:
            fd = _open(p, O_PATH | O_CLOEXEC)  # noqa: F405
        except OSError:
            import os

            return os.path.realpath(p)
        try:
            return _readlink(f"/proc/self/fd/{fd}")
        finally:
            _close(fd)

    exists = staticmethod(_exists)
    isdir = staticmethod(_isdir)

    @staticmethod
    def islink(p):
        try:
            return _lstat(p).st_mode & 0o170000 == 0o120000
        except (OSError, ValueError):
            return False
