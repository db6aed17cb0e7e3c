"""Facts about pyrunc's own process from /proc, for any layer (the CLI and the library alike).

No imports but the built-in posix: the CLI loads this module only inside the functions that need it.
"""

import posix


def read_bytes(path):
    """A file's bytes (a procfs or cgroupfs file), by fd: open, reads, close.  open() adds an fstat, an ioctl, an
    lseek and three objects (in a just-forked init also copy-on-write faults, and after forbid_imports no codec or
    module lookup may happen).  Raises OSError.  container/state.py has its own copy: the hot verbs load no
    module they can do without."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while True:
            data = posix.read(fd, 65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        posix.close(fd)


def in_user_namespace():
    """Not the initial user namespace: its uid_map is anything but the whole range mapped onto itself."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
