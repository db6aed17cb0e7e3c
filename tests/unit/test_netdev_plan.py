"""linux.netDevices, planned without root: what is refused before any fork (the integration tier,
tests/integration/test_netdevices.py, moves real veths)."""

import socket

import pytest

from pyrunc.errors import ConfigError
from pyrunc.process import netdev

HOST = socket.if_nameindex()[0][1]  # "lo": present in every network namespace


def test_nothing_asked_for():
    assert netdev.plan(None, False) == [] and netdev.plan({}, True) == []


def test_names_and_order():
    assert netdev.plan({HOST: {"name": "eth%d"}}, True) == [(HOST, "eth%d")]
    assert netdev.plan({HOST: {"name": "net0"}}, True) == [(HOST, "net0")]


def test_needs_a_network_namespace():
    with pytest.raises(ConfigError, match=r"^linux.netDevices: .*without a network namespace"):
        netdev.plan({HOST: {}}, False)


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a:b", "a b", ".", ".."])
def test_invalid_names(name):
    with pytest.raises(ConfigError, match=r"^linux.netDevices.* invalid network device name"):
        netdev.plan({HOST: {"name": name}} if name else {"": {}}, True)


def test_missing_host_device_is_named():
    with pytest.raises(ConfigError, match=r"^linux.netDevices.pyrtNoSuch0: no network device 'pyrtNoSuch0'"):
        netdev.plan({"pyrtNoSuch0": {}}, True)


def test_clashes():
    with pytest.raises(ConfigError, match=r"'lo' exists in the container namespace"):
        netdev.plan({HOST: {"name": "lo"}} if HOST != "lo" else {"lo": {}}, True)
    with pytest.raises(ConfigError, match=r"name 'eth0' is also given to"):
        netdev.plan({"a0": {"name": "eth0"}, "b0": {"name": "eth0"}}, True)
