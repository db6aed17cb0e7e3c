"""The syscall boundary: the only importer of the compiled helper (pyrunc._helper).

Everything that touches the kernel beyond the standard library goes through `Linux` (one instance, `real`);
tests hand planners' apply loops a `pyrunc.linux.fake.Recorder` with the same methods instead.  Each method raises
pyrunc.errors.SysError naming the operation and the path, with the flags by name.  Importing this module costs
nothing: the helper is loaded on first use.
"""

from ..errors import SysError

# clone(2) / setns(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

NAMESPACES = {  # OCI type -> (clone flag, /proc/<pid>/ns name)
    "user": (CLONE_NEWUSER, "user"),
    "mount": (CLONE_NEWNS, "mnt"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# mount(2) flags
MS = {
    "MS_RDONLY": 0x1, "MS_NOSUID": 0x2, "MS_NODEV": 0x4, "MS_NOEXEC": 0x8, "MS_SYNCHRONOUS": 0x10,
    "MS_REMOUNT": 0x20, "MS_MANDLOCK": 0x40, "MS_DIRSYNC": 0x80, "MS_NOSYMFOLLOW": 0x100, "MS_NOATIME": 0x400,
    "MS_NODIRATIME": 0x800, "MS_BIND": 0x1000, "MS_MOVE": 0x2000, "MS_REC": 0x4000, "MS_SILENT": 0x8000,
    "MS_UNBINDABLE": 0x20000, "MS_PRIVATE": 0x40000, "MS_SLAVE": 0x80000, "MS_SHARED": 0x100000,
    "MS_RELATIME": 0x200000, "MS_STRICTATIME": 0x1000000, "MS_LAZYTIME": 0x2000000,
}
globals().update(MS)
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2(2)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000

# socket(2), for the helper's socketpair and socket (the init protocol loads no _socket)
AF_UNIX = 1
AF_INET = 2
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_SEQPACKET = 5
SOCK_CLOEXEC = 0o2000000
IFF_UP = 0x1

_FCNTL = {1: "F_GETFD", 2: "F_SETFD", 1031: "F_SETPIPE_SZ", 1033: "F_ADD_SEALS"}  # fcntl commands, for errors

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def flag_names(flags, table=MS):
    """MS_BIND|MS_REC for error messages."""
    names = [k for k, v in sorted(table.items(), key=lambda kv: kv[1]) if flags & v]
    return "|".join(names) or "0"


def _b(s):
    return None if s is None else (s.encode() if isinstance(s, str) else s)


class Linux:
    """The real kernel, through pyrunc._helper (C returns -errno; this raises SysError)."""

    _lib = None
    _ffi = None

    @property
    def lib(self):
        if Linux._lib is None:
            from .._helper import ffi, lib

            Linux._lib, Linux._ffi = lib, ffi
        return Linux._lib

    def _check(self, rc, op, path=None):
        if rc < 0:
            raise SysError(op, path, -rc)
        return rc

    def mount(self, source, target, fstype, flags, data=None):
        rc = self.lib.pyr_mount(_b(source) or self._ffi_null(), _b(target), _b(fstype) or self._ffi_null(), flags,
                                _b(data) or self._ffi_null())
        if rc < 0:
            what = f"{source or fstype} on {target} ({flag_names(flags)}{', ' + data if data else ''})"
            raise SysError("mount", what, -rc)

    def _ffi_null(self):
        self.lib  # noqa: B018 (load)
        return Linux._ffi.NULL

    def umount2(self, target, flags=0):
        self._check(self.lib.pyr_umount2(_b(target), flags), "umount", target)

    def pivot_root(self, new_root, put_old):
        self._check(self.lib.pyr_pivot_root(_b(new_root), _b(put_old)), "pivot_root", new_root)

    def unshare(self, flags):
        self._check(self.lib.pyr_unshare(flags), "unshare", hex(flags))

    def setns(self, fd, nstype=0, path=None):
        self._check(self.lib.pyr_setns(fd, nstype), "setns", path)

    def sethostname(self, name):
        n = _b(name)
        self._check(self.lib.pyr_sethostname(n, len(n)), "sethostname", name)

    def setdomainname(self, name):
        n = _b(name)
        self._check(self.lib.pyr_setdomainname(n, len(n)), "setdomainname", name)

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        return self._check(self.lib.pyr_prctl(option, a2, a3, a4, a5), f"prctl {option}")

    def openat2(self, dirfd, path, flags, mode=0, resolve=0):
        return self._check(self.lib.pyr_openat2(dirfd, _b(path), flags, mode, resolve), "open", path)

    def mount_setattr(self, dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0, userns_fd=0):
        return self._check(self.lib.pyr_mount_setattr(dirfd, _b(path), flags, attr_set, attr_clr, propagation,
                                                      userns_fd), "mount_setattr", path)

    def open_tree(self, dirfd, path, flags):
        return self._check(self.lib.pyr_open_tree(dirfd, _b(path), flags), "open_tree", path)

    def move_mount(self, from_dirfd, from_path, to_dirfd, to_path, flags):
        return self._check(self.lib.pyr_move_mount(from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags),
                           "move_mount", to_path)

    def keyctl_join_session_keyring(self, name):
        return self._check(self.lib.pyr_keyctl_join_session_keyring(_b(name)), "join session keyring", name)

    def keyctl_describe(self, key):
        lib = self.lib
        buf = Linux._ffi.new("char[]", 4096)
        n = self._check(lib.pyr_keyctl_describe(key, buf, 4096), "describe key", str(key))
        return Linux._ffi.string(buf, min(n, 4096)).decode(errors="replace")

    def keyctl_setperm(self, key, perm):
        self._check(self.lib.pyr_keyctl_setperm(key, perm), "set key permissions", str(key))

    def personality(self, persona):
        return self._check(self.lib.pyr_personality(persona), "personality", hex(persona))

    def sched_setaffinity(self, pid, mask):
        """sched_setaffinity(pid, len(mask), mask): mask is the cpu bitmap as bytes (bit n of byte n // 8)."""
        return self._check(self.lib.pyr_sched_setaffinity(pid, len(mask), mask), "set cpu affinity", f"pid {pid}")

    def prlimit(self, pid, resource, soft, hard, what=None):
        """prlimit(pid, resource, {soft, hard}, NULL); 2**64-1 is RLIM_INFINITY."""
        return self._check(self.lib.pyr_prlimit(pid, resource, soft, hard), "setrlimit", what)

    def socketpair(self, domain, type, protocol=0):
        """socketpair(2): (fd, fd); type may carry SOCK_CLOEXEC."""
        self.lib  # noqa: B018 (load)
        sv = Linux._ffi.new("int[2]")
        self._check(self.lib.pyr_socketpair(domain, type, protocol, sv), "socketpair")
        return sv[0], sv[1]

    def socket(self, domain, type, protocol=0):
        return self._check(self.lib.pyr_socket(domain, type, protocol), "socket")

    def get_ifflags(self, fd, name):
        """SIOCGIFFLAGS: the interface's flags (IFF_UP...)."""
        return self._check(self.lib.pyr_get_ifflags(fd, _b(name)), "get flags of interface", name)

    def set_ifflags(self, fd, name, flags):
        self._check(self.lib.pyr_set_ifflags(fd, _b(name), flags), "set flags of interface", name)

    def fcntl(self, fd, cmd, arg, what=None):
        """fcntl(fd, cmd, arg) for an int arg (F_SETFD, F_ADD_SEALS, F_SETPIPE_SZ)."""
        return self._check(self.lib.pyr_fcntl_int(fd, cmd, arg), f"fcntl {_FCNTL.get(cmd, cmd)}", what)

    def fork_into_cgroup(self, cgroup_fd, what=None):
        """os.fork(), the child born in the cgroup2 cgroup of the directory fd cgroup_fd (clone3 with
        CLONE_INTO_CGROUP: no cgroup.procs write, so not the global migration lock and its grace period).  Only for
        a process with no other thread (see csrc/pyrunc_helper.c).  Returns the pid (0 in the child); raises
        SysError naming what (the cgroup's path)."""
        return self._check(self.lib.pyr_fork_into_cgroup(cgroup_fd), "clone3 CLONE_INTO_CGROUP", what)

    def close_range(self, first, last=0xFFFFFFFF, flags=0):
        return self._check(self.lib.pyr_close_range(first, last, flags), "close_range")

    # -- bpf(2), for the cgroup v2 device filter (pyrunc/cgroups/bpf.py packs the attrs) ----------------------
    def bpf(self, cmd, attr, what="bpf"):
        """bpf(cmd, attr): attr is a bytearray holding a packed union bpf_attr; the kernel's writes into it are
        copied back. Returns the syscall's result (an fd for PROG_LOAD / GET_FD_BY_ID)."""
        self.lib  # noqa: B018 (load)
        buf = Linux._ffi.new("char[]", bytes(attr))
        rc = self.lib.pyr_bpf(cmd, buf, len(attr))
        attr[:] = Linux._ffi.buffer(buf, len(attr))[:]
        return self._check(rc, what)

    def buffer_address(self, buf):
        """(keepalive, address) of a bytes/bytearray for pointer fields of bpf_attr; keep `keepalive` referenced
        until the call returns."""
        self.lib  # noqa: B018 (load)
        c = Linux._ffi.from_buffer(buf)
        return c, int(Linux._ffi.cast("uintptr_t", c))


real = Linux()


# -- scheduling (pyrunc/process/sched.py validates and packs the values) ------------------------------------------
def _sched_setattr(self, policy, flags, nice, priority, runtime, deadline, period, util_min=0, util_max=0):
    """sched_setattr(0, attr, 0) on the calling thread, attr in the 56-byte VER1 layout.  The spec has no utilization
    values: SCHED_FLAG_UTIL_CLAMP_MIN/MAX apply 0, as runc's (zeroed) unix.SchedAttr does."""
    return self._check(self.lib.pyr_sched_setattr(policy, flags, nice, priority, runtime, deadline, period, util_min,
                                                  util_max),
                       "set scheduler", f"policy={policy} flags={flags:#x} nice={nice} priority={priority}")


def _ioprio_set(self, which, who, ioprio):
    return self._check(self.lib.pyr_ioprio_set(which, who, ioprio), "set io priority",
                       f"class={ioprio >> 13} priority={ioprio & 0x1fff}")


Linux.sched_setattr = _sched_setattr
Linux.ioprio_set = _ioprio_set


# -- NUMA memory policy (pyrunc/process/mempolicy.py validates and packs the values) -------------------------------
def _set_mempolicy(self, mode, words, what="linux.memoryPolicy"):
    """set_mempolicy(mode, nodemask, maxnode) for the calling thread; words: the nodemask as unsigned longs."""
    self.lib  # noqa: B018 (load)
    mask = Linux._ffi.new("unsigned long[]", words) if words else Linux._ffi.NULL
    bits = len(words) * 8 * Linux._ffi.sizeof("unsigned long")
    return self._check(self.lib.pyr_set_mempolicy(mode, mask, bits + 1 if words else 0), "set_mempolicy", what)


Linux.set_mempolicy = _set_mempolicy
