"""The sealed exec stub (csrc/pyrunc_init.c): copied into a memfd and sealed, then executed by fd.

Executing the installed file directly would make /proc/<pid>/exe of every container process a host file that a
container could open and, once pyrunc is gone, write (CVE-2019-5736).  A sealed memfd is unlinked, cannot be
written or grown, and is private to this process tree.  At ~700 KB the copy costs well under a millisecond.
"""

import errno
import fcntl
import os

F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
MFD_EXEC = 0x10  # Linux 6.3; not in Python 3.11's os module
INIT_ENV = "_PYRUNC_INIT"  # names the fd holding the stub's arguments; the stub removes it from the environment


def stub_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyrunc-init")


def sealed_stub():
    """A sealed, executable memfd holding pyrunc-init (close-on-exec; fexecve works regardless)."""
    src = os.open(stub_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = _memfd_exec("pyrunc-init")
        size = os.fstat(src).st_size
        off = 0
        while off < size:
            n = os.sendfile(fd, src, off, size - off)
            if n <= 0:
                break
            off += n
    finally:
        os.close(src)
    fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    return fd


def _memfd_exec(name):
    """An executable memfd.  With vm.memfd_noexec=1 (a per-pid-namespace sysctl) a memfd made without MFD_EXEC
    is sealed non-executable and fexecve fails with EACCES; kernels before 6.3 do not know the flag (EINVAL).
    runc does the same (libcontainer/system: MFD_EXEC, then without)."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        return os.memfd_create(name, flags | MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    return os.memfd_create(name, flags)


def init_args(ctl, path, argv):
    """The stub's arguments (CONTROL, PATH, ARGV...) in a memfd, NUL-separated; returns its fd, inheritable.  They
    never go on the command line: `ps` shows every process's argv to every user of the host, and the stub's
    would be pyrunc's protocol (ids, capability masks) plus the user's argv.  The stub runs as `pyrunc init`."""
    data = b"".join(a.encode(errors="surrogateescape") + b"\0" for a in [control(**ctl), path, *argv])
    fd = os.memfd_create("pyrunc-init-args", 0)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    except BaseException:
        os.close(fd)
        raise
    return fd


def control(**kw):
    """The stub's CONTROL argument: key=value pairs, None values left out."""
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        if k in ("bnd", "eff", "prm", "inh", "amb"):
            v = format(v, "x")
        elif k == "groups":
            v = ":".join(str(g) for g in v)
        elif isinstance(v, bool):
            v = int(v)
        out.append(f"{k}={v}")
    return ",".join(out)
