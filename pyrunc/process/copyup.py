"""The `tmpcopyup` mount option (runc's extension for tmpfs): the new tmpfs starts with a copy of the image
directory it covers.

runc mounts the tmpfs on a temporary directory, copies, then moves it onto the destination.  Here no path is
ever involved: the image's directory is opened (O_RDONLY, resolved inside the rootfs) before the tmpfs is
mounted over it, and that fd keeps reaching the covered directory afterwards; the copy walks it with *at()
calls and O_NOFOLLOW only, so a symlink in the image is copied as a symlink, never followed (to the host or
anywhere else).  Modes, owners and times are kept; fifos and device nodes are made again; sockets are skipped
(nothing can be listening on a copy).  Nothing runs in the container yet, so nothing races the walk.
"""

import _stat as stat  # compiled in: `stat` is a file to load

from .. import osx as os
from ..errors import SysError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src, dst, where):
    """Copy the content of directory fd src into directory fd dst; where names the mount in errors."""
    with os.scandir(src) as it:
        entries = [e.name for e in it]
    for name in entries:
        try:
            _copy_entry(src, dst, name, where)
        except OSError as e:
            raise SysError("tmpcopyup", f"{where}/{name}", e.errno) from None


def _copy_entry(src, dst, name, where):
    st = os.stat(name, dir_fd=src, follow_symlinks=False)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
    elif stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=dst)
        s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=src)
        try:
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=dst)
            try:
                copy_tree(s, d, f"{where}/{name}")
            finally:
                os.close(d)
        finally:
            os.close(s)
    elif stat.S_ISREG(mode):
        s = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=src)
        try:
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dst)
            try:
                left = st.st_size
                while left > 0:
                    n = os.sendfile(d, s, None, min(left, 1 << 30))
                    if n == 0:  # the file shrank meanwhile: what was there is copied
                        break
                    left -= n
            finally:
                os.close(d)
        finally:
            os.close(s)
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(name, (mode & ~0o7777) | 0o600, st.st_rdev, dir_fd=dst)
    else:
        return  # a socket
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
    if not stat.S_ISLNK(mode):  # after chown, which clears set-id bits
        os.chmod(name, stat.S_IMODE(mode), dir_fd=dst)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
