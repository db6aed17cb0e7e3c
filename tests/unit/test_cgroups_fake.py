"""pyrunc.cgroups over temp-dir fake cgroupfs trees (no root): v1 (systemd-style combined mounts), v2, and this
host's hybrid layout. Plans are compared write by write; apply is checked on the resulting file contents."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

from pyrunc.cgroups import detect, fs, manager as mgrmod, open_manager, manager_from_paths
from pyrunc.errors import ConfigError, PyruncError, SysError

MAX = "9223372036854771712"

V1_FILES = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpu_exclusive": "0"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "memory": {"memory.limit_in_bytes": MAX, "memory.memsw.limit_in_bytes": MAX, "memory.soft_limit_in_bytes": MAX,
               "memory.kmem.limit_in_bytes": MAX, "memory.kmem.tcp.limit_in_bytes": MAX,
               "memory.swappiness": "60", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192", "memory.failcnt": "0",
               "memory.memsw.usage_in_bytes": "4096", "memory.memsw.max_usage_in_bytes": "8192",
               "memory.memsw.failcnt": "0", "memory.stat": "cache 10\nrss 20\n", "memory.use_hierarchy": "1",
               "cgroup.event_control": ""},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.cfs_burst_us": "0",
            "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0", "cpu.idle": "0",
            "cpu.stat": "nr_periods 3\nnr_throttled 1\nthrottled_time 77\n"},
    "cpuacct": {"cpuacct.usage": "5000", "cpuacct.usage_percpu": "2000 3000 ", "cpuacct.stat": "user 1\nsystem 2\n"},
    "pids": {"pids.max": "max", "pids.current": "2"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 200\nTotal 300\n",
              "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"},
    "freezer": {"freezer.state": "THAWED", "freezer.self_freezing": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "lo 0\n"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": MAX, "hugetlb.1GB.limit_in_bytes": MAX},
    "systemd": {},
}
V2_CTRLS = "cpuset cpu io memory hugetlb pids rdma misc"
V2_FILES = {
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
    "memory": {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
               "memory.swap.current": "0", "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
               "memory.stat": "anon 4096\nfile 100\n", "memory.peak": "9000"},
    "io": {"io.weight": "default 100", "io.max": "", "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n"},
    "pids": {"pids.max": "max", "pids.current": "1"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.2MB.current": "0",
                "hugetlb.2MB.events": "max 0\n"},
    "rdma": {"rdma.max": ""},
}
V2_CORE = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.events": "populated 0\nfrozen 0\n",
           "cgroup.freeze": "0", "cgroup.kill": "", "cgroup.type": "domain", "cpu.stat": "usage_usec 7\n"}


def _files(d, files):
    os.makedirs(d, exist_ok=True)
    for k, v in files.items():
        with open(os.path.join(d, k), "w") as f:
            f.write(v)


def _v1_ctrl_files(name):
    out = {"cgroup.procs": "", "tasks": ""}
    for c in name.split(","):
        out.update(V1_FILES[c])
    return out


def build_v1(root, names=("cpuset", "devices", "memory", "cpu,cpuacct", "pids", "blkio", "freezer",
                          "net_cls,net_prio", "hugetlb", "systemd")):
    for n in names:
        files = _v1_ctrl_files(n)
        if n == "cpuset":
            files.update({"cpuset.cpus": "0-3", "cpuset.mems": "0"})
        _files(os.path.join(root, n), files)
        if "," in n:  # systemd hosts add aliases: cpu -> cpu,cpuacct
            for alias in n.split(","):
                os.symlink(n, os.path.join(root, alias))
    return root


def build_v2(root):
    _files(root, {"cgroup.controllers": V2_CTRLS, "cgroup.subtree_control": "", "cgroup.procs": "1\n",
                  "cpu.stat": "usage_usec 1\n"})
    return root


def build_hybrid(root):
    build_v1(root, ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"))
    _files(os.path.join(root, "unified"), {"cgroup.controllers": "hugetlb", "cgroup.subtree_control": "",
                                           "cgroup.procs": "1\n"})
    return root


@pytest.fixture
def fake_kernel(monkeypatch):
    """mkdir/rmdir hooks that behave like cgroupfs: a new dir comes with its controller files; rmdir drops them."""

    def mkdir(path, mode=0o777):
        os.mkdir(path, mode)
        parent = os.path.dirname(path)
        if os.path.exists(os.path.join(parent, "cgroup.controllers")):  # v2
            enabled = [c.lstrip("+") for c in open(os.path.join(parent, "cgroup.subtree_control")).read().split()]
            files = dict(V2_CORE, **{"cgroup.controllers": " ".join(enabled)})
            for c in enabled:
                files.update(V2_FILES.get(c, {}))
            _files(path, files)
        else:
            hier = os.path.basename(_hier_of(path))
            _files(path, _v1_ctrl_files(hier))

    def rmdir(path):
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)

    monkeypatch.setattr(mgrmod, "_mkdir", mkdir)
    monkeypatch.setattr(mgrmod, "_rmdir", rmdir)


def _hier_of(path):
    """The hierarchy dir (child of the fake root) that path lives in."""
    cur = path
    while not os.path.exists(os.path.join(os.path.dirname(cur), "FAKEROOT")):
        cur = os.path.dirname(cur)
    return cur


@pytest.fixture
def fake(tmp_path):
    """-> (root, proc) with an empty proc/self/cgroup to fill per test."""
    root = tmp_path / "cg"
    root.mkdir()
    (root / "FAKEROOT").write_text("")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "1" / "comm").write_text("init\n")
    return str(root), str(proc)


def own(proc, text, pid="self"):
    os.makedirs(os.path.join(proc, pid), exist_ok=True)
    with open(os.path.join(proc, pid, "cgroup"), "w") as f:
        f.write(text)


def brief(writes, root):
    return [(w.controller, os.path.relpath(os.path.join(w.dir, w.filename), root), w.value) for w in writes]


def read(root, rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


# -- detection and paths ---------------------------------------------------------------------------------------

def test_detect_v1_combined_mounts(fake):
    root, _ = fake
    build_v1(root)
    lay = detect.detect(root, mountinfo="")
    assert lay.mode == "v1" and lay.unified is None
    assert lay.v1["cpu"] == lay.v1["cpuacct"] == os.path.join(root, "cpu,cpuacct")
    assert lay.v1["net_prio"] == os.path.join(root, "net_cls,net_prio")
    assert lay.v1["name=systemd"] == os.path.join(root, "systemd")


def test_detect_v2_and_hybrid(fake, tmp_path):
    root, _ = fake
    build_v2(root)
    lay = detect.detect(root, mountinfo="")
    assert lay.mode == "v2" and lay.unified == root and lay.v1 == {}
    assert "hugetlb" in lay.unified_controllers
    hroot = str(tmp_path / "h")
    build_hybrid(hroot)
    lay = detect.detect(hroot, mountinfo="")
    assert lay.mode == "hybrid" and lay.unified == os.path.join(hroot, "unified")
    assert lay.unified_controllers == ("hugetlb",) and "hugetlb" not in lay.v1


def test_detect_from_mountinfo_uses_mount_root():
    mi = ("32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
          "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
          "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
          "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
          "50 23 0:40 / /other/cgroup rw - cgroup cgroup rw,pids\n")
    lay = detect.detect("/sys/fs/cgroup", mountinfo=mi)
    assert lay.mode == "hybrid" and set(lay.v1) == {"cpu", "memory", "name=systemd"}
    assert lay.v1_mount_root["memory"] == "/docker/abc"
    paths = mgrmod.compute_paths(lay, "c1", {"cpu": "/x", "memory": "/docker/abc/y", "name=systemd": "/",
                                            "": "/u"})
    assert paths["memory"] == "/sys/fs/cgroup/memory/y/c1"
    assert paths["cpu"] == "/sys/fs/cgroup/cpu/x/c1"


@pytest.mark.parametrize("given,want", [
    ("", ""), ("a/b", "a/b"), ("../../etc/x", "etc/x"), ("/a/../../b", "/b"), ("a/./b/../c", "a/c"),
    ("/", "/"), ("..", ""), ("//x//y/", "/x/y"),
])
def test_clean_path(given, want):
    assert detect.clean_path(given) == want


def test_paths_absolute_relative_default_v1(fake):
    root, proc = fake
    build_v1(root)
    own(proc, "7:memory:/user/1\n6:cpu,cpuacct:/\n3:name=systemd:/s\n2:devices:/d\n0::/\n")
    m = open_manager("/a/../../pyrunc/c1", "id", root=root, proc=proc)
    assert m.paths["memory"] == os.path.join(root, "memory", "pyrunc/c1")
    assert m.paths["cpu"] == m.paths["cpuacct"] == os.path.join(root, "cpu,cpuacct", "pyrunc/c1")
    # relative: under the caller's own cgroup of each controller; a controller we are not in is left out
    m = open_manager("../../x/y", "id", root=root, proc=proc)
    assert m.paths["memory"] == os.path.join(root, "memory/user/1/x/y")
    assert m.paths["devices"] == os.path.join(root, "devices/d/x/y")
    assert m.paths["name=systemd"] == os.path.join(root, "systemd/s/x/y")
    assert "pids" not in m.paths
    # absent: the container id, relative
    m = open_manager(None, "ctr-1", root=root, proc=proc)
    assert m.paths["memory"] == os.path.join(root, "memory/user/1/ctr-1")
    assert json.loads(json.dumps(m.paths)) == m.paths
    # caller_pid picks another process's cgroup file
    own(proc, "7:memory:/other\n", pid="4242")
    m = open_manager("rel", "id", root=root, proc=proc, caller_pid=4242)
    assert m.paths == {"memory": os.path.join(root, "memory/other/rel")}


def test_paths_v2_relative_uses_parent_of_own_cgroup(fake):
    root, proc = fake
    build_v2(root)
    own(proc, "0::/user.slice/session-1.scope\n")
    m = open_manager(None, "c1", root=root, proc=proc)
    assert m.paths == {"": os.path.join(root, "user.slice/c1")}
    m = open_manager("/abs/c2", "c1", root=root, proc=proc)
    assert m.paths == {"": os.path.join(root, "abs/c2")}


def test_paths_hybrid(fake):
    root, proc = fake
    build_hybrid(root)
    own(proc, "4:memory:/m\n9:name=systemd:/\n8:pids:/\n0::/u\n")
    m = open_manager(None, "c1", root=root, proc=proc)
    assert m.paths[""] == os.path.join(root, "unified/u/c1")
    assert m.paths["memory"] == os.path.join(root, "memory/m/c1")
    assert m.paths["pids"] == os.path.join(root, "pids/c1")


def test_systemd_driver_refused_without_systemd(fake, tmp_path):
    root, proc = fake
    build_v1(root)
    before = sorted(os.walk(root))
    with pytest.raises(ConfigError, match=r"^systemd cgroup driver: systemd is not running \(pid 1 is init\)$"):
        open_manager("system.slice:pyrunc:c1", "c1", root=root, systemd=True, proc=proc, run=str(tmp_path / "run"))
    assert sorted(os.walk(root)) == before


# -- create / destroy ------------------------------------------------------------------------------------------

def test_create_copies_cpuset_and_destroy_removes_only_created(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    os.makedirs(os.path.join(root, "memory", "pre"))  # exists already: not ours
    m = open_manager("/pre/c1", "c1", root=root, proc=proc)
    m.create()
    assert os.path.join(root, "memory/pre/c1") in m.created
    assert os.path.join(root, "memory/pre") not in m.created
    assert os.path.join(root, "cpuset/pre") in m.created
    assert os.path.join(root, "cpu,cpuacct/pre/c1") in m.created
    assert read(root, "cpuset/pre/cpuset.cpus") == "0-3" and read(root, "cpuset/pre/c1/cpuset.mems") == "0"
    m2 = manager_from_paths(json.loads(json.dumps(m.paths)), root=root, created=m.created, proc=proc)
    m2.destroy()
    assert os.path.isdir(os.path.join(root, "memory/pre"))
    assert not os.path.exists(os.path.join(root, "memory/pre/c1"))
    assert not os.path.exists(os.path.join(root, "cpuset/pre"))
    assert m2.created == []


def test_create_failure_undoes(fake, fake_kernel, monkeypatch):
    root, proc = fake
    build_v1(root)
    real = mgrmod._mkdir

    def failing(path, mode=0o777):
        if "/pids/" in path:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real(path, mode)

    monkeypatch.setattr(mgrmod, "_mkdir", failing)
    m = open_manager("/p/c1", "c1", root=root, proc=proc)
    with pytest.raises(SysError, match=r"^mkdir .*/pids/p: no space left on device \(ENOSPC\)$"):
        m.create()
    for n in ("cpuset", "devices", "memory", "cpu,cpuacct"):
        assert not os.path.exists(os.path.join(root, n, "p"))
    assert m.created == []


def test_reopened_manager_destroys_leaves(fake, fake_kernel):
    root, proc = fake
    build_v1(root, ("memory", "pids"))
    m = open_manager("/a/b", "c", root=root, proc=proc)
    m.create()
    manager_from_paths(m.paths, root=root, proc=proc).destroy()
    assert not os.path.exists(os.path.join(root, "memory/a/b")) and os.path.isdir(os.path.join(root, "memory/a"))


# -- plans -----------------------------------------------------------------------------------------------------

FULL = {
    "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20, "kernel": 1 << 20,
               "kernelTCP": 2 << 20, "swappiness": 0, "disableOOMKiller": True},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "realtimeRuntime": 950,
            "realtimePeriod": 1000, "cpus": "0-1", "mems": "0", "idle": 0},
    "pids": {"limit": 64},
    "blockIO": {"weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 1}]},
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                     "access": "rw"}],
}


def test_v1_full_plan_in_runc_order(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    got = brief(m.plan(FULL, default_devices=False), root)
    assert got == [
        ("cpuset", "cpuset/c/cpuset.cpus", "0-1"),
        ("cpuset", "cpuset/c/cpuset.mems", "0"),
        ("devices", "devices/c/devices.deny", "a"),  # the spec's own "a" deny repeats it: written once
        ("devices", "devices/c/devices.allow", "c 1:3 rw"),
        # the current limit (MAX) is not below the new memsw: lowering, so the limit goes first
        ("memory", "memory/c/memory.limit_in_bytes", str(100 << 20)),
        ("memory", "memory/c/memory.memsw.limit_in_bytes", str(200 << 20)),
        ("memory", "memory/c/memory.kmem.limit_in_bytes", str(1 << 20)),
        ("memory", "memory/c/memory.kmem.tcp.limit_in_bytes", str(2 << 20)),
        ("memory", "memory/c/memory.soft_limit_in_bytes", str(50 << 20)),
        ("memory", "memory/c/memory.oom_control", "1"),
        ("memory", "memory/c/memory.swappiness", "0"),
        ("cpu", "cpu,cpuacct/c/cpu.shares", "512"),
        ("cpu", "cpu,cpuacct/c/cpu.cfs_period_us", "100000"),
        ("cpu", "cpu,cpuacct/c/cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu,cpuacct/c/cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu,cpuacct/c/cpu.idle", "0"),
        ("cpu", "cpu,cpuacct/c/cpu.rt_period_us", "1000"),
        ("cpu", "cpu,cpuacct/c/cpu.rt_runtime_us", "950"),
        ("pids", "pids/c/pids.max", "64"),
        ("blkio", "blkio/c/blkio.bfq.weight", "500"),
        ("blkio", "blkio/c/blkio.leaf_weight", "300"),
        ("blkio", "blkio/c/blkio.bfq.weight_device", "8:0 600"),
        ("blkio", "blkio/c/blkio.leaf_weight_device", "8:0 200"),
        ("blkio", "blkio/c/blkio.throttle.read_bps_device", "8:0 1000"),
        ("blkio", "blkio/c/blkio.throttle.write_bps_device", "8:0 2000"),
        ("blkio", "blkio/c/blkio.throttle.read_iops_device", "8:0 10"),
        ("blkio", "blkio/c/blkio.throttle.write_iops_device", "8:0 20"),
        ("hugetlb", "hugetlb/c/hugetlb.2MB.limit_in_bytes", "4194304"),
        ("net_cls", "net_cls,net_prio/c/net_cls.classid", "1048577"),
        ("net_prio", "net_cls,net_prio/c/net_prio.ifpriomap", "eth0 5"),
        ("net_prio", "net_cls,net_prio/c/net_prio.ifpriomap", "lo 1"),
    ]


def test_v1_memory_swap_order_depends_on_current_limit(fake, fake_kernel):
    root, proc = fake
    build_v1(root, ("memory",))
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    with open(os.path.join(root, "memory/c/memory.limit_in_bytes"), "w") as f:
        f.write("1000")
    r = {"memory": {"limit": 2000, "swap": 3000}}
    assert [w.filename for w in m.plan(r, default_devices=False)] == [
        "memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]  # growing: memsw first
    r = {"memory": {"limit": -1}}
    assert [(w.filename, w.value) for w in m.plan(r, default_devices=False)] == [
        ("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]
    with pytest.raises(ConfigError, match=r"invalid memory swappiness value: 101 \(valid range is 0-100\)"):
        m.plan({"memory": {"swappiness": 101}}, default_devices=False)
    assert m.plan({"memory": {"swappiness": -1}}, default_devices=False) == []
    # checkBeforeUpdate: usage is 4096
    with pytest.raises(ConfigError, match="rejecting memory limit 4000 <= usage 4096"):
        m.plan({"memory": {"limit": 4000, "checkBeforeUpdate": True}}, default_devices=False)


def test_v1_kernel_memory_skipped_when_files_absent(fake, fake_kernel):
    root, proc = fake
    build_v1(root, ("memory",))
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    os.unlink(os.path.join(root, "memory/c/memory.kmem.limit_in_bytes"))
    os.unlink(os.path.join(root, "memory/c/memory.kmem.tcp.limit_in_bytes"))
    assert m.plan({"memory": {"kernel": 5, "kernelTCP": 6}}, default_devices=False) == []


@pytest.mark.parametrize("limit,want", [(-1, "max"), (0, "max"), (12, "12")])
def test_pids_limit_values(fake, fake_kernel, limit, want):
    root, proc = fake
    build_v1(root, ("pids",))
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    m.apply({"pids": {"limit": limit}}, default_devices=False)
    assert read(root, "pids/c/pids.max") == want


def test_v1_default_devices_and_rule_errors(fake, fake_kernel):
    root, proc = fake
    build_v1(root, ("devices",))
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    plan = [(w.filename, w.value) for w in m.plan({})]
    assert plan[0] == ("devices.deny", "a")
    assert ("devices.allow", "c 1:3 rwm") in plan and ("devices.allow", "c 136:* rwm") in plan
    assert plan[-1] == ("devices.allow", "c 10:200 rwm")
    assert m.plan({}, default_devices=False) == []
    with pytest.raises(ConfigError, match="device access at 0 field cannot be empty"):
        m.plan({"devices": [{"allow": True}]})
    with pytest.raises(ConfigError, match="invalid cgroup device type 'x'"):
        m.plan({"devices": [{"allow": True, "type": "x", "access": "r"}]})


def test_v1_rejects_unified_and_missing_controllers(fake, fake_kernel):
    root, proc = fake
    build_v1(root, ("memory", "devices"))
    m = open_manager("/c", "c", root=root, proc=proc)
    with pytest.raises(ConfigError, match="^invalid configuration: cannot use unified on cgroup v1$"):
        m.plan({"unified": {"memory.max": "10"}})
    with pytest.raises(ConfigError, match="^cannot set net_cls limit: container could not join or create cgroup"):
        m.plan({"network": {"classID": 3}})
    assert m.plan({"network": {}}, default_devices=False) == []  # not asked: no error


def test_v1_apply_writes_files(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    m.apply({"memory": {"limit": 1 << 20, "swappiness": 10}, "cpu": {"shares": 512, "cpus": "1"},
             "pids": {"limit": 9}, "network": {"classID": 7}})
    assert read(root, "memory/c/memory.limit_in_bytes") == str(1 << 20)
    assert read(root, "memory/c/memory.swappiness") == "10"
    assert read(root, "cpu,cpuacct/c/cpu.shares") == "512"
    assert read(root, "cpuset/c/cpuset.cpus") == "1"
    assert read(root, "pids/c/pids.max") == "9"
    assert read(root, "net_cls,net_prio/c/net_cls.classid") == "7"
    assert read(root, "devices/c/devices.allow") == "c 10:200 rwm"  # the last default rule


def test_v2_full_plan(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    m = open_manager("/p/c", "c", root=root, proc=proc)
    m.create()
    assert read(root, "cgroup.subtree_control").split() == ["+" + c for c in V2_CTRLS.split()]
    r = {k: v for k, v in FULL.items() if k not in ("network", "devices")}
    r["cpu"] = {k: v for k, v in r["cpu"].items() if not k.startswith("realtime")}
    r["unified"] = {"memory.high": "90000000", "cgroup.max.depth": "3"}
    r["rdma"] = {"mlx5_1": {"hcaHandles": 3}, "mlx4_0": {"hcaHandles": 2, "hcaObjects": 1000}}
    got = brief(m.plan(r, default_devices=False), root)
    assert got == [
        ("", "p/c/pids.max", "64"),
        ("", "p/c/memory.swap.max", str(100 << 20)),
        ("", "p/c/memory.max", str(100 << 20)),
        ("", "p/c/memory.low", str(50 << 20)),
        ("", "p/c/io.weight", str(1 + 490 * 9999 // 990)),
        ("", "p/c/io.max", "8:0 rbps=1000"),
        ("", "p/c/io.max", "8:0 wbps=2000"),
        ("", "p/c/io.max", "8:0 riops=10"),
        ("", "p/c/io.max", "8:0 wiops=20"),
        ("", "p/c/cpu.idle", "0"),
        ("", "p/c/cpu.weight", "20"),
        ("", "p/c/cpu.max.burst", "1000"),
        ("", "p/c/cpu.max", "50000 100000"),
        ("", "p/c/cpuset.cpus", "0-1"),
        ("", "p/c/cpuset.mems", "0"),
        ("", "p/c/hugetlb.2MB.max", "4194304"),
        ("", "p/c/hugetlb.2MB.rsvd.max", "4194304"),
        ("", "p/c/rdma.max", "mlx4_0 hca_handle=2 hca_object=1000"),
        ("", "p/c/rdma.max", "mlx5_1 hca_handle=3"),
        ("", "p/c/memory.high", "90000000"),
        ("", "p/c/cgroup.max.depth", "3"),
    ]
    m.apply({"cpu": {"quota": -1}, "memory": {"limit": 1000, "swap": 1000}}, default_devices=False)
    assert read(root, "p/c/cpu.max") == "max 100000"
    assert read(root, "p/c/memory.swap.max") == "0"


def test_v2_errors(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    from pyrunc.cgroups.devices import DEVICE_FILTER, DEFAULT_DEVICE_RULES, device_program

    # device rules become one "attach this eBPF device filter" step (tests/unit/test_cgroups_v2_devices.py)
    assert [(w.filename, w.value) for w in m.plan({})] == [
        (DEVICE_FILTER, device_program(list(DEFAULT_DEVICE_RULES)).bytes())]
    allow_all = {"devices": [{"allow": True, "access": "rwm"}]}
    assert [w.value for w in m.plan(allow_all, default_devices=False)] == [
        device_program(allow_all["devices"]).bytes()]
    assert m.plan({}, default_devices=False) == []  # update: devices left alone
    with pytest.raises(ConfigError, match="realtime"):
        m.plan({"cpu": {"realtimeRuntime": 5}}, default_devices=False)
    with pytest.raises(ConfigError, match="network"):
        m.plan({"network": {"classID": 5}}, default_devices=False)
    with pytest.raises(ConfigError, match="no slashes"):
        m.plan({"unified": {"../memory.max": "1"}}, default_devices=False)
    with pytest.raises(ConfigError, match="CONTROLLER.PARAMETER"):
        m.plan({"unified": {"memorymax": "1"}}, default_devices=False)
    with pytest.raises(ConfigError, match="controller 'net_cls' not available"):
        m.plan({"unified": {"net_cls.classid": "1"}}, default_devices=False)


def test_v2_enables_missing_controllers_on_the_way_down(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    os.makedirs(os.path.join(root, "a"))
    _files(os.path.join(root, "a"), dict(V2_CORE, **{"cgroup.controllers": "memory"}))
    m = manager_from_paths({"": os.path.join(root, "a")}, root=root, proc=proc)
    got = brief(m.plan({"pids": {"limit": 5}}, default_devices=False), root)
    assert got == [("", "cgroup.subtree_control", "+pids"), ("", "a/pids.max", "5")]


class ReadsProbe(fs.Probe):
    """The real probe, keeping the files it was asked about."""

    def __init__(self):
        self.asked = []

    def exists(self, dirpath, filename):
        self.asked.append(filename)
        return super().exists(dirpath, filename)

    def read(self, dirpath, filename):
        self.asked.append(filename)
        return super().read(dirpath, filename)


def test_hybrid_default_resources_need_no_cgroup2_planner(fake, fake_kernel, monkeypatch):
    """A plain config (device rules only) on a hybrid host writes nothing into the cgroup2 dir: create neither
    loads the v2 planners (~16 KB of bytecode) nor reads the dir's cgroup.controllers for them."""
    import pyrunc.cgroups

    root, proc = fake
    build_hybrid(root)
    m = open_manager("/t/c", "c", root=root, proc=proc)
    monkeypatch.delitem(sys.modules, "pyrunc.cgroups.v2", raising=False)
    monkeypatch.delattr(pyrunc.cgroups, "v2", raising=False)
    m.create()
    probe = ReadsProbe()
    got = brief(m.plan({"devices": [{"allow": False, "access": "rwm"}]}, probe=probe), root)
    assert got[:2] == [("devices", "devices/t/c/devices.deny", "a"), ("devices", "devices/t/c/devices.allow",
                                                                          "c *:* m")]
    assert all(c == "devices" for c, _, _ in got)
    assert "pyrunc.cgroups.v2" not in sys.modules
    assert "cgroup.controllers" not in probe.asked
    # a key a cgroup2 controller of this host serves still goes there (and loads the planners)
    got = brief(m.plan({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}, default_devices=False), root)
    assert ("", "unified/t/c/hugetlb.2MB.max", "2097152") in got


