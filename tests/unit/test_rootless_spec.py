"""`pyrunc spec --rootless` writes runc's rootless default config (runc 1.1.5 specconv.ToRootless): compared
key by key with `runc spec --rootless`, run as root and as an unprivileged uid (the mappings name the caller)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import require

UNPRIVILEGED = 64123  # a uid/gid no one uses: spec needs no account, only the ids
PYRUNC = os.path.join(os.path.dirname(sys.executable), "pyrunc")


def _spec(argv, cwd, ids=None):
    if ids is not None:
        argv = ["setpriv", f"--reuid={ids}", f"--regid={ids}", "--clear-groups", *argv]
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(cwd, "config.json")) as f:
        return json.load(f)


def _flat(doc, prefix=""):
    """Every leaf as path -> value, so a difference names its key."""
    if isinstance(doc, dict):
        return {k: v for key, val in doc.items() for k, v in _flat(val, f"{prefix}.{key}").items()}
    if isinstance(doc, list):
        return {k: v for i, val in enumerate(doc) for k, v in _flat(val, f"{prefix}[{i}]").items()}
    return {prefix: doc}


@pytest.mark.parametrize("ids", [None, UNPRIVILEGED], ids=["root", "unprivileged"])
def test_spec_rootless_matches_runc(tmp_path, ids):
    runc = shutil.which("runc")
    require(runc, "runc is not installed: nothing to compare the rootless default config with")
    if ids is not None:
        require(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv to run spec as another uid")
    theirs_dir, ours_dir = tmp_path / "runc", tmp_path / "pyrunc"
    for d in (theirs_dir, ours_dir):
        d.mkdir()
        os.chmod(d, 0o777)
    theirs = _spec([runc, "spec", "--rootless"], theirs_dir, ids)
    ours = _spec([PYRUNC, "spec", "--rootless"], ours_dir, ids)
    assert ours.pop("hostname") == "pyrunc" and theirs.pop("hostname") == "runc"
    assert ours.pop("ociVersion") and theirs.pop("ociVersion")
    theirs_flat, ours_flat = _flat(theirs), _flat(ours)
    differ = {k: (ours_flat.get(k), theirs_flat.get(k)) for k in theirs_flat.keys() | ours_flat.keys()
              if ours_flat.get(k, KeyError) != theirs_flat.get(k, KeyError)}
    assert differ == {}
    caller = 0 if ids is None else ids
    assert ours["linux"]["uidMappings"] == [{"containerID": 0, "hostID": caller, "size": 1}]
    assert ours["linux"]["gidMappings"] == [{"containerID": 0, "hostID": caller, "size": 1}]
    assert "resources" not in ours["linux"]
    assert [ns["type"] for ns in ours["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    sysfs = [m for m in ours["mounts"] if m["destination"] == "/sys"]
    assert sysfs == [{"destination": "/sys", "type": "none", "source": "/sys",
                      "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
    assert not any(o.startswith(("uid=", "gid=")) for m in ours["mounts"] for o in m.get("options", ()))


def test_spec_default_still_matches_runc(tmp_path):
    """The non-rootless default stays runc's too (the rootless variant is built from it)."""
    runc = shutil.which("runc")
    require(runc, "runc is not installed: nothing to compare the default config with")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    theirs = _spec([runc, "spec"], tmp_path / "a")
    ours = _spec([PYRUNC, "spec"], tmp_path / "b")
    for d in (theirs, ours):
        d.pop("hostname")
        d.pop("ociVersion")
    assert _flat(ours) == _flat(theirs)
