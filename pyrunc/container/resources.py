"""Resource verbs on a live container, as a library: update, pause, resume, stats/events, processes.

The CLI verbs (pyrunc/cli/{update,pause,resume,events,ps}.py) parse arguments and make one call here.

update follows runc's update.go: the request is a LinuxResources patch; it is merged into the resources recorded
in state.json (some cgroup values depend on the current ones: memory vs memory+swap, quota vs period), the whole
merged set is applied again (runc Set re-applies everything), devices excepted (runc sets SkipDevices), and the
merged set is recorded under the container lock.  Which patch fields count as "unset" is runc's:
  * absent (null) fields never change anything;
  * zero limits (memory.limit/reservation/swap, cpu.shares/quota/period/realtime*, blockIO.weight, pids.limit)
    are passed through by runc but its cgroup drivers skip zeros, so they change nothing: we keep the old value
    in the record too, so the record says what the kernel holds;
  * cpu.cpus / cpu.mems: "" is unset;
  * cpu.burst, cpu.idle and memory.checkBeforeUpdate are pointers in runc: 0 / false is a real value;
  * unified replaces the recorded map (runc assigns it), so an update without "unified" drops the old one.
Everything else in the patch (devices, hugepageLimits, blockIO throttles, network, rdma, swappiness, ...) is
ignored, as runc ignores it.
"""

import copy
import re

from ..errors import ConfigError, PyruncError, StateError, UsageError
from .state import Lock, Store

# runc update.go: which LinuxResources fields it merges, and whether a zero value is still "set".
_MERGE = (
    ("blockIO", "weight", False),
    ("cpu", "period", False), ("cpu", "quota", False), ("cpu", "shares", False),
    ("cpu", "realtimePeriod", False), ("cpu", "realtimeRuntime", False),
    ("cpu", "burst", True), ("cpu", "idle", True),
    ("memory", "limit", False), ("memory", "reservation", False), ("memory", "swap", False),
    ("memory", "checkBeforeUpdate", True),
)

# --- command line -> patch ---------------------------------------------------------------------------------

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def ram_in_bytes(s):
    """docker/go-units RAMInBytes: "512m" -> 536870912 (binary units, optional i/b suffix, decimals truncated)."""
    m = _SIZE.match(s)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    try:
        size = float(m.group(1))
    except ValueError:
        raise ValueError(f"invalid size: '{s}'") from None
    return int(size * _UNITS[(m.group(2) or "").lower()])


def _uint(opt, val):
    if not re.fullmatch(r"\d+", val):
        raise ConfigError(f'invalid value for {opt}: strconv.ParseUint: parsing "{val}": invalid syntax')
    return int(val)


def _int(opt, val):
    if not re.fullmatch(r"[+-]?\d+", val):
        raise ConfigError(f'invalid value for {opt}: strconv.ParseInt: parsing "{val}": invalid syntax')
    return int(val)


