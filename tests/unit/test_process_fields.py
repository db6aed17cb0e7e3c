"""Parsing and validation of process.scheduler, process.ioPriority, process.execCPUAffinity, linux.personality and
the seccomp agent settings (no root): runc's rules, with the JSON path of the bad field in the message."""

import os

import pytest

from pyrunc.container.procsetup import seccomp_notify
from pyrunc.errors import ConfigError
from pyrunc.linux.fake import Recorder
from pyrunc.process import plan as planmod
from pyrunc.process import sched


def test_cpu_list_forms():
    assert sched.cpu_list("0-3,7", "p") == {0, 1, 2, 3, 7}
    assert sched.cpu_list(" 1 , 3-4,, ", "p") == {1, 3, 4}
    assert sched.cpu_list("5", "p") == {5}
    assert sched.cpu_list("2-2", "p") == {2}
    assert sched.cpu_list("", "p") is None
    assert sched.cpu_list(None, "p") is None
    assert sched.cpu_list(str(sched.MAX_CPU), "p") == {sched.MAX_CPU}


@pytest.mark.parametrize("text,why", [("3-1", "invalid range"), ("a", "not a cpu number"), ("-1", "not a cpu number"),
                                      ("1-", "not a cpu number"), (",", "no members"), ("0x1", "not a cpu number"),
                                      (str(sched.MAX_CPU + 1), "larger than"), ("1-2-3", "not a cpu number")])
def test_cpu_list_invalid(text, why):
    with pytest.raises(ConfigError, match="process.execCPUAffinity.final") as e:
        sched.cpu_list(text, "process.execCPUAffinity.final")
    assert why in str(e.value)


def test_affinity():
    assert sched.affinity(None) == (None, None)
    assert sched.affinity({"initial": "0-1"}) == ({0, 1}, None)
    assert sched.affinity({"initial": "", "final": "1"}) == (None, {1})
    with pytest.raises(ConfigError, match=r"process.execCPUAffinity.initial: invalid cpu list"):
        sched.affinity({"initial": "2-0"})