@pytest.mark.parametrize("resources", [
    {"memory": {"limit": 1 << 30}}, {"cpu": {"shares": 512}}, {"cpu": {"cpus": "0"}}, {"pids": {"limit": 9}},
    {"blockIO": {"weight": 100}}, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]},
    {"rdma": {"mlx5_0": {"hcaHandles": 3}}}])
def test_hybrid_host_with_every_controller_on_cgroup2_still_plans_each(fake, fake_kernel, resources):
    """The shortcut that leaves the v2 planners out on a hybrid host (nothing asked of a cgroup2 controller) knows
    every section they serve: with all of them on cgroup2, each limit is still written there."""
    root, proc = fake
    build_v1(root, ("devices", "freezer", "systemd"))
    _files(os.path.join(root, "unified"), {"cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
                                           "cgroup.subtree_control": "", "cgroup.procs": "1\n"})
    m = open_manager("/t/c", "c", root=root, proc=proc)
    m.create()
    got = brief(m.plan(resources, default_devices=False), root)
    assert any(c == "" and not f.endswith("cgroup.subtree_control") for c, f, _ in got), got


def test_cgroup_steps_of_a_create_read_without_python_file_objects(fake, fake_kernel):
    """Every cgroupfs and /proc read of a create's cgroup steps (layout, own cgroup, occupancy, the cpuset copy,
    the planners' probe) is os.open + os.read: open()'s buffered text stack costs five more syscalls (fstat
    twice, the isatty ioctl, two lseeks) and ~15 us of Python per small file."""
    import builtins

    root, proc = fake
    build_hybrid(root)
    own(proc, "".join(f"{i}:{c}:/\n" for i, c in enumerate(("cpu,cpuacct", "cpuset", "memory", "devices",
                                                               "freezer", "blkio", "pids", "name=systemd"), 1))
        + "0::/\n")
    real_open = builtins.open

    def no_open(file, *a, **kw):
        if "/pyrunc/" in sys._getframe(1).f_code.co_filename:  # not the fake kernel's own files
            raise AssertionError(f"open({file!r}) by {sys._getframe(1).f_code.co_name}")
        return real_open(file, *a, **kw)

    builtins.open = no_open
    try:
        m = open_manager(None, "c", root=root, proc=proc)
        assert m.occupancy() == (0, False)
        m.create()
        m.apply({"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 5},
                 "blockIO": {"weight": 10}})
    finally:
        builtins.open = real_open
    assert read(root, "cpuset/c/cpuset.cpus") == read(root, "cpuset/cpuset.cpus").strip()
    assert read(root, "pids/c/pids.max") == "5"
    assert fs.read_file(os.path.join(root, "pids/c"), "pids.max") == "5"
    with pytest.raises(SysError, match=r"^read .*/pids/c/nosuch: no such file or directory"):
        fs.read_file(os.path.join(root, "pids/c"), "nosuch")
    assert fs.Probe().read(os.path.join(root, "pids/c"), "nosuch") is None


