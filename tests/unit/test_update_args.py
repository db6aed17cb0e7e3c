"""pyrunc update without root: flag parsing (runc update.go), units (go-units RAMInBytes), the merge rules,
Go durations for events --interval, and the ps table filter."""

from types import SimpleNamespace

import pytest

from pyrunc.cli import main as args  # the parser lives in main (one module less for every verb)
from pyrunc.container import resources as res
from pyrunc.errors import ConfigError, PyruncError, UsageError


def flags(argv):
    g, name, o = args.parse(["update"] + argv + ["c1"])
    assert name == "update" and o.args == ["c1"]
    return o


@pytest.mark.parametrize("s,n", [("512m", 512 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("100", 100),
                                 ("10k", 10240), ("1.5g", 3 << 29), ("2mb", 2 << 20), ("2MiB", 2 << 20),
                                 ("3 k", 3072), ("1t", 1 << 40)])
def test_ram_in_bytes(s, n):
    assert res.ram_in_bytes(s) == n


@pytest.mark.parametrize("s", ["abc", "", "-5m", "1x", "m"])
def test_ram_in_bytes_bad(s):
    with pytest.raises(ValueError, match="invalid size"):
        res.ram_in_bytes(s)


def test_every_runc_flag():
    o = flags(["--blkio-weight", "300", "--cpu-period", "100000", "--cpu-quota=-1", "--cpu-burst", "5",
               "--cpu-share", "512", "--cpu-rt-period", "1000000", "--cpu-rt-runtime", "950000",
               "--cpuset-cpus", "0-1", "--cpuset-mems", "0", "--memory", "512m", "--memory-reservation", "256m",
               "--memory-swap", "-1", "--pids-limit", "42"])
    assert res.patch_from_flags(o) == {
        "memory": {"limit": 512 << 20, "reservation": 256 << 20, "swap": -1},
        "cpu": {"cpus": "0-1", "mems": "0", "burst": 5, "period": 100000, "realtimePeriod": 1000000,
                "shares": 512, "quota": -1, "realtimeRuntime": 950000},
        "blockIO": {"weight": 300},
        "pids": {"limit": 42},
    }


def test_unset_flags_give_an_empty_patch():
    assert res.patch_from_flags(flags([])) == {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {"limit": 0}}


def test_flag_errors_use_runc_wording():
    with pytest.raises(ConfigError, match=r"^invalid value for memory: invalid size: 'abc'$"):
        res.patch_from_flags(flags(["--memory", "abc"]))
    with pytest.raises(ConfigError, match=r'^invalid value for cpu-period: strconv.ParseUint: parsing "x"'):
        res.patch_from_flags(flags(["--cpu-period", "x"]))
    with pytest.raises(ConfigError, match="cpu-share"):
        res.patch_from_flags(flags(["--cpu-share", "-1"]))


def test_kernel_memory_is_ignored_with_a_warning():
    warned = []
    log = SimpleNamespace(warning=warned.append)
    p = res.patch_from_flags(flags(["--kernel-memory", "10m", "--kernel-memory-tcp", "1m"]), log)
    assert p["memory"] == {}
    assert warned == ["Setting --kernel-memory is ignored and will be removed",
                      "Setting --kernel-memory-tcp is ignored and will be removed"]


OLD = {"devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 100, "swap": 200},
       "cpu": {"shares": 1024, "cpus": "0"}, "pids": {"limit": 10}, "unified": {"memory.high": "50"},
       "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}


def test_merge_zero_and_absent_are_unset():
    patch = {"memory": {"limit": 0, "swap": None}, "cpu": {"shares": 0, "cpus": "", "quota": 0},
             "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    new = res.merge(OLD, patch)
    assert new["memory"] == {"limit": 100, "swap": 200}
    assert new["cpu"] == {"shares": 1024, "cpus": "0"}
    assert new["pids"] == {"limit": 10}
    assert "blockIO" not in new
    assert "unified" not in new  # runc assigns Unified from the request: absent drops it
    assert new["devices"] == OLD["devices"] and new["hugepageLimits"] == OLD["hugepageLimits"]


def test_merge_sets_values_and_keeps_pointer_zeros():
    new = res.merge(OLD, {"memory": {"limit": 300, "checkBeforeUpdate": False}, "cpu": {"burst": 0, "idle": 0,
                                                                                         "mems": "0"},
                          "pids": {"limit": -1}, "unified": {"pids.max": "7"},
                          "devices": [{"allow": True, "access": "rwm"}], "blockIO": {"throttleReadBpsDevice": []}})
    assert new["memory"] == {"limit": 300, "swap": 200, "checkBeforeUpdate": False}
    assert new["cpu"] == {"shares": 1024, "cpus": "0", "burst": 0, "idle": 0, "mems": "0"}
    assert new["pids"] == {"limit": -1}
    assert new["unified"] == {"pids.max": "7"}
    assert new["devices"] == OLD["devices"]  # update never changes device rules
    assert OLD["memory"] == {"limit": 100, "swap": 200}  # not mutated


def test_merge_unlimited_memory_means_unlimited_swap():
    assert res.merge(OLD, {"memory": {"limit": -1}})["memory"] == {"limit": -1, "swap": -1}
    assert res.merge(OLD, {"memory": {"limit": -1, "swap": 500}})["memory"] == {"limit": -1, "swap": 500}


def test_applicable_drops_devices():
    assert "devices" not in res.applicable(OLD) and "devices" in OLD


def test_patch_from_json():
    assert res.patch_from_json(b'{"memory":{"limit":1048576}}', "-") == {"memory": {"limit": 1048576}}
    assert res.patch_from_json(b"", "-") == {}
    with pytest.raises(ConfigError, match="decode resources from -"):
        res.patch_from_json(b"{nope", "-")
    with pytest.raises(ConfigError):
        res.patch_from_json(b'{"memory":{"limit":"lots"}}', "f.json")


@pytest.mark.parametrize("s,sec", [("5s", 5.0), ("100ms", 0.1), ("1m", 60.0), ("1m30s", 90.0), ("1.5h", 5400.0),
                                   ("300us", 0.0003), ("0", 0.0), ("-1s", -1.0), ("2µs", 2e-6)])
def test_parse_duration(s, sec):
    assert res.parse_duration(s) == pytest.approx(sec)


@pytest.mark.parametrize("s", ["5", "5x", "", "s", "1.s.", "--1s"])
def test_parse_duration_bad(s):
    with pytest.raises(UsageError, match="for flag -interval"):
        res.parse_duration(s)


PS = """UID        PID  PPID  C STIME TTY          TIME CMD
root         1     0  0 10:00 ?        00:00:01 /sbin/init
root       120     1  0 10:00 ?        00:00:00 sh -c sleep 100
root       121   120  0 10:00 ?        00:00:00 sleep 100
"""


def test_ps_table_filters_by_pid_column():
    assert res.ps_table(PS, [120, 121]) == PS.splitlines(True)[0] + "".join(PS.splitlines(True)[2:])
    assert res.ps_table(PS, []) == PS.splitlines(True)[0]
    custom = "  PID COMMAND\n  121 sleep\n    1 init\n"
    assert res.ps_table(custom, [121]) == "  PID COMMAND\n  121 sleep\n"
    with pytest.raises(PyruncError, match="couldn't find PID field in ps output"):
        res.ps_table("USER COMMAND\nroot x\n", [1])
