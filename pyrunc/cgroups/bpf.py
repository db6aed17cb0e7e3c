"""Load a cgroup v2 device filter and attach it to a cgroup directory (runc cgroups/devices/ebpf_linux.go).

bpf(2) attrs are packed here (union bpf_attr, the fields each command reads) and passed to the one syscall
wrapper, pyrunc.linux.Linux.bpf.  Attaching is replace-by-addition: the new program is attached with
BPF_F_ALLOW_MULTI first and only then are the programs already attached to this cgroup detached, so the container
is never without a filter in between (detaching first would leave a window with all devices allowed).  The
container's own cgroup holds only programs its runtime attached, so "already attached" means "ours".
"""

import os
import struct

from pyrunc.errors import PyruncError, SysError

BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 5, 8, 9, 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
ATTR_SIZE = 128  # larger than every field used; the kernel requires the unused tail to be zero
LOG_SIZE = 1 << 16


def _attr(fmt, *values):
    a = bytearray(ATTR_SIZE)
    struct.pack_into(fmt, a, 0, *values)
    return a


def load(insns, license="Apache", linux=None):
    """BPF_PROG_LOAD a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd (the verifier log is in the error)."""
    from pyrunc.linux import real

    linux = linux or real
    lic = license.encode() + b"\0"
    log = bytearray(LOG_SIZE)
    k1, insns_addr = linux.buffer_address(insns)
    k2, lic_addr = linux.buffer_address(lic)
    k3, log_addr = linux.buffer_address(log)
    name = b"pyrunc_devices"[:15]
    attr = _attr("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8, insns_addr, lic_addr, 1, LOG_SIZE,
                 log_addr, 0, 0, name)
    try:
        return linux.bpf(BPF_PROG_LOAD, attr, "bpf load cgroup device program")
    except SysError as e:
        text = bytes(log).split(b"\0", 1)[0].decode(errors="replace").strip()
        if text:
            raise PyruncError(f"{e}: verifier: {text.splitlines()[-1]}") from None
        raise
    finally:
        del k1, k2, k3


def query(dirfd, linux):
    """Ids of the device programs attached to the cgroup dirfd."""
    ids = bytearray(4 * 64)
    keep, addr = linux.buffer_address(ids)
    attr = _attr("<IIIIQI", dirfd, BPF_CGROUP_DEVICE, 0, 0, addr, 64)
    linux.bpf(BPF_PROG_QUERY, attr, "bpf query cgroup device programs")
    cnt = struct.unpack_from("<I", attr, 24)[0]
    del keep
    return list(struct.unpack_from(f"<{min(cnt, 64)}I", ids, 0))


def attach_device_filter(path, insns, license="Apache", linux=None):
    """Attach the program to the cgroup dir `path`, then detach the device programs attached there before."""
    from pyrunc.linux import real

    linux = linux or real
    try:
        dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SysError("open", path, e.errno) from None
    prog = None
    try:
        old = query(dirfd, linux)
        prog = load(insns, license, linux)
        linux.bpf(BPF_PROG_ATTACH, _attr("<IIII", dirfd, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI),
                  f"bpf attach device program to {path}")
        for pid in old:
            try:
                ofd = linux.bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", pid), "bpf get program by id")
            except SysError as e:
                if e.errno == 2:  # ENOENT: gone meanwhile
                    continue
                raise
            try:
                linux.bpf(BPF_PROG_DETACH, _attr("<III", dirfd, ofd, BPF_CGROUP_DEVICE),
                          f"bpf detach old device program {pid} from {path}")
            finally:
                os.close(ofd)
    finally:
        if prog is not None:
            os.close(prog)
        os.close(dirfd)


def detach_all(path, linux=None):
    """Detach every device program from the cgroup dir (tests and cleanup)."""
    from pyrunc.linux import real

    linux = linux or real
    dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for pid in query(dirfd, linux):
            ofd = linux.bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", pid), "bpf get program by id")
            try:
                linux.bpf(BPF_PROG_DETACH, _attr("<III", dirfd, ofd, BPF_CGROUP_DEVICE), "bpf detach")
            finally:
                os.close(ofd)
    finally:
        os.close(dirfd)