def test_hybrid_hugetlb_goes_to_cgroup2(fake, fake_kernel):
    root, proc = fake
    build_hybrid(root)
    m = open_manager("/t/c", "c", root=root, proc=proc)
    m.create()
    got = brief(m.plan({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}], "pids": {"limit": 3},
                        "unified": {"hugetlb.1GB.max": "0"}}, default_devices=False), root)
    assert got == [
        ("pids", "pids/t/c/pids.max", "3"),
        ("", "unified/cgroup.subtree_control", "+hugetlb"),
        ("", "unified/t/cgroup.subtree_control", "+hugetlb"),
        ("", "unified/t/c/hugetlb.2MB.max", "2097152"),
        ("", "unified/t/c/hugetlb.2MB.rsvd.max", "2097152"),
        ("", "unified/t/c/hugetlb.1GB.max", "0"),
    ]
    # runc's "invalid configuration" for a controller that is on v1 here, naming the key
    for key in ("memory.max", "pids.max", "cpu.weight"):
        with pytest.raises(ConfigError, match=r"^invalid configuration: cannot use unified on cgroup v1: "
                                              rf"linux\.resources\.unified\.{key}: controller '{key.split('.')[0]}' "
                                              r"is not on cgroup v2 on this host \(hybrid: cgroup v2 has hugetlb\)$"):
            m.plan({"unified": {key: "1"}}, default_devices=False)
    # the core cgroup.* files are in the container's own cgroup2 directory too
    got = brief(m.plan({"unified": {"cgroup.max.descendants": "5"}}, default_devices=False), root)
    assert got == [("", "unified/t/c/cgroup.max.descendants", "5")]


