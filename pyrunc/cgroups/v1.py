"""cgroup v1 planners: linux.resources -> ordered writes, one function per controller, in runc's order.

Each planner is pure given its inputs: the resources dict, the controller's dir and a read-only Probe (some of
runc's choices depend on the current state: which weight file exists, the current memory limit, ...).
"""

from pyrunc.cgroups import devices as _dev
from pyrunc.cgroups.fs import Write
from pyrunc.errors import ConfigError


def _n(v):
    return v if v is not None else 0


def wants_memory(r):
    m = r.get("memory") or {}
    return any(m.get(k) not in (None, 0, False) for k in
               ("limit", "reservation", "swap", "kernel", "kernelTCP", "disableOOMKiller")) or \
        m.get("swappiness") not in (None, -1)


def plan_memory(r, d, probe):
    m = r.get("memory") or {}
    out = []
    mem, swap = _n(m.get("limit")), _n(m.get("swap"))
    w = lambda f, v, **kw: out.append(Write("memory", f, str(v), d, **kw))  # noqa: E731
    if mem == -1 and swap == 0 and probe.exists(d, "memory.memsw.limit_in_bytes"):
        swap = -1  # unlimited memory with swap unset: unlimited swap too (runc)
    if m.get("checkBeforeUpdate") and (mem > 0 or swap > 0):
        _check_usage(probe.read(d, "memory.usage_in_bytes"), mem, swap)
    swap_first = False
    if mem != 0 and swap != 0:
        # Going up, memsw must be raised before the limit; going down, the other way round: the kernel keeps
        # limit <= memsw at every step.
        cur = probe.read(d, "memory.limit_in_bytes")
        cur = int(cur) if cur and cur.strip().lstrip("-").isdigit() else 0
        swap_first = swap == -1 or cur < swap
    pair = [("memory.limit_in_bytes", mem), ("memory.memsw.limit_in_bytes", swap)]
    for f, v in (reversed(pair) if swap_first else pair):
        if v != 0:
            w(f, v)
    # Kernel memory limits were removed from the kernel (6.x keeps files that refuse writes on some builds):
    # write them only when the files exist, as runc <= 1.0 did; runc >= 1.1 ignores them altogether.
    if _n(m.get("kernel")) and probe.exists(d, "memory.kmem.limit_in_bytes"):
        w("memory.kmem.limit_in_bytes", m["kernel"], optional=True)
    if _n(m.get("kernelTCP")) and probe.exists(d, "memory.kmem.tcp.limit_in_bytes"):
        w("memory.kmem.tcp.limit_in_bytes", m["kernelTCP"], optional=True)
    if _n(m.get("reservation")):
        w("memory.soft_limit_in_bytes", m["reservation"])
    if m.get("disableOOMKiller"):
        w("memory.oom_control", 1)
    sw = m.get("swappiness")
    if sw is not None and sw != -1:
        if not 0 <= sw <= 100:
            raise ConfigError(f"invalid memory swappiness value: {sw} (valid range is 0-100)")
        w("memory.swappiness", sw)
    return out


def _check_usage(text, mem, swap):
    """memory.checkBeforeUpdate: refuse a limit at or below current usage (runc CheckMemoryUsage)."""
    try:
        usage = int(text)
    except (TypeError, ValueError):
        return  # best effort, as runc
    if swap > 0 and swap <= usage:
        raise ConfigError(f"rejecting memory+swap limit {swap} <= usage {usage}")
    if mem > 0 and mem <= usage:
        raise ConfigError(f"rejecting memory limit {mem} <= usage {usage}")


def wants_cpu(r):
    c = r.get("cpu") or {}
    return any(c.get(k) is not None and c.get(k) != 0 for k in ("shares", "quota", "period", "realtimeRuntime",
                                                               "realtimePeriod")) or \
        c.get("burst") is not None or c.get("idle") is not None


def plan_cpu(r, d, probe):
    c = r.get("cpu") or {}
    out = []
    w = lambda f, v, **kw: out.append(Write("cpu", f, str(v), d, **kw))  # noqa: E731
    quota = _n(c.get("quota"))
    if _n(c.get("shares")):
        w("cpu.shares", c["shares"], check="shares")
    if _n(c.get("period")):
        w("cpu.cfs_period_us", c["period"], retry=bool(quota))
    if c.get("burst") is not None:
        w("cpu.cfs_burst_us", c["burst"], optional=True, retry=bool(quota))
    if quota:
        w("cpu.cfs_quota_us", quota)
    if c.get("idle") is not None:
        w("cpu.idle", c["idle"])
    out.extend(plan_rt(r, d))
    return out


def plan_rt(r, d):
    """Realtime bandwidth; runc also writes it before moving a task in (a SCHED_RR task needs it to join)."""
    c = r.get("cpu") or {}
    out = []
    runtime = _n(c.get("realtimeRuntime"))
    if _n(c.get("realtimePeriod")):
        out.append(Write("cpu", "cpu.rt_period_us", str(c["realtimePeriod"]), d, retry=bool(runtime)))
    if runtime:
        out.append(Write("cpu", "cpu.rt_runtime_us", str(runtime), d))
    return out


def wants_cpuset(r):
    c = r.get("cpu") or {}
    return bool(c.get("cpus") or c.get("mems"))


def plan_cpuset(r, d, probe, controller="cpuset"):
    c = r.get("cpu") or {}
    out = []
    if c.get("cpus"):
        out.append(Write(controller, "cpuset.cpus", c["cpus"], d))
    if c.get("mems"):
        out.append(Write(controller, "cpuset.mems", c["mems"], d))
    return out