def patch_from_flags(o, log=None):
    """The update flags (a namespace with runc's option names, '-' as '_') -> a LinuxResources patch."""
    r = {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    if getattr(o, "blkio_weight", None):
        r["blockIO"]["weight"] = int(o.blkio_weight)
    if getattr(o, "cpuset_cpus", None):
        r["cpu"]["cpus"] = o.cpuset_cpus
    if getattr(o, "cpuset_mems", None):
        r["cpu"]["mems"] = o.cpuset_mems
    if getattr(o, "cpu_idle", None):
        r["cpu"]["idle"] = _int("cpu-idle", o.cpu_idle)
    for opt, key in (("cpu-burst", "burst"), ("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"),
                     ("cpu-share", "shares")):
        val = getattr(o, opt.replace("-", "_"), None)
        if val:
            r["cpu"][key] = _uint(opt, val)
    for opt, key in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime")):
        val = getattr(o, opt.replace("-", "_"), None)
        if val:
            r["cpu"][key] = _int(opt, val)
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"), ("memory-reservation", "reservation")):
        val = getattr(o, opt.replace("-", "_"), None)
        if val:
            if val == "-1":
                r["memory"][key] = -1
                continue
            try:
                r["memory"][key] = ram_in_bytes(val)
            except ValueError as e:
                raise ConfigError(f"invalid value for {opt}: {e}") from None
    for opt in ("kernel-memory", "kernel-memory-tcp"):
        if getattr(o, opt.replace("-", "_"), None) and log is not None:
            log.warning(f"Setting --{opt} is ignored and will be removed")
    r["pids"]["limit"] = int(getattr(o, "pids_limit", 0) or 0)
    return r


def patch_from_json(data, source):
    """--resources FILE|-: LinuxResources JSON, schema-checked."""
    import json

    try:
        doc = json.loads(data or b"null")
    except ValueError as e:
        raise ConfigError(f"decode resources from {source}: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"decode resources from {source}: expected a JSON object (LinuxResources)")
    from ..spec.validate import validate_resources

    validate_resources(doc)
    return doc


# --- merge ---------------------------------------------------------------------------------------------------

def merge(old, patch):
    """The resources to apply and record after `patch` (see the module doc for the rules, runc update.go)."""
    new = copy.deepcopy(old or {})
    patch = patch or {}
    for section, key, zero_is_value in _MERGE:
        val = (patch.get(section) or {}).get(key)
        if val is None or (val == 0 and not zero_is_value):
            continue
        new.setdefault(section, {})
        if new[section] is None:
            new[section] = {}
        new[section][key] = val
        if (section, key) == ("memory", "limit") and val == -1 and (patch.get("memory") or {}).get("swap") is None:
            # runc: unlimited memory with swap not given means unlimited swap too
            new["memory"]["swap"] = -1
    cpu = patch.get("cpu") or {}
    for key in ("cpus", "mems"):
        if cpu.get(key):
            new.setdefault("cpu", {})[key] = cpu[key]
    limit = (patch.get("pids") or {}).get("limit")
    if limit:
        new["pids"] = {"limit": limit}
    if patch.get("unified"):
        new["unified"] = dict(patch["unified"])
    else:
        new.pop("unified", None)
    return new


def applicable(resources):
    """What update writes: everything recorded but the device rules (runc SkipDevices on update)."""
    r = copy.deepcopy(resources)
    r.pop("devices", None)
    return r


# --- verbs ---------------------------------------------------------------------------------------------------

def _manager(c):
    from .lifecycle import _manager as m

    mgr = m(c)
    if mgr is None:
        raise PyruncError(f"container {c.id} has no cgroup (created rootless without cgroup access, or cgroup_paths "
                          f"missing from state.json)")
    return mgr


def update(root, cid, patch, log=None):
    """Merge patch into the recorded resources, apply them to the live cgroup, record them; returns the merged."""
    store = Store(root)
    c = store.load(cid)
    with Lock(c.dir):
        c = store.load(cid)  # re-read under the lock: a concurrent update may have recorded something
        if c.status() == "stopped":
            raise StateError("container not running")
        linux = c.doc.setdefault("config", {}).setdefault("linux", {})
        old = linux.get("resources") or {}
        new = merge(old, patch)
        mgr = _manager(c)
        try:
            mgr.apply(applicable(new), default_devices=False)
        except PyruncError:
            # runc Set: put the previous values back before reporting the failure
            try:
                mgr.apply(applicable(old), default_devices=False)
            except PyruncError as e2:
                if log is not None:
                    log.warning(f"unable to restore cgroup resources after a failed update: {e2}")
            raise
        linux["resources"] = new
        c.save()
        return new


def pause(root, cid):
    store = Store(root)
    c = store.load(cid)
    with Lock(c.dir):
        if c.status() not in ("running", "created"):
            raise StateError("container not running")
        _manager(c).freeze()


def resume(root, cid):
    store = Store(root)
    c = store.load(cid)
    with Lock(c.dir):
        if c.status() != "paused":
            raise StateError("container not paused")
        _manager(c).thaw()


def processes(root, cid):
    """Host pids of every process in the container's cgroup (runc container.Processes)."""
    c = Store(root).load(cid)
    from .lifecycle import _manager as m

    mgr = m(c)
    if mgr is None:  # rootless without cgroup access: the processes of the init's own pid namespace
        return _pidns_members(c)
    try:
        return mgr.pids()
    except OSError as e:
        raise PyruncError(f"unable to get all container pids: {e}") from None


def _pidns_members(c):
    import os

    if not c.alive():
        return []
    try:
        ns = os.readlink(f"/proc/{c.pid}/ns/pid")
    except OSError as e:
        raise PyruncError(f"unable to get all container pids: {e}") from None
    if ns == os.readlink("/proc/self/ns/pid"):
        return [c.pid]  # no pid namespace of its own: nothing but the init can be told apart
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns:
                    pids.append(int(name))
            except OSError:
                pass  # gone, or not ours to look at
    return sorted(pids)


def stats(root, cid):
    c = Store(root).load(cid)
    return _manager(c).stats()


def ps_table(output, pids):
    """Filter host `ps` output to the container's pids: the header, then lines whose PID column is one of them."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise PyruncError("couldn't find PID field in ps output")
    idx = titles.index("PID")
    keep = [lines[0]]
    wanted = set(pids)
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        field = fields[idx] if idx < len(fields) else ""
        try:
            p = int(field)
        except ValueError:
            raise PyruncError(f'unable to parse pid: strconv.Atoi: parsing "{field}": invalid syntax') from None
        if p in wanted:
            keep.append(line)
    return "".join(line + "\n" for line in keep)


# --- events --------------------------------------------------------------------------------------------------

_DUR = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s):
    """Go time.ParseDuration -> seconds ("5s", "100ms", "1m30s", "-1s", "0")."""
    orig = s
    bad = UsageError(f'invalid value "{orig}" for flag -interval: parse error')
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise bad
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DUR.match(s, pos)
        if not m or m.end() == pos or m.group(1) in ("", "."):
            raise bad
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def events(root, cid, *, interval=5.0, once=False, emit, log=None):
    """runc events: emit({"type":"stats",...}) once (once=True) or every interval, plus {"type":"oom"} on each
    OOM kill, until the container stops."""
    import time

    if interval <= 0:
        raise ConfigError("duration interval must be greater than 0")
    c = Store(root).load(cid)
    if c.status() == "stopped":
        raise StateError(f"container with id {cid} is not running")
    mgr = _manager(c)
    if once:
        emit({"type": "stats", "id": cid, "data": mgr.stats()})
        return
    watcher = mgr.oom_events()
    try:
        due = time.monotonic() + interval
        while True:
            # Wake at the next stats tick, or earlier on an OOM kill, and at least every 0.5 s to notice the
            # container stopping (runc ends when its OOM notification channel closes with the cgroup).
            n = watcher.wait(max(0.0, min(0.5, due - time.monotonic())))
            for _ in range(n):
                emit({"type": "oom", "id": cid})
            if not c.alive():
                for _ in range(watcher.wait(0)):
                    emit({"type": "oom", "id": cid})
                return
            if time.monotonic() >= due:
                due += interval
                try:
                    emit({"type": "stats", "id": cid, "data": mgr.stats()})
                except PyruncError as e:
                    if log is not None:
                        log.error(str(e))
    finally:
        watcher.close()
