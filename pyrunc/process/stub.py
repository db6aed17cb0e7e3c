"""The sealed exec stub (csrc/pyrunc_init.c): copied into a memfd and sealed, then executed by fd.

Executing the installed file directly would make /proc/<pid>/exe of every container process a host file that a
container could open and, once pyrunc is gone, write (CVE-2019-5736).  A sealed memfd is unlinked, cannot be
written or grown, and is private to this process tree.  At ~700 KB the copy costs well under a millisecond.
"""

import fcntl
import os

F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8


def stub_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyrunc-init")


def sealed_stub():
    """A sealed, executable memfd holding pyrunc-init (close-on-exec; fexecve works regardless)."""
    src = os.open(stub_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.memfd_create("pyrunc-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
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