def test_scheduler_policies_and_flags():
    assert sched.scheduler(None) is None
    assert sched.scheduler({"policy": "SCHED_OTHER"}) == (0, 0, 0, 0, 0, 0, 0)
    assert sched.scheduler({"policy": "SCHED_BATCH", "nice": -20})[:3] == (3, 0, -20)
    assert sched.scheduler({"policy": "SCHED_IDLE"})[0] == 5
    assert sched.scheduler({"policy": "SCHED_FIFO", "priority": 99})[:4] == (1, 0, 0, 99)
    assert sched.scheduler({"policy": "SCHED_RR", "priority": 1})[0] == 2
    dl = sched.scheduler({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30,
                          "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]})
    assert dl == (6, 0x05, 0, 0, 10, 20, 30)
    all_flags = sched.scheduler({"policy": "SCHED_OTHER", "flags": list(sched.SCHED_FLAGS)}, uclamp=True)
    assert all_flags[1] == 0x7F


@pytest.mark.parametrize("flag", ["SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"])
def test_util_clamp_refused_without_kernel_support(flag):
    s = {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK", flag]}
    with pytest.raises(ConfigError, match=rf"^process\.scheduler\.flags\.1: {flag} is not supported by this kernel "
                                          r"\(no utilization clamping: CONFIG_UCLAMP_TASK is off"):
        sched.scheduler(s, uclamp=False)
    assert sched.scheduler(s, uclamp=True)[1] == 0x01 | sched.SCHED_FLAGS[flag]
    # by default the kernel is asked, through the sysctls it registers only with CONFIG_UCLAMP_TASK
    assert sched.has_uclamp() == os.path.exists("/proc/sys/kernel/sched_util_clamp_min")


def _setattr_in_child(*attr):
    """sched_setattr through the real helper, in a forked child (the test process keeps its own policy): the
    errno, or 0."""
    from pyrunc.errors import SysError
    from pyrunc.linux import real

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            real.sched_setattr(*attr)
            code = 0
        except SysError as e:
            code = e.errno
        os.write(w, bytes([code]))
        os._exit(0)
    os.close(w)
    try:
        os.waitpid(pid, 0)
        return os.read(r, 1)[0]
    finally:
        os.close(r)


def test_helper_passes_a_ver1_sched_attr():
    """The kernel checks the struct's size before anything else: SCHED_FLAG_UTIL_CLAMP_* with the 48-byte VER0
    struct is EINVAL; with VER1 (56 bytes) it reaches the clamp code, which works (0) or, on a kernel without
    CONFIG_UCLAMP_TASK, is EOPNOTSUPP.  No privilege needed: SCHED_OTHER, nice 0."""
    import errno

    got = _setattr_in_child(0, sched.SCHED_FLAGS["SCHED_FLAG_UTIL_CLAMP_MAX"], 0, 0, 0, 0, 0)
    assert got == (0 if sched.has_uclamp() else errno.EOPNOTSUPP), errno.errorcode.get(got)
    assert _setattr_in_child(0, 0x80000, 0, 0, 0, 0, 0) == errno.EINVAL  # the control: an unknown flag


@pytest.mark.parametrize("s,pointer,why", [
    ({}, "process.scheduler.policy", "required"),
    ({"policy": "SCHED_NOPE"}, "process.scheduler.policy", "invalid scheduler policy"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice", "invalid scheduler.nice: 20"),
    ({"policy": "SCHED_BATCH", "nice": -21}, "process.scheduler.nice", "invalid scheduler.nice"),
    ({"policy": "SCHED_OTHER", "priority": 1}, "process.scheduler.priority", "only be specified for SCHED_FIFO"),
    ({"policy": "SCHED_IDLE", "priority": 1}, "process.scheduler.priority", "only be specified"),
    ({"policy": "SCHED_FIFO", "runtime": 1}, "process.scheduler", "runtime/deadline/period"),
    ({"policy": "SCHED_OTHER", "period": 1}, "process.scheduler", "runtime/deadline/period"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]}, "process.scheduler.flags.0", "invalid scheduler flag"),
    ({"policy": "SCHED_DEADLINE", "runtime": -1}, "process.scheduler.runtime", "integer"),
    ({"policy": "SCHED_OTHER", "nice": True}, "process.scheduler.nice", "integer"),
])
def test_scheduler_invalid(s, pointer, why):
    with pytest.raises(ConfigError) as e:
        sched.scheduler(s)
    assert str(e.value).startswith(pointer + ":"), str(e.value)
    assert why in str(e.value)


def test_scheduler_nice_unchecked_for_other_policies():
    """runc checks the nice range for SCHED_OTHER and SCHED_BATCH only."""
    assert sched.scheduler({"policy": "SCHED_IDLE", "nice": 30})[2] == 30


def test_ioprio():
    assert sched.ioprio(None) is None
    assert sched.ioprio({"class": "IOPRIO_CLASS_RT", "priority": 0}) == 1 << 13
    assert sched.ioprio({"class": "IOPRIO_CLASS_BE", "priority": 7}) == 2 << 13 | 7
    assert sched.ioprio({"class": "IOPRIO_CLASS_IDLE"}) == 3 << 13


@pytest.mark.parametrize("p,pointer", [({"class": "IOPRIO_CLASS_NONE"}, "process.ioPriority.class"),
                                       ({}, "process.ioPriority.class"),
                                       ({"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority"),
                                       ({"class": "IOPRIO_CLASS_BE", "priority": -1}, "process.ioPriority.priority")])
def test_ioprio_invalid(p, pointer):
    with pytest.raises(ConfigError, match="^" + pointer.replace(".", r"\.") + ":"):
        sched.ioprio(p)


def test_personality():
    assert sched.personality(None) == (None, False)
    assert sched.personality({"domain": "LINUX"}) == (0, False)
    assert sched.personality({"domain": "LINUX32", "flags": ["X"]}) == (8, True)
    with pytest.raises(ConfigError, match=r"^linux\.personality\.domain: invalid personality domain"):
        sched.personality({"domain": "BSD"})


def test_apply_process_order_and_values():
    class Proc:
        scheduler = (3, 0, 7, 0, 0, 0, 0)
        ioprio = 2 << 13 | 4

    lx = Recorder()
    sched.apply_process(Proc, lx)
    assert [c[0] for c in lx.calls] == ["sched_setattr", "ioprio_set"]
    assert lx.calls[0] == ("sched_setattr", 3, 0, 7, 0, 0, 0, 0)
    assert lx.calls[1] == ("ioprio_set", sched.IOPRIO_WHO_PROCESS, 0, 2 << 13 | 4)


def test_process_plan_paths(tmp_path):
    proc = {"args": ["true"], "cwd": "/", "scheduler": {"policy": "SCHED_BATCH", "nice": 1},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}, "execCPUAffinity": {"initial": "0"}}
    q = planmod.process_plan(proc)
    assert (q.scheduler[0], q.ioprio, q.cpu_initial, q.cpu_final, q.personality) == (3, 3 << 13, {0}, None, None)
    with pytest.raises(ConfigError, match=r"^exec\.ioPriority\.priority:"):
        planmod.process_plan(dict(proc, ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 9}), where="exec")


def test_build_init_drops_exec_affinity_and_takes_personality(tmp_path):
    os.mkdir(tmp_path / "rootfs")
    cfg = {"root": {"path": "rootfs"},
           "process": {"args": ["true"], "cwd": "/", "execCPUAffinity": {"initial": "0", "final": "0"}},
           "linux": {"personality": {"domain": "LINUX32", "flags": ["f"]}}}
    p = planmod.build(cfg, str(tmp_path))
    assert (p.process.cpu_initial, p.process.cpu_final) == (None, None)
    assert (p.process.personality, p.personality_flags) == (8, True)
    cfg["process"]["execCPUAffinity"] = {"final": "x"}
    with pytest.raises(ConfigError, match=r"^process\.execCPUAffinity\.final:"):
        planmod.build(cfg, str(tmp_path))


# --- seccomp agent -------------------------------------------------------------------------------------------

NOTIFY = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}


