"""The sealed exec stub (csrc/pyrunc_init.c): copied into a memfd and sealed, then executed by fd.

Executing the installed file directly would make /proc/<pid>/exe of every container process a host file that a
container could open and, once pyrunc is gone, write (CVE-2019-5736).  A sealed memfd is unlinked, cannot be
written or grown, and is private to this process tree.  The copy is ~55 KB built with musl (csrc/build_stub.py),
~700 KB with glibc.

The memfd is execute-only (0111) for the same reason the init of runc is exec'd on the host: execve fixes the
process's mm->user_ns, and ptrace (and /proc/<pid>/mem, environ, fd) of a non-dumpable process needs
CAP_SYS_PTRACE in that namespace.  The container's init execs the stub after it joined or made the container's
user namespace, so its mm would belong to that namespace, and a process holding CAP_SYS_PTRACE there (a pod peer
sharing the pid namespace, an `exec`'d process) could trace the stub before it drops its capabilities and loads
seccomp, and for as long as it waits on the exec fifo (M2).  But execve of a file the caller may not read makes
the kernel take the nearest ancestor user namespace that has privilege over the file's owner instead
(fs/exec.c would_dump, "ensure mm->user_ns contains the executable"): the memfd belongs to pyrunc's uid, and the
container's root may read it only through CAP_DAC_OVERRIDE, which needs the file's uid and gid both mapped in its
namespace.  So the stub's mm belongs to pyrunc's user namespace, as runc's init does, unless the id maps contain
the memfd's owner: a root caller gives it to uid and gid 4294967294 (the highest valid id, which only a map of the
whole range holds, as one that maps host root 0 -> 0 does not); a caller that is not root cannot, and its own
uid is its containers' root (see README, Rootless).
"""

import errno

from .. import osx as os
from ..linux import real

F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
MFD_EXEC = 0x10  # Linux 6.3; not in Python 3.11's os module
UNMAPPED_ID = 4294967294  # the stub memfd's owner: an id no container's map holds (see above)
INIT_ENV = "_PYRUNC_INIT"  # names the fd holding the stub's arguments; the stub removes it from the environment


def stub_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyrunc-init")


def sealed_stub(lx=real):
    """A sealed, executable memfd holding pyrunc-init (close-on-exec; fexecve works regardless)."""
    src = os.open(stub_path(), os.O_RDONLY | os.O_CLOEXEC)
    fd = -1
    try:
        fd = _memfd_exec("pyrunc-init")
        size = os.fstat(src).st_size
        off = 0
        while off < size:
            n = os.sendfile(fd, src, off, size - off)
            if n <= 0:
                break
            off += n
        lx.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, "the pyrunc-init memfd")
        os.fchmod(fd, 0o111)  # execute-only: see the module's docstring (the exec bits stay: F_SEAL_EXEC allows it)
        try:
            os.fchown(fd, UNMAPPED_ID, UNMAPPED_ID)
        except OSError as e:  # EPERM: not root; EINVAL: pyrunc's own user namespace does not map it
            if e.errno not in (errno.EPERM, errno.EINVAL):
                raise
    except BaseException:
        if fd >= 0:
            os.close(fd)  # a failed copy or seal: no half-made memfd left to the caller's fds
        raise
    finally:
        os.close(src)
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
