"""linux.timeOffsets: a new time namespace whose monotonic and boottime clocks are offset, for real.

/proc/uptime inside reads CLOCK_BOOTTIME of the container's time namespace; /proc/self/timens_offsets shows
both offsets as the kernel holds them.  runc 1.1 (the reference here) predates time namespaces: pyrunc alone.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

BOOT = 100000


def _host_uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _time_ns(offsets=None, join=None):
    def edit(c):
        ns = {"type": "time"}
        if join:
            ns["path"] = join
        c["linux"]["namespaces"].append(ns)
        if offsets is not None:
            c["linux"]["timeOffsets"] = offsets
    return edit


def run(pyrunc, b, cid):
    return pyrunc("run", "--bundle", b, cid, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _timens_kernel():
    if not os.path.exists("/proc/self/timens_offsets"):
        pytest.fail("this kernel has no time namespaces (CONFIG_TIME_NS): the suite expects them")


def test_boottime_and_monotonic_offsets(pyrunc, bundle):
    b = bundle(["sh", "-c", "cat /proc/uptime /proc/self/timens_offsets"],
               edit=_time_ns({"boottime": {"secs": BOOT, "nanosecs": 0}, "monotonic": {"secs": 7, "nanosecs": 5}}))
    before = _host_uptime()
    p = run(pyrunc, b, pyrunc.new_id("timens"))
    after = _host_uptime()
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    inside = float(lines[0].split()[0])
    assert before + BOOT - 1 <= inside <= after + BOOT + 1, (before, inside, after)
    offsets = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert offsets == {"monotonic": ["7", "5"], "boottime": [str(BOOT), "0"]}, p.out


def test_time_namespace_without_offsets_is_plain(pyrunc, bundle):
    p = run(pyrunc, bundle(["cat", "/proc/self/timens_offsets"], edit=_time_ns()), pyrunc.new_id("timens0"))
    assert p.returncode == 0, p.err
    assert p.out.split() == ["monotonic", "0", "0", "boottime", "0", "0"], p.out


def test_exec_joins_the_offset_clock(pyrunc, bundle):
    b = bundle(["sleep", "30"], edit=_time_ns({"boottime": {"secs": BOOT}}))
    cid = pyrunc.new_id("timensx")
    subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)
    try:
        p = pyrunc("exec", cid, "cat", "/proc/uptime")
        assert p.returncode == 0, p.err
        assert float(p.out.split()[0]) >= BOOT, p.out
    finally:
        pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("case", ["no-timens", "joined"])
def test_offsets_need_a_new_time_namespace(pyrunc, bundle, case):
    offsets = {"boottime": {"secs": BOOT}}
    if case == "no-timens":
        def edit(c):
            c["linux"]["timeOffsets"] = offsets
    else:
        edit = _time_ns(offsets, join="/proc/self/ns/time")
    cid = pyrunc.new_id("timensbad")
    p = run(pyrunc, bundle(["echo", "ran"], edit=edit), cid)
    assert p.returncode != 0 and "ran" not in p.out
    assert "linux.timeOffsets" in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_offsets_in_a_user_namespace(pyrunc, busybox):
    """With a new user namespace the time namespace is owned by it; stage A (non-dumpable, by then a host uid of
    the mapping) must still set the offsets."""
    from pyrunc.demo import make_bundle

    # the bundle must be reachable by the mapped root (uid 100000): not under pytest's 0700 tmp dir
    top = tempfile.mkdtemp(prefix="pyrunc-it-timens-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        b = os.path.join(top, "bundle")
        os.mkdir(b)
        cfg = make_bundle(b, ["sh", "-c", "cat /proc/uptime; id -u"], busybox=busybox)
        _time_ns({"boottime": {"secs": BOOT}})(cfg)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        p = run(pyrunc, b, pyrunc.new_id("timensu"))
        assert p.returncode == 0, p.err
        uptime, uid = p.out.split("\n")[:2]
        assert float(uptime.split()[0]) >= BOOT and uid == "0", p.out
    finally:
        shutil.rmtree(top, ignore_errors=True)
