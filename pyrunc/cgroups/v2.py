"""cgroup v2 planners: linux.resources -> ordered writes into one directory, in runc's fs2 order
(pids, memory, io, cpu, devices, cpuset, hugetlb, rdma, unified).

A v2 controller's files only appear in a cgroup once the parent enabled it in cgroup.subtree_control, so the
plan starts with the "+controller" writes still missing on the way down from the hierarchy root.
"""

from pyrunc import osx as os
from pyrunc.cgroups import devices as _dev, v1
from pyrunc.cgroups.detect import UNIFIED
from pyrunc.cgroups.fs import Write
from pyrunc.errors import ConfigError


def _n(v):
    return v if v is not None else 0


def _convert():
    """convert.py, loaded only by the planners that convert a v1 value (memory, io, cpu): a hybrid host's
    cgroup2 dir gets none of them, so create there never loads it (each module ~0.1 ms of every create)."""
    from pyrunc.cgroups import convert

    return convert


def wants_memory(r):
    m = r.get("memory") or {}
    return any(_n(m.get(k)) for k in ("limit", "reservation", "swap"))


def plan_memory(r, d, probe):
    m = r.get("memory") or {}
    mem, swap, res = _n(m.get("limit")), _n(m.get("swap")), _n(m.get("reservation"))
    # swappiness, disableOOMKiller and kernel memory have no v2 equivalent: ignored, as runc does.
    if m.get("checkBeforeUpdate") and (mem > 0 or swap > 0):
        v1._check_usage(probe.read(d, "memory.current"), mem, swap)
    out = []
    convert = _convert()
    v2swap = convert.swap_to_v2(swap, mem)
    s = convert.num_to_v2(v2swap)
    if s == "" and v2swap == 0 and swap > 0:
        s = "0"  # memory == memory+swap: no swap at all
    if s:
        # Without swap accounting the file is absent; "max" and "0" then already hold (runc 1.2).
        out.append(Write(UNIFIED, "memory.swap.max", s, d, optional=s in ("max", "0")))
    if convert.num_to_v2(mem):
        out.append(Write(UNIFIED, "memory.max", convert.num_to_v2(mem), d))
    if convert.num_to_v2(res):
        out.append(Write(UNIFIED, "memory.low", convert.num_to_v2(res), d))
    return out


