"""Container resource usage in the shape of runc `events --stats` "data" (runc types/events.go, json tags kept,
omitempty fields dropped when zero as Go would)."""

import os

from pyrunc.cgroups.detect import UNIFIED

U64_MAX = 2**64 - 1
_BLKIO_KEYS = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
               "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive")


def _read(d, f):
    try:
        with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _int(d, f, default=0):
    t = _read(d, f)
    if t is None:
        return default
    t = t.strip()
    if t == "max":
        return U64_MAX
    try:
        return int(t)
    except ValueError:
        return default


def _keyed(d, f):
    out = {}
    for line in (_read(d, f) or "").splitlines():
        p = line.split()
        if len(p) == 2 and p[1].isdigit():
            out[p[0]] = int(p[1])
    return out


def hugepage_sizes(sysfs="/sys/kernel/mm/hugepages"):
    """"hugepages-2048kB" -> "2MB", as runc HugePageSizes (sorted by size)."""
    out = []
    try:
        names = os.listdir(sysfs)
    except OSError:
        return out
    for n in names:
        if not (n.startswith("hugepages-") and n.endswith("kB")):
            continue
        kb = int(n[len("hugepages-"):-2])
        size, unit = kb * 1024, 0
        units = ("B", "KB", "MB", "GB", "TB", "PB")
        while size >= 1024 and size % 1024 == 0 and unit < len(units) - 1:
            size //= 1024
            unit += 1
        out.append((kb, f"{size}{units[unit]}"))
    return [s for _, s in sorted(out)]


def _entry(usage=0, mx=0, failcnt=0, limit=0):
    """runc types.MemoryEntry, in its field order: limit, usage (omitempty), max (omitempty), failcnt."""
    e = {"limit": limit}
    if usage:
        e["usage"] = usage
    if mx:
        e["max"] = mx
    e["failcnt"] = failcnt
    return e


def _cpu_list(text):
    """"0-2,5" -> [0, 1, 2, 5] (runc parses cpuset.cpus/mems into lists of numbers)."""
    out = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


_CPUSET_V1 = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
              "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")


def _cpuset(d, v2):
    """runc types.CPUSet: cpus/mems lists (omitempty) and the v1 flags, zero when the host has no such file."""
    if d and v2:
        cpus, mems = _read(d, "cpuset.cpus.effective"), _read(d, "cpuset.mems.effective")
    elif d:
        cpus, mems = _read(d, "cpuset.cpus"), _read(d, "cpuset.mems")
    else:
        cpus = mems = None
    out = {}
    if _cpu_list(cpus):
        out["cpus"] = _cpu_list(cpus)
    out["cpu_exclusive"] = _int(d, "cpuset.cpu_exclusive") if d and not v2 else 0
    if _cpu_list(mems):
        out["mems"] = _cpu_list(mems)
    for k in _CPUSET_V1[1:]:
        out[k] = _int(d, "cpuset." + k) if d and not v2 else 0
    return out


def _mem_v1(d, prefix):
    if _read(d, prefix + ".usage_in_bytes") is None:
        return {"limit": 0, "failcnt": 0}
    return _entry(_int(d, prefix + ".usage_in_bytes"), _int(d, prefix + ".max_usage_in_bytes"),
                  _int(d, prefix + ".failcnt"), _int(d, prefix + ".limit_in_bytes"))


def _blkio_v1(d):
    out = {}
    for pre in ("blkio.bfq.", "blkio.throttle."):
        if _read(d, pre + "io_service_bytes_recursive") is None:
            continue
        for key, f in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                       ("ioServicedRecursive", "io_serviced_recursive")):
            rows = []
            for line in (_read(d, pre + f) or "").splitlines():
                p = line.replace(":", " ").split()
                if len(p) == 4 and p[0].isdigit():
                    rows.append(_blk(int(p[0]), int(p[1]), p[2], int(p[3])))
            if rows:
                out[key] = rows
        break
    return out


def _blk(major, minor, op, value):
    e = {}
    for k, v in (("major", major), ("minor", minor), ("op", op), ("value", value)):
        if v:
            e[k] = v
    return e


def _cpu_v1(paths):
    usage, thr = {"kernel": 0, "user": 0}, {}
    d = paths.get("cpuacct")
    if d:
        usage = {"total": _int(d, "cpuacct.usage")}
        percpu = [int(x) for x in (_read(d, "cpuacct.usage_percpu") or "").split() if x.isdigit()]
        if percpu:
            usage["percpu"] = percpu
        rows = [line.split() for line in (_read(d, "cpuacct.usage_all") or "").splitlines()[1:]]
        rows = [r for r in rows if len(r) == 3 and all(x.isdigit() for x in r)]
        if rows:
            usage["percpu_kernel"] = [int(r[2]) for r in rows]
            usage["percpu_user"] = [int(r[1]) for r in rows]
        usage["kernel"], usage["user"] = 0, 0  # after the lists: runc's field order
        st = _keyed(d, "cpuacct.stat")
        usage["user"] = st.get("user", 0) * 10**9 // 100  # USER_HZ is 100 on Linux
        usage["kernel"] = st.get("system", 0) * 10**9 // 100
    d = paths.get("cpu")
    if d:
        st = _keyed(d, "cpu.stat")
        thr = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
               "throttledTime": st.get("throttled_time", 0)}
    return usage, thr


