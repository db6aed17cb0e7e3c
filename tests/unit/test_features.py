"""pyrunc features: runc's shape, honest values read from the implementing tables, and a light import."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pyrunc import OCI_VERSION
from pyrunc.cli import features as feat
from pyrunc.linux import NAMESPACES
from pyrunc.process.rootfs import _FLAGS, _MOUNT_ATTR, IDMAP_OPTIONS, PROPAGATION, parse_options
from pyrunc.security import seccomp
from pyrunc.security.caps import CAPABILITIES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("jsonschema", "click", "pyroute2", "pyrunc._helper", "pyrunc._seccomp", "_cffi_backend", "cffi", "ctypes")

# runc 1.2's order (types/features/features.go); runc 1.1.5 prints the same minus the keys 1.2 added
TOP_KEYS = ["ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"]
LINUX_KEYS = ["namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt", "mountExtensions"]
RUNC_12_ADDITIONS = {"linux.cgroup.rdma", "linux.seccomp.knownFlags", "linux.seccomp.supportedFlags", "linux.intelRdt",
                     "linux.intelRdt.enabled", "linux.mountExtensions", "linux.mountExtensions.idmap",
                     "linux.mountExtensions.idmap.enabled"}


def _run_cli(*args):
    """pyrunc features in a fresh interpreter; stdout, and the heavy modules it imported on stderr."""
    code = ("import sys\n"
            "from pyrunc.cli import main\n"
            "try:\n"
            f"    main.main({list(args)!r})\n"
            "except SystemExit as e:\n"
            "    rc = e.code\n"
            f"sys.stderr.write('\\nMODULES=' + repr(sorted(m for m in sys.modules if m in {HEAVY!r})) + '\\n')\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


def _keys(d, prefix=""):
    out = []
    for k, v in d.items():
        out.append(prefix + k)
        if isinstance(v, dict) and k != "annotations":
            out += _keys(v, prefix + k + ".")
    return out


def test_cli_output_and_import_budget():
    p = _run_cli("features")
    assert p.returncode == 0, p.stderr
    assert "MODULES=[]" in p.stderr, p.stderr
    assert p.stdout.startswith('{\n    "ociVersionMin": "1.0.0",\n') and p.stdout.endswith("\n}\n")
    doc = json.loads(p.stdout)
    assert list(doc) == TOP_KEYS
    assert list(doc["linux"]) == LINUX_KEYS
    assert list(doc["linux"]["cgroup"]) == ["v1", "v2", "systemd", "systemdUser", "rdma"]
    assert list(doc["linux"]["seccomp"]) == ["enabled", "actions", "operators", "archs", "knownFlags",
                                             "supportedFlags"]
    assert doc == feat.features()


def test_cli_refuses_arguments():
    assert _run_cli("features", "extra").returncode != 0


def test_values_are_pyruncs_own():
    d = feat.features()
    assert d["ociVersionMin"] == "1.0.0" and d["ociVersionMax"] == OCI_VERSION
    assert d["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    assert d["mountOptions"] == sorted(set(_FLAGS) | set(PROPAGATION) | set(_MOUNT_ATTR) | set(IDMAP_OPTIONS))
    assert "tmpcopyup" not in d["mountOptions"]  # parse_options ignores it: not implemented
    assert "rro" in d["mountOptions"]  # CRI turns on recursive read-only mounts from this
    lx = d["linux"]
    assert lx["namespaces"] == sorted(NAMESPACES) and len(lx["namespaces"]) == 8
    assert lx["capabilities"] == list(CAPABILITIES)
    # systemd: the driver of --systemd-cgroup exists (pyrunc/cgroups/systemd.py); systemdUser (rootless) does not
    from pyrunc.cgroups.systemd import SystemdManager  # noqa: F401

    assert lx["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    sc = lx["seccomp"]
    assert sc["enabled"] is True
    assert sc["actions"] == sorted(seccomp.ACTIONS) and sc["operators"] == sorted(seccomp.OPERATORS)
    assert sc["archs"] == sorted(seccomp.ARCHES)
    assert sc["knownFlags"] == list(seccomp.FLAGS)
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    assert lx["apparmor"] == {"enabled": False} and lx["selinux"] == {"enabled": False}
    assert lx["intelRdt"] == {"enabled": False}
    assert lx["mountExtensions"] == {"idmap": {"enabled": True}}  # containerd allows id-mapped mounts from this
    assert d["annotations"]["io.github.pyrunc.version"]
    assert all(isinstance(v, str) for v in d["annotations"].values())


def test_every_advertised_mount_option_is_parsed_not_passed_as_data():
    for opt in feat.features()["mountOptions"]:
        assert parse_options([opt])[2] == "", opt


def test_every_advertised_seccomp_name_is_accepted():
    sc = feat.features()["linux"]["seccomp"]
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": sc["archs"], "flags": sc["knownFlags"],
            "syscalls": [{"names": ["getpid"], "action": a, "args": [{"index": 0, "op": op, "value": 1}]}
                         for a in sc["actions"] if a != "SCMP_ACT_ALLOW" for op in sc["operators"]]}
    seccomp._plan(spec, "linux.seccomp")  # validation only: raises ConfigError on anything it does not know


@pytest.mark.parametrize("release, expected", [
    ("6.18.44-fc-v669", list(seccomp.FLAGS)),
    ("5.10.0-21-amd64", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
    ("4.14.0", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]),
    ("3.10.0-1160.el7.x86_64", []),
    ("garbage", []),
])
def test_supported_flags_follow_the_kernel(release, expected):
    assert feat.supported_seccomp_flags(list(seccomp.FLAGS), release) == expected


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_same_shape_as_runc():
    ref = json.loads(subprocess.run(["runc", "features"], capture_output=True, text=True, check=True).stdout)
    ours = feat.features()
    rk, ok = _keys(ref), _keys(ours)
    assert set(rk) <= set(ok), set(rk) - set(ok)
    assert set(ok) - set(rk) <= RUNC_12_ADDITIONS
    assert [k for k in ok if k in rk] == rk  # same relative order
    assert ours["hooks"] == ref["hooks"]
    assert ours["linux"]["capabilities"][:len(ref["linux"]["capabilities"])] == ref["linux"]["capabilities"]
    assert ours["linux"]["seccomp"]["operators"] == ref["linux"]["seccomp"]["operators"]
    # tmpcopyup is the one runc option pyrunc does not implement, so it is not advertised
    assert set(ref["mountOptions"]) - set(ours["mountOptions"]) <= {"tmpcopyup"}
