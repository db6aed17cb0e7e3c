"""Writing a caller's config file: backup first, then an atomic replace; nothing happens when nothing changes."""

import os
import shutil
import sys
import time

from . import GlueError


def default_binary():
    """The installed pyrunc: on PATH, else next to this Python (a virtualenv's bin/); None if neither."""
    found = shutil.which("pyrunc")
    if found:
        return os.path.abspath(found)
    here = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    return here if os.access(here, os.X_OK) else None


# where a containerd started by systemd looks binaries up (its opt plugin prepends /opt/containerd/bin)
CONTAINERD_PATH = ("/opt/containerd/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
                   "/bin")


def find_shim():
    """The installed containerd-shim-pyrunc-v1: on PATH, else next to this Python; None if neither."""
    from .containerd import PYRUNC_SHIM_BINARY

    found = shutil.which(PYRUNC_SHIM_BINARY)
    if found:
        return os.path.abspath(found)
    here = os.path.join(os.path.dirname(sys.executable), PYRUNC_SHIM_BINARY)
    return here if os.access(here, os.X_OK) else None


def shim_note(path):
    """What to tell the user when containerd may not find the shim at `path` (None: nothing to say)."""
    from .containerd import PYRUNC_SHIM_BINARY

    if path is None:
        return (f"note: {PYRUNC_SHIM_BINARY} is not installed here; containerd fails to create tasks on this "
                f"runtime until it is on containerd's PATH")
    if os.path.dirname(path) in CONTAINERD_PATH:
        return None
    return (f"note: containerd looks {PYRUNC_SHIM_BINARY} up on its own PATH (CRI in containerd 1.6 ignores "
            f"runtime_path), which does not hold {os.path.dirname(path)}: ln -s {path} "
            f"/usr/local/bin/{PYRUNC_SHIM_BINARY}")


def resolve_binary(binary, must_exist):
    """An absolute path for the runtime binary; GlueError if unknown, or missing when must_exist."""
    binary = binary or default_binary()
    if not binary:
        raise GlueError("pyrunc binary not found on PATH or next to the interpreter: pass --binary PATH")
    binary = os.path.abspath(binary)
    if must_exist and not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise GlueError(f"runtime binary {binary}: not an executable file")
    return binary


def read(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise GlueError(f"read {path}: {os.strerror(e.errno).lower()}") from None


def backup(path, now=None):
    """Copy path to path.bak.<UTC timestamp> (created O_EXCL, a numeric suffix on collision); return its name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    st = os.stat(path)
    for n in range(100):
        dest = f"{path}.bak.{stamp}" + (f".{n}" if n else "")
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, st.st_mode & 0o7777)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        return dest
    raise GlueError(f"backup {path}: too many backups named {path}.bak.{stamp}*")


def replace(path, text, mode=0o644):
    """Atomically replace (or create) path with text, keeping an existing file's mode and owner."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    try:
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        owner = None
    tmp = os.path.join(d, f".{os.path.basename(path)}.pyrunc-config.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner and owner != (os.geteuid(), os.getegid()):
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def update(path, old, new):
    """Write new over path (backing up old first); return (changed, backup name or None)."""
    if old == new:
        return False, None
    saved = backup(path) if old is not None else None
    replace(path, new)
    return True, saved
