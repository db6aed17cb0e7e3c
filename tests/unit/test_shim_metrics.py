"""Stats -> io.containerd.cgroups.v1/v2.Metrics over fake stats in the library's (runc's) shape, including a v2
tree read by pyrunc/cgroups/stats.py from a fake cgroupfs (no root)."""

from types import SimpleNamespace

from pyrunc.cgroups import stats as cstats
from pyrunc.shim import api, wire
from pyrunc.shim.metrics import to_metrics, v1_metrics, v2_metrics

U64_MAX = (1 << 64) - 1


def test_v1_fields_cri_and_ctr_read():
    s = {"cpu": {"usage": {"total": 123456789, "percpu": [1, 2], "kernel": 10, "user": 20},
                 "throttling": {"periods": 5, "throttledPeriods": 2, "throttledTime": 99}},
         "memory": {"cache": 4096, "usage": {"limit": 1 << 26, "usage": 5 << 20, "max": 6 << 20, "failcnt": 1},
                    "swap": {"limit": 1 << 27, "usage": 5 << 20, "failcnt": 0},
                    "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
                    "raw": {"cache": 4096, "rss": 8192, "pgfault": 7, "total_inactive_file": 1234,
                            "total_pgmajfault": 3, "hierarchical_memory_limit": 1 << 26, "unknown_key": 1}},
         "pids": {"current": 3, "limit": 10},
         "blkio": {"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 512}]},
         "hugetlb": {"2MB": {"failcnt": 0, "usage": 0}}}
    m = api.V1Metrics.decode(wire.pack(to_metrics(s, "hybrid")).value)
    assert m.cpu.usage.total == 123456789 and m.cpu.usage.per_cpu == [1, 2]
    assert m.cpu.throttling.throttled_periods == 2
    assert m.memory.usage.usage == 5 << 20 and m.memory.usage.limit == 1 << 26
    assert m.memory.total_inactive_file == 1234 and m.memory.pg_fault == 7 and m.memory.total_pg_maj_fault == 3
    assert m.memory.rss == 8192 and m.memory.hierarchical_memory_limit == 1 << 26
    assert (m.pids.current, m.pids.limit) == (3, 10)
    assert m.blkio.io_service_bytes_recursive[0].value == 512
    assert m.hugetlb[0].pagesize == "2MB"
    assert v1_metrics({}).encode() == v1_metrics({"cpu": {}, "memory": {}}).encode()


def _v2_tree(tmp_path):
    d = tmp_path / "c1"
    d.mkdir()
    files = {
        "cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 4\nnr_throttled 1\n"
                    "throttled_usec 700\n",
        "memory.current": "1048576\n", "memory.max": "4194304\n", "memory.peak": "2097152\n",
        "memory.swap.current": "4096\n", "memory.swap.max": "max\n", "memory.events": "max 2\noom_kill 1\n",
        "memory.stat": "anon 100\nfile 200\ninactive_file 150\npgfault 9\n",
        "pids.current": "2\n", "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        "cgroup.procs": "1\n2\n",
    }
    for k, v in files.items():
        (d / k).write_text(v)
    return d


def test_v2_conversion_from_a_fake_unified_tree(tmp_path, monkeypatch):
    d = _v2_tree(tmp_path)
    monkeypatch.setattr(cstats, "hugepage_sizes", lambda *a: [])
    mgr = SimpleNamespace(paths={"": str(d)}, layout=SimpleNamespace(mode="v2"))
    mgr.paths = {cstats.UNIFIED: str(d)}
    s = cstats.collect(mgr)
    m = api.V2Metrics.decode(wire.pack(to_metrics(s, "v2")).value)
    assert (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec) == (5000, 3000, 2000)
    assert (m.cpu.nr_periods, m.cpu.nr_throttled, m.cpu.throttled_usec) == (4, 1, 700)
    assert m.memory.usage == 1048576 and m.memory.usage_limit == 4194304
    assert m.memory.swap_usage == 4096 and m.memory.swap_limit == U64_MAX
    assert (m.memory.anon, m.memory.file, m.memory.inactive_file, m.memory.pgfault) == (100, 200, 150, 9)
    assert m.pids.current == 2 and m.pids.limit == 0
    assert [(e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios) for e in m.io.usage] == [(8, 0, 4096, 8192, 1, 2)]


def test_v2_swap_limit_is_swap_alone():
    s = {"memory": {"usage": {"usage": 10, "limit": 100}, "swap": {"usage": 15, "limit": 150}}}
    m = v2_metrics(s)
    assert (m.memory.swap_usage, m.memory.swap_limit) == (5, 50)
