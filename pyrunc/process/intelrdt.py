"""linux.intelRdt through resctrl (Documentation/filesystems/resctrl.rst), with runc's semantics
(libcontainer/intelrdt): a CLOS group is a directory of the resctrl filesystem; the container's init is put in
it by writing its pid to the group's `tasks` (children inherit the group), and the group's `schemata` gets
l3CacheSchema, memBwSchema and the schemata lines.

* the group is <resctrl>/<closID>, or <resctrl>/<container id> without a closID;
* a closID with no schemata names a group someone made already: it must exist (checked by plan());
* enableMonitoring: a monitoring group <group>/mon_groups/<container id> holds the init as well;
* delete removes the group only if pyrunc made it for a container without closID (a shared closID group is
  someone else's), else just the monitoring group.

plan() runs before any fork and refuses what the host cannot do with runc's errors: no resctrl mounted ("Intel
RDT is not enabled"), an L3 schema without CAT (info/L3) or a memory bandwidth one without MBA (info/MB), a
closID that is not a plain name.  `root` is injectable, so a temporary directory stands in for /sys/fs/resctrl in
unit tests.
"""

import errno
import os

from ..errors import ConfigError, SysError
from ..mountinfo import unescape

RESCTRL = "/sys/fs/resctrl"
W = "linux.intelRdt"


def find_root(mountinfo="/proc/self/mountinfo"):
    """Where a resctrl filesystem is mounted (the first one), or None."""
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if fields[fields.index("-") + 1] == "resctrl":
                    return unescape(fields[4])
    except OSError:
        return None
    return None


class RdtPlan:
    """root: the resctrl mount; clos: the closID or "" (then the group is named after the container and is
    ours); schemata: what to write to the group's `schemata` (or ""); monitoring: enableMonitoring."""

    def __init__(self, root, clos, schemata, monitoring):
        self.root, self.clos, self.schemata, self.monitoring = root, clos, schemata, monitoring


def plan(rdt, root=None):
    if not rdt:
        return None
    root = find_root() if root is None else root
    if not root:
        raise ConfigError(f"{W}: intelRdt is specified in config, but Intel RDT is not enabled")
    clos = rdt.get("closID") or ""
    if clos in (".", "..") or "/" in clos or "\n" in clos:
        raise ConfigError(f"{W}.closID: invalid intelRdt.ClosID {clos!r}")
    l3, mb = rdt.get("l3CacheSchema") or "", rdt.get("memBwSchema") or ""
    if l3 and not os.path.isdir(os.path.join(root, "info", "L3")):
        raise ConfigError(f"{W}.l3CacheSchema: intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT "
                          "is not enabled")
    if mb and not os.path.isdir(os.path.join(root, "info", "MB")):
        raise ConfigError(f"{W}.memBwSchema: intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not "
                          "enabled")
    lines = [s for s in [l3, mb, *(rdt.get("schemata") or ())] if s]
    if clos and not lines and not os.path.isdir(os.path.join(root, clos)):
        raise ConfigError(f"{W}.closID: clos dir {os.path.join(root, clos)} not accessible (must be pre-created "
                          "when schemata, l3CacheSchema and memBwSchema are empty)")
    return RdtPlan(root, clos, "".join(s + "\n" for s in lines), bool(rdt.get("enableMonitoring")))


def _last_cmd_status(root):
    try:
        with open(os.path.join(root, "info", "last_cmd_status")) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(root, path, data):
    """Write one resctrl file: the kernel explains a refusal in info/last_cmd_status, as runc reports it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as e:
        status = _last_cmd_status(root)
        raise SysError(f"intelrdt: write {data.strip()!r} to", path + (f" (last_cmd_status: {status})"
                                                                          if status else ""), e.errno) from None


def _mkdir(path):
    """True if we made it."""
    try:
        os.mkdir(path, 0o755)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise SysError("intelrdt: mkdir", path, e.errno) from None


def apply(p, cid, pid):
    """Make (or join) the group, set its schemata, put pid in it.  Returns the record delete needs."""
    path = os.path.join(p.root, p.clos or cid)
    mon = os.path.join(path, "mon_groups", cid) if p.monitoring else None
    made = _mkdir(path)
    rec = {"path": path, "made": made and not p.clos, "mon": None}
    try:
        if p.schemata:
            _write(p.root, os.path.join(path, "schemata"), p.schemata)
        _write(p.root, os.path.join(path, "tasks"), str(pid))
        if mon:
            _mkdir(mon)
            rec["mon"] = mon
            _write(p.root, os.path.join(mon, "tasks"), str(pid))
    except BaseException:
        destroy(rec)
        raise
    return rec


_rmdir = os.rmdir  # resctrl removes a group with its files; the unit tests' plain directories need more


def join(rec, pid):
    """exec: the new process joins the container's group (and monitoring group), as runc's setns process."""
    for d in filter(None, (rec["path"], rec.get("mon"))):
        _write(os.path.dirname(rec["path"]), os.path.join(d, "tasks"), str(pid))


def destroy(rec):
    """After the container's processes are gone: rmdir what is ours (the kernel moves leftover tasks to the
    parent group)."""
    for path in ([rec["mon"]] if rec.get("mon") else []) + ([rec["path"]] if rec.get("made") else []):
        try:
            _rmdir(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT,):
                raise SysError("intelrdt: remove", path, e.errno) from None