def wants_pids(r):
    return (r.get("pids") or {}).get("limit") is not None


def pids_value(r):
    limit = r["pids"]["limit"]
    return str(limit) if limit > 0 else "max"  # -1 and 0 both mean unlimited


def plan_pids(r, d, probe):
    return [Write("pids", "pids.max", pids_value(r), d)]


def wants_blkio(r):
    b = r.get("blockIO") or {}
    return any(b.get(k) for k in ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                                  "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"))


THROTTLE = (("throttleReadBpsDevice", "read_bps_device", "rbps"), ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
            ("throttleReadIOPSDevice", "read_iops_device", "riops"),
            ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def plan_blkio(r, d, probe):
    b = r.get("blockIO") or {}
    out = []
    w = lambda f, v: out.append(Write("blkio", f, str(v), d))  # noqa: E731
    # CFQ is gone from modern kernels; BFQ exposes the same knobs under blkio.bfq.* (runc detectWeightFilenames).
    if probe.exists(d, "blkio.weight"):
        wf, wdf = "blkio.weight", "blkio.weight_device"
    else:
        wf, wdf = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if _n(b.get("weight")):
        w(wf, b["weight"])
    if _n(b.get("leafWeight")):
        w("blkio.leaf_weight", b["leafWeight"])
    for wd in b.get("weightDevice") or []:
        if _n(wd.get("weight")):
            w(wdf, f"{wd['major']}:{wd['minor']} {wd['weight']}")
        if _n(wd.get("leafWeight")):
            w("blkio.leaf_weight_device", f"{wd['major']}:{wd['minor']} {wd['leafWeight']}")
    for key, fname, _ in THROTTLE:
        for td in b.get(key) or []:
            w("blkio.throttle." + fname, f"{td['major']}:{td['minor']} {td['rate']}")
    return out


def plan_hugetlb(r, d, probe):
    return [Write("hugetlb", f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]), d)
            for h in r.get("hugepageLimits") or []]


def plan_net_cls(r, d, probe):
    cid = (r.get("network") or {}).get("classID")
    return [Write("net_cls", "net_cls.classid", str(cid), d)] if cid else []


def plan_net_prio(r, d, probe):
    return [Write("net_prio", "net_prio.ifpriomap", f"{p['name']} {p['priority']}", d)
            for p in (r.get("network") or {}).get("priorities") or []]


def rdma_lines(r):
    out = []
    for dev in sorted(r.get("rdma") or {}):
        lim = r["rdma"][dev] or {}
        s = dev
        if lim.get("hcaHandles") is not None:
            s += f" hca_handle={lim['hcaHandles']}"
        if lim.get("hcaObjects") is not None:
            s += f" hca_object={lim['hcaObjects']}"
        out.append(s)
    return out


def plan_rdma(r, d, probe, controller="rdma"):
    return [Write(controller, "rdma.max", s, d) for s in rdma_lines(r)]


def plan_devices(r, d, probe, default_devices=True):
    """Deny everything, then each rule in order (the spec's, then runc's defaults)."""
    if "devices" not in r and not default_devices:
        return []
    out = [Write("devices", "devices.deny", "a", d)]
    for i, rule in enumerate(_dev.rule_list(r, default_devices)):
        text = _dev.rule_string(rule, i)  # validates every rule, written or not
        if len(out) == 1 and not rule.get("allow") and text[0] == "a":
            # a deny of type "a" resets the cgroup to deny-all whatever its access (the kernel's
            # devcgroup_update_access): right after our own reset it changes nothing (runc's spec default
            # starts with one), so it is not written a second time
            continue
        out.append(Write("devices", "devices.allow" if rule.get("allow") else "devices.deny", text, d))
    return out


# (controller, wants(resources) -> bool, planner) in runc's subsystem order.
PLANNERS = (
    ("cpuset", wants_cpuset, plan_cpuset),
    ("devices", None, None),  # handled by plan() (needs default_devices)
    ("memory", wants_memory, plan_memory),
    ("cpu", wants_cpu, plan_cpu),
    ("pids", wants_pids, plan_pids),
    ("blkio", wants_blkio, plan_blkio),
    ("hugetlb", lambda r: bool(r.get("hugepageLimits")), plan_hugetlb),
    ("net_cls", lambda r: bool((r.get("network") or {}).get("classID")), plan_net_cls),
    ("net_prio", lambda r: bool((r.get("network") or {}).get("priorities")), plan_net_prio),
    ("rdma", lambda r: bool(r.get("rdma")), plan_rdma),
)


def missing(controller):
    return ConfigError(f"cannot set {controller} limit: container could not join or create cgroup "
                       f"({controller} controller is not mounted)")


def plan(r, paths, probe, *, default_devices=True, skip=()):
    """All v1 writes for resources r. skip: controllers planned elsewhere (hugetlb on a hybrid host)."""
    out = []
    for ctrl, wants, planner in PLANNERS:
        if ctrl in skip:
            continue
        if ctrl == "devices":
            devs = plan_devices(r, paths.get("devices", ""), probe, default_devices)
            if devs and "devices" not in paths:
                raise missing("devices")
            out.extend(devs)
            continue
        if not wants(r):
            continue
        if ctrl not in paths:
            raise missing(ctrl)
        out.extend(planner(r, paths[ctrl], probe))
    return out
