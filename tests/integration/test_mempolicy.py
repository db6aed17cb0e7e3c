"""linux.memoryPolicy (runtime-spec 1.3): set_mempolicy(2) for the container process, for real.

The task policy shows in /proc/self/numa_maps for every mapping without a policy of its own ("bind:0",
"interleave:0", "prefer:0", "local", "bind=static:0"); a process without one shows "default".  This host has one
NUMA node (0), so every policy here names node 0; the plan's checks against other node sets are unit-tested
(tests/unit/test_mempolicy_plan.py).  runc 1.1 predates memoryPolicy: pyrunc alone.
"""

import os
import subprocess

import pytest

SCRIPT = "head -1 /proc/self/numa_maps | cut -d' ' -f2"


def _policy(mode, nodes=None, flags=None):
    def edit(c):
        mp = {"mode": mode}
        if nodes is not None:
            mp["nodes"] = nodes
        if flags:
            mp["flags"] = flags
        c["linux"]["memoryPolicy"] = mp
    return edit


def run(pyrunc, b, cid):
    return pyrunc("run", "--bundle", b, cid, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _numa():
    if not os.path.exists("/proc/self/numa_maps"):
        pytest.fail("this kernel has no NUMA support (/proc/self/numa_maps): the suite expects CONFIG_NUMA")


@pytest.mark.parametrize("mode,nodes,flags,shown", [
    ("MPOL_BIND", "0", None, "bind:0"),
    ("MPOL_INTERLEAVE", "0", None, "interleave:0"),
    ("MPOL_PREFERRED", "0", None, "prefer:0"),
    ("MPOL_LOCAL", None, None, "local"),
    ("MPOL_BIND", "0", ["MPOL_F_STATIC_NODES"], "bind=static:0"),
    ("MPOL_DEFAULT", None, None, "default"),
])
def test_policy_is_the_container_processs(pyrunc, bundle, mode, nodes, flags, shown):
    p = run(pyrunc, bundle(["sh", "-c", SCRIPT], edit=_policy(mode, nodes, flags)), pyrunc.new_id("mpol"))
    assert p.returncode == 0, p.err
    assert p.out.strip() == shown, p.out


def test_exec_gets_the_policy_too(pyrunc, bundle):
    """runc's setns init applies it to exec'd processes as well."""
    b = bundle(["sleep", "30"], edit=_policy("MPOL_INTERLEAVE", "0"))
    cid = pyrunc.new_id("mpolx")
    subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)
    try:
        p = pyrunc("exec", cid, "sh", "-c", SCRIPT)
        assert p.returncode == 0 and p.out.strip() == "interleave:0", (p.out, p.err)
    finally:
        pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("mp,named", [
    ({"mode": "MPOL_BIND", "nodes": "5"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags"),
])
def test_bad_policy_is_refused(pyrunc, bundle, mp, named):
    def edit(c):
        c["linux"]["memoryPolicy"] = mp
    cid = pyrunc.new_id("mpolbad")
    p = run(pyrunc, bundle(["echo", "ran"], edit=edit), cid)
    assert p.returncode != 0 and "ran" not in p.out
    assert named in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
