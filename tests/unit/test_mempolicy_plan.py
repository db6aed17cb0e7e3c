"""linux.memoryPolicy planned without root, against made-up NUMA hosts (this one has a single node; the
integration tier, tests/integration/test_mempolicy.py, sets policies for real)."""

import pytest

from pyrunc.errors import ConfigError
from pyrunc.linux.fake import Recorder
from pyrunc.process import mempolicy as mp

FOUR = {0, 1, 2, 3}


@pytest.mark.parametrize("policy,want", [
    ({"mode": "MPOL_BIND", "nodes": "0-1,3"}, (2, [0b1011])),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "2-3", "flags": ["MPOL_F_STATIC_NODES"]}, (3 | 1 << 15, [0b1100])),
    ({"mode": "MPOL_PREFERRED", "nodes": ""}, (1, [])),  # zero or more nodes: local allocation
    ({"mode": "MPOL_LOCAL"}, (4, [])),
    ({"mode": "MPOL_DEFAULT"}, (0, [])),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0,2"}, (6, [0b101])),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "1", "flags": ["MPOL_F_NUMA_BALANCING"]}, (5 | 1 << 13, [0b10])),
])
def test_policies_on_a_four_node_host(policy, want):
    assert mp.plan(policy, FOUR) == want


def test_node_above_63_uses_a_second_word():
    # relative nodes are not checked against the online ones (the kernel folds them onto the allowed set)
    assert mp.plan({"mode": "MPOL_BIND", "nodes": "64", "flags": ["MPOL_F_RELATIVE_NODES"]}, {0}) == (2 | 1 << 14,
                                                                                                     [0, 1])


def test_nothing_asked_for():
    assert mp.plan(None) is None and mp.plan({}) is None


@pytest.mark.parametrize("policy,err", [
    ({"mode": "MPOL_BIND", "nodes": "4"},
     r"^linux.memoryPolicy.nodes: node 4 is not online on this host \(online: 0,1,2,3\)"),
    ({"mode": "MPOL_BIND"}, r"^linux.memoryPolicy.nodes: .*requires at least one node"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, r"requires at least one node"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, r"^linux.memoryPolicy.nodes: .*MPOL_LOCAL takes no nodes"),
    ({"mode": "MPOL_DEFAULT", "nodes": "1"}, r"MPOL_DEFAULT takes no nodes"),
    ({"mode": "MPOL_FOO"}, r"^linux.memoryPolicy.mode: invalid memory policy mode 'MPOL_FOO'"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BAR"]}, r"^linux.memoryPolicy.flags.0: invalid"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     r"^linux.memoryPolicy.flags: .*exclude each other"),
    ({"mode": "MPOL_BIND", "nodes": "3-1"}, r"^linux.memoryPolicy.nodes: invalid node range '3-1'"),
    ({"mode": "MPOL_BIND", "nodes": "x"}, r"^linux.memoryPolicy.nodes: invalid node list 'x'"),
    ({"mode": "MPOL_BIND", "nodes": "1024", "flags": ["MPOL_F_STATIC_NODES"]}, r"invalid node range '1024'"),
])
def test_refused(policy, err):
    with pytest.raises(ConfigError, match=err):
        mp.plan(policy, FOUR)


def test_online_nodes_from_sysfs(tmp_path):
    f = tmp_path / "online"
    f.write_text("0-2,5\n")
    assert mp.online_nodes(str(f)) == {0, 1, 2, 5}
    assert mp.online_nodes(str(tmp_path / "none")) == {0}  # no CONFIG_NUMA: one node


def test_apply_is_one_syscall():
    lx = Recorder()
    mp.apply(lx, (2, [0b1]))
    mp.apply(lx, None)
    assert lx.calls == [("set_mempolicy", 2, [1])]
