"""process.scheduler, process.ioPriority, process.execCPUAffinity and linux.personality, seen from inside real
containers (busybox: /proc/self/stat, /proc/self/status, /proc/self/personality, `busybox ionice`, `uname -m`),
for the init and for `exec` processes.  runc 1.2 added all four fields; runc 1.1.5 (the reference here) ignores
them, so pyrunc is checked against the spec and runc 1.2+'s code, and the personality test compares with the
installed runc only when it applies linux.personality.
"""

import json
import os
import shutil
import subprocess

import pytest

from ..conftest import require

RUNC = shutil.which("runc")
NCPU = len(os.sched_getaffinity(0))


def run_out(pyrunc, bundle, script, edit):
    b = bundle(["sh", "-c", script], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("pf"))
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    return p.out


def stat_fields(line):
    """/proc/<pid>/stat after the command name: index 0 is field 3 (state)."""
    rest = line[line.rindex(")") + 2:].split()
    return {"priority": int(rest[15]), "nice": int(rest[16]), "rt_priority": int(rest[37]), "policy": int(rest[38])}


def edit_process(**fields):
    def edit(cfg):
        cfg["process"].update(fields)
    return edit


def test_scheduler_batch_nice(pyrunc, bundle):
    out = run_out(pyrunc, bundle, "cat /proc/self/stat", edit_process(scheduler={"policy": "SCHED_BATCH", "nice": 7}))
    f = stat_fields(out)
    assert (f["policy"], f["nice"]) == (3, 7), f


def test_scheduler_idle(pyrunc, bundle):
    out = run_out(pyrunc, bundle, "cat /proc/self/stat", edit_process(scheduler={"policy": "SCHED_IDLE"}))
    assert stat_fields(out)["policy"] == 5