def _v2(d, data, hybrid):
    if not hybrid:
        st = _keyed(d, "cpu.stat")
        data["cpu"]["usage"] = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                                "user": st.get("user_usec", 0) * 1000}
        data["cpuset"] = _cpuset(d if _read(d, "cpuset.cpus.effective") is not None else None, True)
        data["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0),
                                     "throttledPeriods": st.get("nr_throttled", 0),
                                     "throttledTime": st.get("throttled_usec", 0) * 1000}
        if _read(d, "pids.current") is not None:
            lim = _int(d, "pids.max")
            data["pids"] = {"current": _int(d, "pids.current"), "limit": 0 if lim == U64_MAX else lim}
        else:
            data["pids"] = {"current": len((_read(d, "cgroup.procs") or "").split())}
        raw = _keyed(d, "memory.stat")
        if _read(d, "memory.current") is not None:
            usage = _int(d, "memory.current")
            limit = _int(d, "memory.max")
            swap = _int(d, "memory.swap.current")
            slimit = _int(d, "memory.swap.max")
            mem = data["memory"]
            if raw.get("file"):
                mem["cache"] = raw["file"]
            mem["usage"] = _entry(usage, _int(d, "memory.peak"), _keyed(d, "memory.events").get("max", 0), limit)
            # v1 reports swap as memory+swap: keep that meaning for callers that compare the two.
            mem["swap"] = _entry(usage + swap, 0, _keyed(d, "memory.swap.events").get("max", 0),
                                 slimit if slimit == U64_MAX or limit == U64_MAX else slimit + limit)
            if raw:
                mem["raw"] = raw
        rows = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
        for line in (_read(d, "io.stat") or "").splitlines():
            p = line.split()
            if not p or ":" not in p[0]:
                continue
            ma, mi = (int(x) for x in p[0].split(":"))
            for kv in p[1:]:
                k, _, v = kv.partition("=")
                key = {"rbytes": ("ioServiceBytesRecursive", "Read"), "wbytes": ("ioServiceBytesRecursive", "Write"),
                       "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}.get(k)
                if key and v.isdigit():
                    rows[key[0]].append(_blk(ma, mi, key[1], int(v)))
        data["blkio"] = {k: v for k, v in rows.items() if v}
    hs = {}
    for size in hugepage_sizes():
        if _read(d, f"hugetlb.{size}.current") is None:
            continue
        hs[size] = {"failcnt": _keyed(d, f"hugetlb.{size}.events").get("max", 0)}
        if _int(d, f"hugetlb.{size}.current"):
            hs[size]["usage"] = _int(d, f"hugetlb.{size}.current")
    if hs:
        data["hugetlb"].update(hs)


def collect(mgr):
    p = mgr.paths
    data = {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}}, "cpuset": {}, "memory": {},
            "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}
    if mgr.layout.mode != "v2":
        data["cpu"]["usage"], data["cpu"]["throttling"] = _cpu_v1(p)
        data["cpuset"] = _cpuset(p.get("cpuset"), False)
        d = p.get("memory")
        if d:
            raw = _keyed(d, "memory.stat")
            mem = {"cache": raw["cache"]} if raw.get("cache") else {}
            mem.update(usage=_mem_v1(d, "memory"), swap=_mem_v1(d, "memory.memsw"),
                       kernel=_mem_v1(d, "memory.kmem"), kernelTCP=_mem_v1(d, "memory.kmem.tcp"))
            if raw:
                mem["raw"] = raw
            data["memory"] = mem
        d = p.get("pids")
        if d:
            lim = _int(d, "pids.max")
            data["pids"] = {"current": _int(d, "pids.current"), "limit": 0 if lim == U64_MAX else lim}
        if p.get("blkio"):
            data["blkio"] = _blkio_v1(p["blkio"])
        d = p.get("hugetlb")
        if d:
            for size in hugepage_sizes():
                data["hugetlb"][size] = {"usage": _int(d, f"hugetlb.{size}.usage_in_bytes"),
                                         "max": _int(d, f"hugetlb.{size}.max_usage_in_bytes"),
                                         "failcnt": _int(d, f"hugetlb.{size}.failcnt")}
    if UNIFIED in p and os.path.isdir(p[UNIFIED]):
        _v2(p[UNIFIED], data, hybrid=mgr.layout.mode == "hybrid")
    # Go's omitempty on numbers: drop zero counters where runc would.
    data["pids"] = {k: v for k, v in data["pids"].items() if v}
    data["cpu"]["throttling"] = {k: v for k, v in data["cpu"]["throttling"].items() if v}
    if not data["cpu"]["usage"].get("total"):
        data["cpu"]["usage"].pop("total", None)
    for h in data["hugetlb"].values():
        for k in ("usage", "max"):
            if not h.get(k, 1):
                h.pop(k)
    return data
