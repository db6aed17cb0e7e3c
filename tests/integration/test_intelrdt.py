"""linux.intelRdt on a host without resctrl (this one: no Intel RDT, no resctrl filesystem): refused with runc's
error, before anything is made; runc gives the same answer.  The resctrl side (group, schemata, tasks,
monitoring group, delete) is unit-tested over a fake tree: tests/unit/test_intelrdt.py."""

import os
import shutil
import subprocess

import pytest

from pyrunc.process.intelrdt import find_root

RUNC = shutil.which("runc")


@pytest.fixture(autouse=True)
def _no_resctrl():
    if find_root():
        pytest.skip("this host has resctrl: the refusal below does not apply")


def edit(c):
    c["linux"]["intelRdt"] = {"closID": "pyrunc-it", "l3CacheSchema": "L3:0=f"}


def test_intel_rdt_is_refused_without_resctrl(pyrunc, bundle, tmp_path):
    b = bundle(["echo", "ran"], edit=edit)
    cid = pyrunc.new_id("rdt")
    p = pyrunc("run", "--bundle", b, cid, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "ran" not in p.out
    assert "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled" in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    if RUNC:
        root = str(tmp_path / "runc-state")
        r = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), "pyrunc-it-rdt-runc"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        subprocess.run([RUNC, "--root", root, "delete", "--force", "pyrunc-it-rdt-runc"], capture_output=True,
                       timeout=60)
        assert r.returncode != 0 and "ran" not in r.stdout
        assert "is specified in config, but Intel RDT" in r.stderr, r.stderr  # 1.1.5 names the schema first