def test_scheduler_fifo_priority(pyrunc, bundle):
    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
        if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):  # RT group scheduling: a new cgroup has 0us
            cfg["linux"].setdefault("resources", {})["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
    b = bundle(["cat", "/proc/self/stat"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("pf"))
    if p.returncode and "operation not permitted" in p.err:
        pytest.skip(f"real-time scheduling is not allowed in this cgroup: {p.err.strip()[-200:]}")
    assert p.returncode == 0, p.err
    f = stat_fields(p.out)
    assert (f["policy"], f["rt_priority"]) == (1, 10), f


def test_scheduler_negative_nice_before_caps_drop(pyrunc, bundle):
    """A negative nice needs CAP_SYS_NICE: applied before the capability drop, as runc does, it works for a
    process with no capabilities at all."""
    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": -5}
        cfg["process"]["capabilities"] = {}
        cfg["process"]["user"] = {"uid": 65534, "gid": 65534}
    out = run_out(pyrunc, bundle, "cat /proc/self/stat", edit)
    assert stat_fields(out)["nice"] == -5


def test_scheduler_reset_on_fork(pyrunc, bundle):
    """SCHED_FLAG_RESET_ON_FORK (sched(7)): a negative nice goes back to 0 in the init's children."""
    sched = {"policy": "SCHED_BATCH", "nice": -3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    out = run_out(pyrunc, bundle, "cat /proc/1/stat; cat /proc/self/stat; true", edit_process(scheduler=sched))
    init, child = out.splitlines()
    assert (stat_fields(init)["policy"], stat_fields(init)["nice"]) == (3, -3)
    assert stat_fields(child)["nice"] == 0


def _sched_getattr(pid):
    """sched_getattr(2) of pid, VER1 (56 bytes): (policy, flags, util_min, util_max)."""
    import ctypes
    import struct

    buf = ctypes.create_string_buffer(56)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(315, pid, buf, 56, 0) != 0:  # SYS_sched_getattr on x86_64
        raise OSError(ctypes.get_errno(), "sched_getattr")
    f = struct.unpack("=IIQiIQQQII", buf.raw)
    return f[1], f[2], f[8], f[9]


@pytest.mark.parametrize("flag", ["SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"])
def test_scheduler_util_clamp(pyrunc, bundle, flag):
    """runc passes a 56-byte sched_attr whose util_min/util_max are 0 (the spec has no values): the flags then
    clamp to 0.  On a kernel without CONFIG_UCLAMP_TASK that cannot work, and create says so, leaving nothing."""
    from pyrunc.process.sched import has_uclamp

    from .test_lifecycle import create

    b = bundle(["sleep", "30"], edit=edit_process(scheduler={"policy": "SCHED_BATCH", "flags": [flag]}))
    cid = pyrunc.new_id("pf")
    p = create(pyrunc, b, cid)
    if not has_uclamp():
        assert p.returncode == 1
        assert (f"process.scheduler.flags.0: {flag} is not supported by this kernel (no utilization clamping: "
                "CONFIG_UCLAMP_TASK is off") in p.err, p.err
        assert pyrunc("state", cid).returncode != 0
        return
    try:
        assert p.returncode == 0, p.err
        policy, flags, umin, umax = _sched_getattr(pyrunc.state(cid)["pid"])
        assert policy == 3
        assert (umin if flag.endswith("MIN") else umax) == 0
    finally:
        pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("cls,prio,want", [("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
                                           ("IOPRIO_CLASS_IDLE", 0, "idle"),
                                           ("IOPRIO_CLASS_RT", 2, "realtime: prio 2")])
def test_io_priority(pyrunc, bundle, cls, prio, want):
    out = run_out(pyrunc, bundle, "busybox ionice -p $$", edit_process(ioPriority={"class": cls, "priority": prio}))
    assert out.strip() == want


def _linux32(pyrunc, bundle):
    def edit(cfg):
        cfg["linux"]["personality"] = {"domain": "LINUX32"}
    b = bundle(["sh", "-c", "cat /proc/self/personality; uname -m"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("pf"))
    assert p.returncode == 0, p.err
    return b, p


def test_personality_linux32(pyrunc, bundle):
    _, p = _linux32(pyrunc, bundle)
    assert p.out.split()[0] == "00000008"
    if os.uname().machine == "x86_64":
        assert p.out.split()[1] == "i686"


def test_personality_same_as_runc(pyrunc, bundle, tmp_path):
    b, p = _linux32(pyrunc, bundle)
    require(RUNC, "runc is not installed: nothing to compare with")
    r = subprocess.run([RUNC, "--root", str(tmp_path / "runc-state"), "run", "--bundle", str(b), "pf-runc"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if r.stdout.decode().split()[0] == "00000000":  # runc 1.1.x parses no linux.personality (added in 1.2)
        pytest.skip("the reference runc ignores linux.personality "
                    f"({subprocess.run([RUNC, '--version'], capture_output=True, text=True).stdout.split(chr(10))[0]}): "
                    "nothing to compare with")
    assert r.stdout.decode() == p.out


def test_personality_linux_default(pyrunc, bundle):
    out = run_out(pyrunc, bundle, "cat /proc/self/personality",
                  lambda cfg: cfg["linux"].__setitem__("personality", {"domain": "LINUX"}))
    assert out.strip() == "00000000"


def test_init_ignores_exec_cpu_affinity_and_resets(pyrunc, bundle):
    """execCPUAffinity is for exec processes; the init gets every cpu (runc's tryResetCPUAffinity), even when the
    caller runs pinned to one."""
    b = bundle(["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
               edit=edit_process(execCPUAffinity={"initial": "0", "final": "0"}))
    require(shutil.which("taskset"), "taskset (util-linux) is not installed")
    p = subprocess.run(["taskset", "-c", "0"] + pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("pf")),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split()[-1] == (f"0-{NCPU - 1}" if NCPU > 1 else "0")


# --- exec ----------------------------------------------------------------------------------------------------

@pytest.fixture
def running(pyrunc, bundle):
    """A detached container running `sleep 300`, with the fields given to the factory; deleted at teardown."""
    made = []

    def make(edit=None):
        b = bundle(["sleep", "300"], edit=edit)
        cid = pyrunc.new_id("pfx")
        # no pipes: the detached container would hold them open
        p = subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0, pyrunc("create", "--bundle", b, cid + "x").err
        made.append(cid)
        return cid

    yield make
    for cid in made:
        pyrunc("delete", "--force", cid)


def test_exec_inherits_scheduler_ioprio_personality(pyrunc, running):
    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 4}
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 5}
        cfg["linux"]["personality"] = {"domain": "LINUX32"}
    cid = running(edit)
    p = pyrunc("exec", cid, "sh", "-c", "cat /proc/self/stat; busybox ionice -p $$; cat /proc/self/personality")
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    f = stat_fields(lines[0])
    assert (f["policy"], f["nice"]) == (3, 4)
    assert lines[1] == "best-effort: prio 5"
    assert lines[2] == "00000008"


def test_exec_process_json_overrides(pyrunc, running, tmp_path):
    cid = running(edit_process(scheduler={"policy": "SCHED_BATCH", "nice": 4}))
    proc = {"args": ["cat", "/proc/self/stat"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"], "scheduler": {"policy": "SCHED_IDLE"}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    p = pyrunc("exec", "--process", path, cid)
    assert p.returncode == 0, p.err
    assert stat_fields(p.out)["policy"] == 5


@pytest.mark.skipif(NCPU < 2, reason="needs two cpus to tell affinities apart")
def test_exec_cpu_affinity_final(pyrunc, running):
    cid = running(edit_process(execCPUAffinity={"initial": "0", "final": "1"}))
    p = pyrunc("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
    assert p.returncode == 0, p.err
    assert p.out.split()[-1] == "1"


@pytest.mark.skipif(NCPU < 2, reason="needs two cpus to tell affinities apart")
def test_exec_cpu_affinity_initial_only_stays(pyrunc, running):
    """With only `initial`, the process keeps it (runc sets no final affinity then)."""
    cid = running(edit_process(execCPUAffinity={"initial": "1"}))
    p = pyrunc("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
    assert p.returncode == 0, p.err
    assert p.out.split()[-1] == "1"


def test_exec_without_affinity_is_reset(pyrunc, running):
    require(shutil.which("taskset"), "taskset (util-linux) is not installed")
    cid = running()
    p = subprocess.run(["taskset", "-c", "0"] + pyrunc.cmd("exec", cid, "grep", "Cpus_allowed_list",
                                                            "/proc/self/status"), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    want = f"0-{NCPU - 1}" if NCPU > 1 else "0"
    assert p.stdout.decode().split()[-1] == want


# --- rejected before any side effect ------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,pointer", [
    ("scheduler", {"policy": "SCHED_OTHER", "nice": 40}, "process.scheduler.nice"),
    ("scheduler", {"policy": "SCHED_OTHER", "priority": 3}, "process.scheduler.priority"),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority"),
    ("execCPUAffinity", {"initial": "3-1"}, "process.execCPUAffinity.initial"),
])
def test_invalid_values_rejected(pyrunc, bundle, field, value, pointer):
    b = bundle(["true"], edit=edit_process(**{field: value}))
    cid = pyrunc.new_id("pf")
    p = pyrunc("create", "--bundle", b, cid)
    assert p.returncode != 0
    assert pointer in p.err, p.err
    assert pyrunc("state", cid).returncode != 0  # nothing was created