# -- the apply loop and errors ---------------------------------------------------------------------------------

def test_write_error_messages(tmp_path):
    e = fs.write_error("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", "12", errno.EBUSY)
    assert isinstance(e, SysError) and e.errno == errno.EBUSY
    assert str(e) == 'write /sys/fs/cgroup/memory/x/memory.limit_in_bytes "12": device or resource busy (EBUSY)'
    e = fs.write_error("/x/cpu.shares", "abc", errno.EINVAL)
    assert isinstance(e, ConfigError) and str(e) == 'write /x/cpu.shares "abc": invalid argument (EINVAL)'
    with pytest.raises(SysError, match=r'^write .*/nope "1": no such file or directory \(ENOENT\)$'):
        fs.write_file(str(tmp_path), "nope", "1")


def test_apply_loop_retries_einval_after_next_success(tmp_path, monkeypatch):
    d = str(tmp_path)
    for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us"):
        (tmp_path / f).write_text("")
    calls, refused = [], {"cpu.cfs_period_us"}
    real = fs.write_file

    def write(dirpath, filename, value):
        calls.append(filename)
        if filename in refused:
            refused.discard(filename)
            raise fs.write_error(os.path.join(dirpath, filename), value, errno.EINVAL)
        real(dirpath, filename, value)

    monkeypatch.setattr(fs, "write_file", write)
    fs.apply_writes([fs.Write("cpu", "cpu.cfs_period_us", "5000", d, retry=True),
                     fs.Write("cpu", "cpu.cfs_burst_us", "1", d, optional=True, retry=True),
                     fs.Write("cpu", "cpu.cfs_quota_us", "1000", d)])
    assert calls == ["cpu.cfs_period_us", "cpu.cfs_burst_us", "cpu.cfs_quota_us", "cpu.cfs_period_us"]
    assert (tmp_path / "cpu.cfs_period_us").read_text() == "5000"
    # optional: ENOENT ignored; a retry left pending at the end is the error
    fs.apply_writes([fs.Write("cpu", "cpu.missing", "1", d, optional=True)])
    refused.add("cpu.cfs_period_us")
    with pytest.raises(ConfigError, match="EINVAL"):
        fs.apply_writes([fs.Write("cpu", "cpu.cfs_period_us", "5000", d, retry=True)])