def plan_io(r, d, probe):
    b = r.get("blockIO") or {}
    out = []
    bfq = probe.read(d, "io.bfq.weight") if (_n(b.get("weight")) or b.get("weightDevice")) else None
    if _n(b.get("weight")):
        if bfq is not None:
            out.append(Write(UNIFIED, "io.bfq.weight", str(b["weight"]), d))
        else:
            out.append(Write(UNIFIED, "io.weight", str(_convert().blkio_weight_to_io_weight(b["weight"])), d))
    # Per-device BFQ weights exist since 5.4; older kernels show a single number in io.bfq.weight.
    if bfq is not None and not bfq.strip().isdigit():
        for wd in b.get("weightDevice") or []:
            if _n(wd.get("weight")):
                out.append(Write(UNIFIED, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}", d))
    for key, _, name in v1.THROTTLE:
        for td in b.get(key) or []:
            out.append(Write(UNIFIED, "io.max", f"{td['major']}:{td['minor']} {name}={td['rate']}", d))
    return out


def wants_cpu(r):
    c = r.get("cpu") or {}
    return bool(_n(c.get("shares")) or _n(c.get("quota")) or _n(c.get("period"))
                or _n(c.get("realtimeRuntime")) or _n(c.get("realtimePeriod"))
                or c.get("burst") is not None or c.get("idle") is not None)


def plan_cpu(r, d, probe):
    c = r.get("cpu") or {}
    if _n(c.get("realtimeRuntime")) or _n(c.get("realtimePeriod")):
        raise ConfigError("cpu realtime runtime/period is not supported on cgroup v2 "
                          "(linux.resources.cpu.realtimeRuntime, realtimePeriod)")
    out = []
    quota, period = _n(c.get("quota")), _n(c.get("period"))
    if c.get("idle") is not None:
        out.append(Write(UNIFIED, "cpu.idle", str(c["idle"]), d))
    weight = _convert().shares_to_weight(_n(c.get("shares")))
    if weight:
        out.append(Write(UNIFIED, "cpu.weight", str(weight), d))
    if c.get("burst") is not None:
        out.append(Write(UNIFIED, "cpu.max.burst", str(c["burst"]), d, retry=bool(quota or period)))
    if quota or period:
        out.append(Write(UNIFIED, "cpu.max", f"{quota if quota > 0 else 'max'} {period or 100000}", d))
    return out


def plan_hugetlb(r, d, probe):
    out = []
    for h in r.get("hugepageLimits") or []:
        p, val = f"hugetlb.{h['pageSize']}", str(h["limit"])
        out.append(Write(UNIFIED, p + ".max", val, d))
        out.append(Write(UNIFIED, p + ".rsvd.max", val, d, optional=True))  # rsvd since 5.7
    return out


def unified_controller(key):
    if "/" in key:
        raise ConfigError(f"unified resource {key!r} must be a file name (no slashes)")
    ctrl, dot, _ = key.partition(".")
    if not dot or not ctrl:
        raise ConfigError(f"unified resource {key!r} must be in the form CONTROLLER.PARAMETER")
    return ctrl


# section -> (controller that must be enabled, wants, planner)
SECTIONS = (
    ("pids", "pids", v1.wants_pids, lambda r, d, p: [Write(UNIFIED, "pids.max", v1.pids_value(r), d)]),
    ("memory", "memory", wants_memory, plan_memory),
    ("io", "io", v1.wants_blkio, plan_io),
    ("cpu", "cpu", wants_cpu, plan_cpu),
    ("devices", None, None, None),
    ("cpuset", "cpuset", v1.wants_cpuset, lambda r, d, p: v1.plan_cpuset(r, d, p, UNIFIED)),
    ("hugetlb", "hugetlb", lambda r: bool(r.get("hugepageLimits")), plan_hugetlb),
    ("rdma", "rdma", lambda r: bool(r.get("rdma")), lambda r, d, p: v1.plan_rdma(r, d, p, UNIFIED)),
)


def enable_writes(needed, d, base, available, probe):
    """The "+ctrl" writes into cgroup.subtree_control of base .. parent(d) still needed for `needed`."""
    for c in needed:
        if c not in available:
            raise ConfigError(f"cannot set {c} limit: controller {c!r} is not available on cgroup v2 "
                              f"({base}/cgroup.controllers)")
    if not needed:
        return []
    have = (probe.read(d, "cgroup.controllers") or "").split()
    todo = [c for c in needed if c not in have]
    if not todo:
        return []
    out, chain, cur = [], [], d
    while cur != base and cur.startswith(base.rstrip("/") + "/"):
        cur = os.path.dirname(cur)
        chain.append(cur)
    for a in reversed(chain):
        enabled = (probe.read(a, "cgroup.subtree_control") or "").split()
        for c in todo:
            if c not in enabled:
                out.append(Write(UNIFIED, "cgroup.subtree_control", "+" + c, a))
    return out


def plan(r, d, probe, *, base, available, sections=None, default_devices=True, hybrid=False):
    """All v2 writes for resources r into dir d (hierarchy mounted at base, root controllers `available`).

    sections: restrict to these sections (a hybrid host only has some controllers on v2).
    """
    body, needed = [], []
    for name, ctrl, wants, planner in SECTIONS:
        if sections is not None and name not in sections:
            continue
        if name == "devices":
            if "devices" not in r and not default_devices:
                continue  # update: devices untouched (runc SkipDevices)
            rules = _dev.rule_list(r, default_devices)
            for i, rule in enumerate(rules):
                _dev.rule_string(rule, i)  # validate
            # Always a program, allow-all included (as runc): attaching it also replaces an earlier filter.
            # optional: an allow-all filter may be skipped when bpf(2) is refused (EPERM in a user namespace),
            # as runc's canSkipEBPFError does; anything stricter must not silently go unenforced.
            body.append(Write(UNIFIED, _dev.DEVICE_FILTER, _dev.device_program(rules).bytes(), d,
                              optional=_dev.is_allow_all(rules)))
            continue
        if not wants(r):
            continue
        needed.append(ctrl)
        body.extend(planner(r, d, probe))
    for key, value in (r.get("unified") or {}).items():
        ctrl = unified_controller(key)
        if ctrl not in available and ctrl != "cgroup":
            if hybrid:  # runc's wording (it refuses any unified key unless the whole host is cgroup v2)
                raise ConfigError(f"invalid configuration: cannot use unified on cgroup v1: linux.resources.unified."
                                  f"{key}: controller {ctrl!r} is not on cgroup v2 on this host (hybrid: "
                                  f"cgroup v2 has {' '.join(sorted(available)) or 'no controllers'})")
            raise ConfigError(f"unified resource {key!r} can't be set: controller {ctrl!r} not available")
        if ctrl != "cgroup" and ctrl not in needed:
            needed.append(ctrl)
        body.append(Write(UNIFIED, key, str(value), d))
    return enable_writes(needed, d, base, available, probe) + body
