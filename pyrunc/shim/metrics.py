"""Stats as containerd reads them: the library's runc-style stats (pyrunc/cgroups/stats.py, `pyrunc events
--stats` data) converted to io.containerd.cgroups.v1.Metrics (v1 and hybrid hosts) or .v2.Metrics (unified).

CRI reads v1 cpu.usage.total (ns), memory.usage.usage, memory.total_inactive_file; v2 cpu.usage_usec,
memory.usage, memory.inactive_file (SHIM.md §3.1).  `ctr task metrics` prints a few more of each.
"""

from . import api_cgroups as api  # the Metrics messages

_V1_TOTALS = {n for _, n, _ in api.V1MemoryStat.FIELDS if n.startswith("total_")}
_V1_PLAIN = {n for _, n, _ in api.V1MemoryStat.FIELDS[:17]}
# memory.stat (v1) names that differ from the Metrics field names
_V1_RENAME = {"pgpgin": "pg_pg_in", "pgpgout": "pg_pg_out", "pgfault": "pg_fault", "pgmajfault": "pg_maj_fault"}
_V2_MEMORY = {n for _, n, _ in api.V2MemoryStat.FIELDS}
U64_MAX = (1 << 64) - 1  # "max" in a cgroup v2 limit file


def _mem_entry(e):
    e = e or {}
    return api.V1MemoryEntry(limit=e.get("limit", 0), usage=e.get("usage", 0), max=e.get("max", 0),
                             failcnt=e.get("failcnt", 0))


def to_metrics(s, mode):
    return v2_metrics(s) if mode == "v2" else v1_metrics(s)


def v1_metrics(s):
    cpu = s.get("cpu") or {}
    u, thr = cpu.get("usage") or {}, cpu.get("throttling") or {}
    mem = s.get("memory") or {}
    stat = {}
    for k, v in (mem.get("raw") or {}).items():
        name = _V1_RENAME.get(k, k)
        if name.startswith("total_"):
            name = "total_" + _V1_RENAME.get(name[6:], name[6:])
            if name in _V1_TOTALS:
                stat[name] = v
        elif name in _V1_PLAIN:
            stat[name] = v
    blk = s.get("blkio") or {}

    def rows(key):
        return [api.V1BlkIOEntry(op=e.get("op", ""), major=e.get("major", 0), minor=e.get("minor", 0),
                                 value=e.get("value", 0)) for e in blk.get(key) or ()]

    pids = s.get("pids") or {}
    return api.V1Metrics(
        hugetlb=[api.V1HugetlbStat(usage=h.get("usage", 0), max=h.get("max", 0), failcnt=h.get("failcnt", 0),
                                   pagesize=size) for size, h in sorted((s.get("hugetlb") or {}).items())],
        pids=api.V1PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=api.V1CPUStat(usage=api.V1CPUUsage(total=u.get("total", 0), kernel=u.get("kernel", 0),
                                               user=u.get("user", 0), per_cpu=list(u.get("percpu") or ())),
                          throttling=api.V1Throttle(periods=thr.get("periods", 0),
                                                    throttled_periods=thr.get("throttledPeriods", 0),
                                                    throttled_time=thr.get("throttledTime", 0))),
        memory=api.V1MemoryStat(usage=_mem_entry(mem.get("usage")), swap=_mem_entry(mem.get("swap")),
                                kernel=_mem_entry(mem.get("kernel")), kernel_tcp=_mem_entry(mem.get("kernelTCP")),
                                **stat),
        blkio=api.V1BlkIOStat(io_service_bytes_recursive=rows("ioServiceBytesRecursive"),
                              io_serviced_recursive=rows("ioServicedRecursive")))


def v2_metrics(s):
    """On the unified hierarchy the library reports cgroup v2 files in runc's shape: usage in ns (cpu.stat's
    usec * 1000), memory.current as usage, memory.stat as raw, swap as memory+swap (v1's meaning)."""
    cpu = s.get("cpu") or {}
    u, thr = cpu.get("usage") or {}, cpu.get("throttling") or {}
    mem = s.get("memory") or {}
    raw = mem.get("raw") or {}
    usage, swap = mem.get("usage") or {}, mem.get("swap") or {}
    limit = usage.get("limit", 0)
    stat = {k: v for k, v in raw.items() if k in _V2_MEMORY and k not in ("usage", "usage_limit")}
    io = []
    by_dev = {}
    for key, (r, w) in (("ioServiceBytesRecursive", ("rbytes", "wbytes")), ("ioServicedRecursive", ("rios", "wios"))):
        for e in (s.get("blkio") or {}).get(key) or ():
            dev = (e.get("major", 0), e.get("minor", 0))
            if dev not in by_dev:
                by_dev[dev] = api.V2IOEntry(major=dev[0], minor=dev[1])
                io.append(by_dev[dev])
            field = r if e.get("op") == "Read" else w if e.get("op") == "Write" else None
            if field:
                setattr(by_dev[dev], field, e.get("value", 0))
    pids = s.get("pids") or {}
    swap_limit = swap.get("limit", 0)
    return api.V2Metrics(
        pids=api.V2PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=api.V2CPUStat(usage_usec=u.get("total", 0) // 1000, user_usec=u.get("user", 0) // 1000,
                          system_usec=u.get("kernel", 0) // 1000, nr_periods=thr.get("periods", 0),
                          nr_throttled=thr.get("throttledPeriods", 0),
                          throttled_usec=thr.get("throttledTime", 0) // 1000),
        memory=api.V2MemoryStat(usage=usage.get("usage", 0), usage_limit=limit,
                                swap_usage=max(swap.get("usage", 0) - usage.get("usage", 0), 0),
                                swap_limit=swap_limit if U64_MAX in (swap_limit, limit) else max(swap_limit - limit, 0),
                                **stat),
        io=api.V2IOStat(usage=io),
        hugetlb=[api.V2HugeTlbStat(current=h.get("usage", 0), max=h.get("max", 0), pagesize=size)
                 for size, h in sorted((s.get("hugetlb") or {}).items())])