def test_shares_read_back_check(tmp_path):
    (tmp_path / "cpu.shares").write_text("")
    w = fs.Write("cpu", "cpu.shares", "1", str(tmp_path), check="shares")
    orig = fs.write_file

    def clamp(dirpath, filename, value):
        orig(dirpath, filename, "2")  # the kernel clamps to its minimum

    fs.write_file, saved = clamp, fs.write_file
    try:
        with pytest.raises(ConfigError, match="^the minimum allowed cpu-shares is 2$"):
            fs.apply_writes([w])
    finally:
        fs.write_file = saved


# -- freezer, pids, stats, oom on fake trees -------------------------------------------------------------------

def test_v1_freeze_thaw_and_pids(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    m.freeze()
    assert read(root, "freezer/c/freezer.state") == "FROZEN"
    with open(os.path.join(root, "freezer/c/freezer.self_freezing"), "w") as f:
        f.write("1\n")
    assert m.frozen()
    m.thaw()
    assert read(root, "freezer/c/freezer.state") == "THAWED" and not m.frozen()
    os.makedirs(os.path.join(root, "devices/c/sub"))
    with open(os.path.join(root, "devices/c/cgroup.procs"), "w") as f:
        f.write("10\n11\n")
    with open(os.path.join(root, "devices/c/sub/cgroup.procs"), "w") as f:
        f.write("12\n")
    assert sorted(m.pids()) == [10, 11, 12]


def test_v2_freeze_and_kill(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    with open(os.path.join(root, "c/cgroup.events"), "w") as f:
        f.write("populated 1\nfrozen 1\n")
    m.freeze()
    assert m.frozen()
    m.thaw()
    assert not m.frozen()
    m.kill_all(9)
    assert read(root, "c/cgroup.kill") == "1"


def test_stats_shapes(fake, fake_kernel, tmp_path):
    root, proc = fake
    build_v1(root)
    m = open_manager("/c", "c", root=root, proc=proc)
    m.create()
    s = m.stats()
    assert s["cpu"]["usage"] == {"total": 5000, "percpu": [2000, 3000], "kernel": 20000000, "user": 10000000}
    assert s["cpu"]["throttling"] == {"periods": 3, "throttledPeriods": 1, "throttledTime": 77}
    assert s["memory"]["usage"] == {"usage": 4096, "max": 8192, "failcnt": 0, "limit": int(MAX)}
    assert s["memory"]["cache"] == 10 and s["memory"]["raw"] == {"cache": 10, "rss": 20}
    assert s["pids"] == {"current": 2}
    assert s["blkio"]["ioServiceBytesRecursive"] == [{"major": 8, "op": "Read", "value": 100},
                                                     {"major": 8, "op": "Write", "value": 200}]
    assert m.oom_count() == 0
    json.dumps(s)
    r2 = str(tmp_path / "v2")
    os.makedirs(r2)
    build_v2(r2)
    m = open_manager("/c", "c", root=r2, proc=proc)
    m.create()
    s = m.stats()
    assert s["memory"]["usage"] == {"usage": 4096, "max": 9000, "failcnt": 2, "limit": 2**64 - 1}
    assert s["cpu"]["usage"]["total"] == 7000
    assert s["pids"] == {"current": 1}
    assert s["blkio"]["ioServicedRecursive"] == [{"major": 8, "op": "Read", "value": 1},
                                                 {"major": 8, "op": "Write", "value": 2}]
    assert m.oom_count() == 1


# -- import budget ---------------------------------------------------------------------------------------------

def test_import_is_light():
    code = ("import sys, pyrunc.cgroups as c; "
            "print(sorted(m for m in sys.modules if m.startswith('pyrunc')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip() == "['pyrunc', 'pyrunc.cgroups']"


def test_reopened_manager_parses_mountinfo_only_when_the_layout_is_needed(fake, fake_kernel, monkeypatch):
    """delete of a stopped container (pids, destroy) needs only the recorded paths: no mountinfo parse; what needs
    the layout (kill_all's v2 check, freeze) still gets it, parsed once."""
    root, proc = fake
    build_v1(root, ("memory", "pids", "freezer"))
    m = open_manager("/a/b", "c", root=root, proc=proc)
    m.create()
    calls = []
    real = mgrmod._layout
    monkeypatch.setattr(mgrmod, "_layout", lambda *a: calls.append(a) or real(*a))
    m2 = manager_from_paths(m.paths, root=root, created=m.created, proc=proc)
    assert m2.pids() == [] and calls == []
    assert m2.layout.mode == "v1" and m2.layout.v1 == m.layout.v1 and len(calls) == 1
    assert m2.layout is m2.layout and len(calls) == 1
    m2.destroy()
    assert not os.path.exists(os.path.join(root, "memory/a/b")) and m2.created == []


def test_procs_under_reads_every_level_raw_and_skips_what_is_gone(tmp_path):
    """The emptiness check of delete: the pids of a cgroup and of its sub-cgroups at any depth, duplicates kept
    out; a missing dir or cgroup.procs is empty, never an error (delete races the kernel removing them)."""
    top = tmp_path / "c"
    (top / "a" / "b").mkdir(parents=True)
    (top / "x").mkdir()
    (top / "cgroup.procs").write_text("10\n11\n")
    (top / "a" / "b" / "cgroup.procs").write_text("12\n10\n")
    (top / "link").symlink_to(tmp_path)  # never followed
    assert sorted(mgrmod.procs_under(str(top))) == [10, 11, 12]
    assert mgrmod.procs_under(str(top / "x")) == [] and mgrmod.procs_under(str(tmp_path / "gone")) == []


def test_manager_unified_key_is_detects():
    assert mgrmod.UNIFIED == detect.UNIFIED
