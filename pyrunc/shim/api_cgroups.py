"""io.containerd.cgroups.v1.Metrics and .v2.Metrics with their parts (the cgroups `stats/v1` and `v2/stats`
metrics.proto vendored by containerd 1.6.20): the Stats answer only, so they are built on the first Stats, not
before every daemon's first Create (~0.4 ms of class creation).  api.py gives them out by name (api.V1Metrics...)
and lists them in api.REGISTRY."""

from .wire import Msg, Repeated, STRING, UINT32, UINT64

# --- io.containerd.cgroups.v1 (Stats on cgroup v1 / hybrid) ----------------------------------------------------------


def _v1(name):
    return "io.containerd.cgroups.v1." + name


class V1HugetlbStat(Msg):
    NAME = _v1("HugetlbStat")
    FIELDS = ((1, "usage", UINT64), (2, "max", UINT64), (3, "failcnt", UINT64), (4, "pagesize", STRING))


class V1PidsStat(Msg):
    NAME = _v1("PidsStat")
    FIELDS = ((1, "current", UINT64), (2, "limit", UINT64))


class V1CPUUsage(Msg):
    NAME = _v1("CPUUsage")
    FIELDS = ((1, "total", UINT64), (2, "kernel", UINT64), (3, "user", UINT64), (4, "per_cpu", Repeated(UINT64)))


class V1Throttle(Msg):
    NAME = _v1("Throttle")
    FIELDS = ((1, "periods", UINT64), (2, "throttled_periods", UINT64), (3, "throttled_time", UINT64))


class V1CPUStat(Msg):
    NAME = _v1("CPUStat")
    FIELDS = ((1, "usage", V1CPUUsage), (2, "throttling", V1Throttle))


class V1MemoryEntry(Msg):
    NAME = _v1("MemoryEntry")
    FIELDS = ((1, "limit", UINT64), (2, "usage", UINT64), (3, "max", UINT64), (4, "failcnt", UINT64))


_V1_MEMORY_COUNTERS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in", "pg_pg_out", "pg_fault",
    "pg_maj_fault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "hierarchical_memory_limit", "hierarchical_swap_limit")


class V1MemoryStat(Msg):
    """Fields 1-17 are the memory.stat counters, 18-32 their total_ variants (same order, without the two limits)."""
    NAME = _v1("MemoryStat")
    FIELDS = (tuple((i + 1, n, UINT64) for i, n in enumerate(_V1_MEMORY_COUNTERS))
              + tuple((18 + i, "total_" + n, UINT64) for i, n in enumerate(_V1_MEMORY_COUNTERS[:15]))
              + ((33, "usage", V1MemoryEntry), (34, "swap", V1MemoryEntry), (35, "kernel", V1MemoryEntry),
                 (36, "kernel_tcp", V1MemoryEntry)))


class V1BlkIOEntry(Msg):
    NAME = _v1("BlkIOEntry")
    FIELDS = ((1, "op", STRING), (2, "device", STRING), (3, "major", UINT64), (4, "minor", UINT64),
              (5, "value", UINT64))


class V1BlkIOStat(Msg):
    NAME = _v1("BlkIOStat")
    FIELDS = tuple((i + 1, n, Repeated(V1BlkIOEntry)) for i, n in enumerate((
        "io_service_bytes_recursive", "io_serviced_recursive", "io_queued_recursive", "io_service_time_recursive",
        "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive")))


class V1RdmaEntry(Msg):
    NAME = _v1("RdmaEntry")
    FIELDS = ((1, "device", STRING), (2, "hca_handles", UINT32), (3, "hca_objects", UINT32))


class V1RdmaStat(Msg):
    NAME = _v1("RdmaStat")
    FIELDS = ((1, "current", Repeated(V1RdmaEntry)), (2, "limit", Repeated(V1RdmaEntry)))


class V1NetworkStat(Msg):
    NAME = _v1("NetworkStat")
    FIELDS = ((1, "name", STRING),) + tuple((i + 2, n, UINT64) for i, n in enumerate((
        "rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")))


class V1CgroupStats(Msg):
    NAME = _v1("CgroupStats")
    FIELDS = tuple((i + 1, n, UINT64) for i, n in enumerate((
        "nr_sleeping", "nr_running", "nr_stopped", "nr_uninterruptible", "nr_io_wait")))


class V1MemoryOomControl(Msg):
    NAME = _v1("MemoryOomControl")
    FIELDS = ((1, "oom_kill_disable", UINT64), (2, "under_oom", UINT64), (3, "oom_kill", UINT64))


class V1Metrics(Msg):
    NAME = _v1("Metrics")
    FIELDS = ((1, "hugetlb", Repeated(V1HugetlbStat)), (2, "pids", V1PidsStat), (3, "cpu", V1CPUStat),
              (4, "memory", V1MemoryStat), (5, "blkio", V1BlkIOStat), (6, "rdma", V1RdmaStat),
              (7, "network", Repeated(V1NetworkStat)), (8, "cgroup_stats", V1CgroupStats),
              (9, "memory_oom_control", V1MemoryOomControl))


# --- io.containerd.cgroups.v2 (Stats on the unified hierarchy) --------------------------------------------------------


def _v2(name):
    return "io.containerd.cgroups.v2." + name


class V2PidsStat(Msg):
    NAME = _v2("PidsStat")
    FIELDS = V1PidsStat.FIELDS


class V2CPUStat(Msg):
    NAME = _v2("CPUStat")
    FIELDS = tuple((i + 1, n, UINT64) for i, n in enumerate((
        "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")))


class V2MemoryStat(Msg):
    NAME = _v2("MemoryStat")
    FIELDS = tuple((i + 1, n, UINT64) for i, n in enumerate((
        "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
        "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable", "slab_reclaimable",
        "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault", "workingset_activate",
        "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
        "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc", "usage", "usage_limit", "swap_usage", "swap_limit")))


class V2MemoryEvents(Msg):
    NAME = _v2("MemoryEvents")
    FIELDS = tuple((i + 1, n, UINT64) for i, n in enumerate(("low", "high", "max", "oom", "oom_kill")))


class V2RdmaEntry(Msg):
    NAME = _v2("RdmaEntry")
    FIELDS = V1RdmaEntry.FIELDS


class V2RdmaStat(Msg):
    NAME = _v2("RdmaStat")
    FIELDS = ((1, "current", Repeated(V2RdmaEntry)), (2, "limit", Repeated(V2RdmaEntry)))


class V2IOEntry(Msg):
    NAME = _v2("IOEntry")
    FIELDS = tuple((i + 1, n, UINT64) for i, n in enumerate(("major", "minor", "rbytes", "wbytes", "rios", "wios")))


class V2IOStat(Msg):
    NAME = _v2("IOStat")
    FIELDS = ((1, "usage", Repeated(V2IOEntry)),)


class V2HugeTlbStat(Msg):
    NAME = _v2("HugeTlbStat")
    FIELDS = ((1, "current", UINT64), (2, "max", UINT64), (3, "pagesize", STRING))


class V2Metrics(Msg):
    NAME = _v2("Metrics")
    FIELDS = ((1, "pids", V2PidsStat), (2, "cpu", V2CPUStat), (4, "memory", V2MemoryStat), (5, "rdma", V2RdmaStat),
              (6, "io", V2IOStat), (7, "hugetlb", Repeated(V2HugeTlbStat)), (8, "memory_events", V2MemoryEvents))