def test_seccomp_notify_ctx():
    assert seccomp_notify({"linux": {}}, {}) is None
    assert seccomp_notify({"linux": {"seccomp": dict(NOTIFY, syscalls=[])}}, {}) is None
    n = seccomp_notify({"linux": {"seccomp": NOTIFY}}, {"id": "x"})
    assert (n["path"], n["metadata"], n["state"]) == ("/run/agent.sock", "m", {"id": "x"})


def test_seccomp_notify_needs_listener_path():
    sc = dict(NOTIFY)
    del sc["listenerPath"]
    with pytest.raises(ConfigError, match=r"^linux\.seccomp\.listenerPath: seccomp listenerPath is not set"):
        seccomp_notify({"linux": {"seccomp": sc}}, {})


def test_seccomp_notify_refuses_sendmsg():
    sc = dict(NOTIFY, syscalls=[{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}])
    with pytest.raises(ConfigError, match=r"^linux\.seccomp\.syscalls\.0\.names\.1: .*sendmsg"):
        seccomp_notify({"linux": {"seccomp": sc}}, {})


def test_reset_affinity_is_one_call_with_every_cpu():
    """runc's tryResetCPUAffinity: one sched_setaffinity with a mask of every possible cpu (MAX_CPU bits), handed
    to the kernel as bytes.  Building that set as 65536 Python ints (os.sched_setaffinity(0, range(MAX_CPU)))
    cost ~1.5 ms of every create, in stage B."""
    rec = Recorder()
    sched.reset_affinity(rec)
    assert rec.calls == [("sched_setaffinity", 0, b"\xff" * (sched.MAX_CPU // 8))]


def test_reset_affinity_widens_a_narrowed_process():
    """For real, in a child: narrowed to one cpu, then reset: every cpu the machine has again (no privilege)."""
    from pyrunc.linux import real

    want = os.sched_getaffinity(0)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.sched_setaffinity(0, {min(want)})
            sched.reset_affinity(real)
            os.write(w, ",".join(map(str, sorted(os.sched_getaffinity(0)))).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.waitpid(pid, 0)
        assert os.read(r, 4096).decode() == ",".join(map(str, sorted(want)))
    finally:
        os.close(r)
