"""Property tests for the pure v1 -> v2 conversions (runc libcontainer/cgroups/utils.go)."""

import random

import pytest

from pyrunc.cgroups import convert
from pyrunc.errors import ConfigError


def test_shares_to_weight_bounds_and_monotonic():
    prev = 0
    for shares in range(2, 262145):
        w = convert.shares_to_weight(shares)
        assert 1 <= w <= 10000
        assert w >= prev
        prev = w
    assert convert.shares_to_weight(2) == 1
    assert convert.shares_to_weight(262144) == 10000
    assert convert.shares_to_weight(1024) == 39  # runc's value; not the v2 default 100
    assert convert.shares_to_weight(0) == 0 and convert.shares_to_weight(None) == 0


def test_blkio_weight_to_io_weight_bounds_and_monotonic():
    prev = 0
    for w in range(10, 1001):
        v = convert.blkio_weight_to_io_weight(w)
        assert 1 <= v <= 10000
        assert v >= prev
        prev = v
    assert convert.blkio_weight_to_io_weight(10) == 1
    assert convert.blkio_weight_to_io_weight(1000) == 10000
    assert convert.blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990
    assert convert.blkio_weight_to_io_weight(0) == 0


def test_swap_conversion_properties():
    rnd = random.Random(4)
    for _ in range(5000):
        mem = rnd.randint(1, 1 << 40)
        swap = mem + rnd.randint(0, 1 << 40)
        v = convert.swap_to_v2(swap, mem)
        assert v == swap - mem and v >= 0  # v2 swap excludes memory
        assert convert.swap_to_v2(-1, mem) == -1
        assert convert.swap_to_v2(0, mem) == 0
        if mem > 1:
            with pytest.raises(ConfigError):
                convert.swap_to_v2(mem - 1, mem)  # memory+swap below memory
    assert convert.swap_to_v2(0, -1) == -1  # unlimited memory, swap unset: both unlimited
    assert convert.swap_to_v2(None, None) == 0
    with pytest.raises(ConfigError, match="without memory limit"):
        convert.swap_to_v2(100, 0)
    with pytest.raises(ConfigError, match="without memory limit"):
        convert.swap_to_v2(100, -1)
    with pytest.raises(ConfigError, match=">= memory limit"):
        convert.swap_to_v2(10, 20)
    with pytest.raises(ConfigError, match="invalid memory value"):
        convert.swap_to_v2(10, -5)


def test_num_to_v2():
    assert convert.num_to_v2(0) == "" and convert.num_to_v2(None) == ""
    assert convert.num_to_v2(-1) == "max"
    assert convert.num_to_v2(42) == "42"
