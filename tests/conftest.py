"""Shared fixtures: how tests find the pyrunc command, and a root check for the privileged tiers."""

import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyrunc_argv():
    """The pyrunc command under test: $PYRUNC_BIN, else the `pyrunc` next to this Python, else the module."""
    if os.environ.get("PYRUNC_BIN"):
        return [os.environ["PYRUNC_BIN"]]
    here = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    if os.path.exists(here):
        return [here]
    return [sys.executable, "-m", "pyrunc.cli.main"]


def is_root():
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root: real namespaces, mounts and cgroups")


@pytest.fixture(scope="session")
def busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    p = shutil.which("busybox")
    if not p:
        pytest.skip("no static busybox on this host (apt-get install busybox-static)")
    return p
