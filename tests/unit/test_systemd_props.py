"""linux.resources -> systemd unit properties (runc genV1/genV2ResourcesProperties, addCPUQuota, RangeToBits,
devices/systemd.go), pure."""

import pytest

from pyrunc.cgroups.systemd_path import parse
from pyrunc.cgroups.systemd_props import (INFINITY, device_properties, range_to_bits, resource_properties,
                                          start_properties, version_number)
from pyrunc.errors import ConfigError


def props(r, mode="v1", version=252, **kw):
    p, _ = resource_properties(r, mode, version, default_devices=kw.pop("default_devices", False), **kw)
    return dict(p)


def test_version_number():
    assert version_number("252.39-1~deb12u2") == 252
    assert version_number('"v245.4-1.fc32"') == 245
    assert version_number("junk") == -1


def test_start_properties_scope_and_slice():
    p = dict(start_properties("abc", parse("kubepods-pod1.slice:cri-containerd:abc", "x"), 4242, "hybrid"))
    assert p["Slice"] == ("s", "kubepods-pod1.slice") and p["Delegate"] == ("b", True)
    assert p["PIDs"] == ("au", [4242]) and p["DefaultDependencies"] == ("b", False)
    assert p["BlockIOAccounting"] == ("b", True) and "IOAccounting" not in p
    assert p["Description"] == ("s", "pyrunc container abc")
    p2 = dict(start_properties("x.slice", parse("kubepods.slice::kubepods-x.slice", "c"), None, "v2"))
    assert p2["Wants"] == ("as", ["kubepods.slice"]) and "Slice" not in p2 and "PIDs" not in p2
    assert p2["IOAccounting"] == ("b", True)


def test_v1_names():
    r = {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}, "blockIO": {"weight": 300}, "pids": {"limit": 20}}
    assert props(r) == {"MemoryLimit": ("t", 64 << 20), "CPUShares": ("t", 512), "BlockIOWeight": ("t", 300),
                        "TasksMax": ("t", 20)}


def test_v2_names_and_conversions():
    r = {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20}, "cpu": {"shares": 1024},
         "blockIO": {"weight": 500}, "pids": {"limit": -1}}
    assert props(r, "v2") == {"MemoryMax": ("t", 64 << 20), "MemoryLow": ("t", 32 << 20),
                              "MemorySwapMax": ("t", 32 << 20), "CPUWeight": ("t", 39), "IOWeight": ("t", 4950),
                              "TasksMax": ("t", INFINITY)}


def test_unlimited_and_zero_values():
    assert props({"memory": {"limit": -1}, "pids": {"limit": 0}}) == {"MemoryLimit": ("t", INFINITY),
                                                                       "TasksMax": ("t", INFINITY)}
    assert props({"memory": {"limit": 0}, "cpu": {"shares": 0}}) == {}


