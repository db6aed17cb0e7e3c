"""linux.timeOffsets: the monotonic and boottime offsets of a new time namespace (time_namespaces(7)).

unshare(CLONE_NEWTIME) does not move the caller: its children are born in the new namespace, and its offsets can
be written to /proc/self/timens_offsets only until the first process enters it.  So stage A, which unshares the
container's namespaces, writes them right after unshare() and before it forks stage B (see the ladder in
init.py); B and everything after it see the offset clocks, and `exec` joins them through /proc/<init>/ns/time.

The file is opened first thing in stage A, while A is still the host's root: stage A is non-dumpable, so its
/proc/self files belong to the host's root, and once it has become root of a new user namespace (a host uid of
the mapping) it could no longer open them.  The write is checked against the opener's credentials (CAP_SYS_TIME
in the user namespace owning the new time namespace: A's, from unshare(CLONE_NEWUSER)) and acts on the time
namespace A's children will get, so an fd opened early and written after unshare() does what is asked.
"""


from .. import osx as os
from ..errors import ConfigError, SysError

CLOCKS = (("monotonic", 1), ("boottime", 7))  # CLOCK_MONOTONIC, CLOCK_BOOTTIME
OFFSETS = "/proc/self/timens_offsets"


def plan(offsets, types, joined):
    """The bytes to write into timens_offsets, or None.  runc's rules: offsets need a time namespace of our own
    (not one joined by path, whose clocks are set already)."""
    if not offsets:
        return None
    if "time" not in types:
        raise ConfigError("linux.timeOffsets: time namespace offsets specified, but the config has no time namespace")
    if "time" in joined:
        raise ConfigError("linux.timeOffsets: offsets cannot be set on a time namespace joined by path")
    lines = []
    for name, clock in CLOCKS:
        off = offsets.get(name)
        if off is None:
            continue
        secs, nsecs = off.get("secs", 0), off.get("nanosecs", 0)
        if not 0 <= nsecs < 1000000000:
            raise ConfigError(f"linux.timeOffsets.{name}.nanosecs: {nsecs} is not below one second")
        lines.append(f"{clock} {secs} {nsecs}\n")
    return "".join(lines).encode() or None


def open_offsets():
    """In stage A, before any namespace changes: the host's /proc, A still the host's root (see above)."""
    try:
        return os.open(OFFSETS, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise SysError("open", OFFSETS, e.errno) from None


def write(fd, data):
    """In stage A, after unshare(CLONE_NEWTIME), before the fork of stage B; closes fd."""
    try:
        os.write(fd, data)
    except OSError as e:
        raise SysError("write", f"{OFFSETS} {data.decode().strip()!r}", e.errno) from None
    finally:
        os.close(fd)
