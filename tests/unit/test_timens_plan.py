"""linux.timeOffsets, planned without root (tests/integration/test_timens.py runs them)."""

import pytest

from pyrunc.errors import ConfigError
from pyrunc.process import timens


def test_lines_in_kernel_clock_ids():
    data = timens.plan({"monotonic": {"secs": -5, "nanosecs": 1}, "boottime": {"secs": 100000}}, {"time"}, set())
    assert data == b"1 -5 1\n7 100000 0\n"


def test_nothing_asked_for():
    assert timens.plan(None, {"time"}, set()) is None and timens.plan({}, set(), set()) is None


def test_needs_a_new_time_namespace():
    with pytest.raises(ConfigError, match=r"^linux.timeOffsets: .*no time namespace"):
        timens.plan({"boottime": {"secs": 1}}, {"pid"}, set())
    with pytest.raises(ConfigError, match=r"^linux.timeOffsets: .*joined by path"):
        timens.plan({"boottime": {"secs": 1}}, {"time"}, {"time"})


def test_nanoseconds_below_one_second():
    with pytest.raises(ConfigError, match=r"^linux.timeOffsets.boottime.nanosecs: "):
        timens.plan({"boottime": {"nanosecs": 1000000000}}, {"time"}, set())