def test_cpu_quota_rounds_up_and_changes_the_cgroupfs_value():
    # 12345 us per 100000 us = 123450 us/s: systemd keeps whole percents, so 130000, and cgroupfs gets 13000
    p, fs_r = resource_properties({"cpu": {"quota": 12345, "period": 100000}}, "v1", 252, default_devices=False)
    assert dict(p) == {"CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 130000)}
    assert fs_r["cpu"]["quota"] == 13000
    # no period: the default one; an old systemd gets no period property; period alone means unlimited quota
    assert props({"cpu": {"quota": 50000}}) == {"CPUQuotaPerSecUSec": ("t", 500000)}
    assert props({"cpu": {"quota": 50000, "period": 50000}}, version=241) == {"CPUQuotaPerSecUSec": ("t", 1000000)}
    assert props({"cpu": {"period": 50000}}) == {"CPUQuotaPeriodUSec": ("t", 50000),
                                                 "CPUQuotaPerSecUSec": ("t", INFINITY)}


def test_cpuset_masks():
    assert range_to_bits("0-2,7", "x") == b"\x87"
    assert range_to_bits("8", "x") == b"\x00\x01"
    assert props({"cpu": {"cpus": "0-1", "mems": "0"}}) == {"AllowedCPUs": ("ay", b"\x03"),
                                                           "AllowedMemoryNodes": ("ay", b"\x01")}
    assert props({"cpu": {"cpus": "0-1"}}, version=243) == {}
    with pytest.raises(ConfigError, match=r"^linux.resources.cpu.cpus='3-1' conversion error: invalid range '3-1'$"):
        props({"cpu": {"cpus": "3-1"}})


def test_unified_keys_on_v2_only():
    r = {"unified": {"memory.high": "1048576", "memory.min": "4096", "pids.max": "max", "cpu.max": "50000 100000",
                     "io.max": "8:0 rbps=1"}}
    assert props(r, "v2") == {"MemoryHigh": ("t", 1048576), "MemoryMin": ("t", 4096), "TasksMax": ("t", INFINITY),
                              "CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 500000)}
    with pytest.raises(ConfigError, match="cannot use unified on cgroup v1"):
        props(r, "v1")
    with pytest.raises(ConfigError, match=r"unified resource 'memory.high' value conversion error"):
        props({"unified": {"memory.high": "lots"}}, "v2")


def test_devices_default_rules_become_a_strict_allow_list():
    p, _ = resource_properties({}, "v1", 252, default_devices=True)
    assert p[0] == ("DeviceAllow", ("a(ss)", [])) and p[1] == ("DevicePolicy", ("s", "strict"))
    allow = dict(p[2:])["DeviceAllow"][1]
    assert ("char-*", "m") in allow and ("block-*", "m") in allow
    assert ("/dev/char/1:3", "rwm") in allow and ("char-136", "rwm") in allow


def test_devices_allow_all_and_deny_lists():
    assert device_properties([{"allow": True, "access": "rwm"}], 252) == [
        ("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "auto"))]
    warned = []
    p = device_properties([{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3,
                                                                "access": "rwm"}], 252, warned.append)
    assert p == [("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "strict"))] and warned
    # "*:n" cannot be said to systemd: left out (with a warning), the cgroupfs rules carry it
    p = device_properties([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "minor": 3,
                                                                "access": "r"}], 252, warned.append)
    assert p[-1] == ("DeviceAllow", ("a(ss)", []))


def test_annotation_properties():
    from pyrunc.cgroups.systemd_props import annotation_properties

    got = annotation_properties({
        "org.systemd.property.TimeoutStopSec": "uint64 5",  # ...Sec -> ...USec, seconds -> microseconds
        "org.systemd.property.RuntimeMaxSec": "1.5",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.SendSIGHUP": "true",
        "org.systemd.property.CPUWeight": "@t 50",
        "org.systemd.property.TasksMax": "uint64 99",
        "io.kubernetes.other": "ignored",
    })
    assert got == [("CPUWeight", ("t", 50)), ("CollectMode", ("s", "inactive-or-failed")),
                   ("RuntimeMaxUSec", ("t", 1500000)), ("SendSIGHUP", ("b", True)), ("TasksMax", ("t", 99)),
                   ("TimeoutStopUSec", ("t", 5000000))]


@pytest.mark.parametrize("key,value,msg", [
    ("org.systemd.property.X1", "1", "name incorrect"),
    ("org.systemd.property.Ab", "1", "name incorrect"),
    ("org.systemd.property.TasksMax", "uint64 -1", "value parse error: -1 does not fit t"),
    ("org.systemd.property.TasksMax", "lots", "value parse error: cannot parse 'lots'"),
    ("org.systemd.property.TimeoutStopSec", "'x'", "value parse error: not a number"),
])
def test_annotation_properties_refused(key, value, msg):
    from pyrunc.cgroups.systemd_props import annotation_properties

    with pytest.raises(ConfigError, match=msg):
        annotation_properties({key: value})
