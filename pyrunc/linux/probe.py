"""What the running kernel offers, asked of the kernel itself (for `pyrunc features`): no table of kernel
versions, no cache (each probe is a failing syscall or a stat; all of them together take about 2 ms, the helper's
load included).

Nothing here changes anything: seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL) fails with EFAULT on the NULL
program once the flags are accepted (EINVAL if not), mount_setattr(-1, ...) fails with EBADF where the syscall
exists (ENOSYS where not).
"""

import errno
import os

from . import NAMESPACES, real

SECCOMP_SET_MODE_FILTER, SECCOMP_GET_ACTION_AVAIL = 1, 2
SECCOMP_FILTER_FLAG = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_NEW_LISTENER": 8,
                       "SECCOMP_FILTER_FLAG_TSYNC_ESRCH": 16, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
# the kernel refuses WAIT_KILLABLE_RECV without NEW_LISTENER (and pyrunc only ever sets it with a listener)
_WITH = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 8}
# SECCOMP_RET_* of each libseccomp action (SCMP_ACT_KILL is KILL_THREAD)
SECCOMP_RET = {"SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0, "SCMP_ACT_KILL_PROCESS": 0x80000000,
               "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_NOTIFY": 0x7fc00000,
               "SCMP_ACT_TRACE": 0x7ff00000, "SCMP_ACT_LOG": 0x7ffc0000, "SCMP_ACT_ALLOW": 0x7fff0000}


def namespaces():
    """The OCI namespace types this kernel has (/proc/self/ns/<name>; time needs CONFIG_TIME_NS)."""
    return sorted(t for t, (_, name) in NAMESPACES.items() if os.path.exists(f"/proc/self/ns/{name}"))


def seccomp_flags(names, lx=real):
    out = []
    for name in names:
        rc = lx.lib.pyr_seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG[name] | _WITH.get(name, 0),
                                lx._ffi.NULL)
        if rc == -errno.EFAULT:
            out.append(name)
    return out


def seccomp_actions(names, lx=real):
    """The actions the kernel implements: SECCOMP_GET_ACTION_AVAIL for each."""
    lx.lib  # noqa: B018 (load)
    buf = lx._ffi.new("uint32_t *")
    out = []
    for name in names:
        buf[0] = SECCOMP_RET[name]
        if lx.lib.pyr_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, buf) == 0:
            out.append(name)
    return out


def mount_setattr(lx=real):
    """True if the kernel has mount_setattr(2) (the recursive r* mount options and id-mapped mounts need it)."""
    return lx.lib.pyr_mount_setattr(-1, b"", 0, 0, 0, 0, 0) != -errno.ENOSYS


def numa():
    """The kernel has NUMA memory policies (CONFIG_NUMA): set_mempolicy(2) works."""
    return os.path.isdir("/sys/devices/system/node")


def net_devices():
    """Devices can be moved: network namespaces exist and pyroute2 is installed (found, not imported)."""
    import importlib.util

    return os.path.exists("/proc/self/ns/net") and importlib.util.find_spec("pyroute2") is not None
