"""containerd-shim-pyrunc-v1's command line (no root): Go flag parsing, the socket naming, the grouping key."""

import hashlib
import os
import subprocess
import sys

import pytest

from pyrunc.shim import main as shim


def test_parse_start_as_containerd_sends_it():
    flags, action = shim.parse(["-namespace", "default", "-address", "/run/containerd/containerd.sock",
                                "-publish-binary", "/usr/bin/containerd", "-id", "s1", "-debug", "start"])
    assert action == "start"
    assert (flags["namespace"], flags["address"], flags["id"], flags["debug"]) == (
        "default", "/run/containerd/containerd.sock", "s1", True)
    assert flags["publish-binary"] == "/usr/bin/containerd"


def test_parse_go_forms():
    flags, action = shim.parse(["--namespace=k8s.io", "-id=x", "-debug=false", "-bundle", "/b", "delete"])
    assert (flags["namespace"], flags["id"], flags["debug"], flags["bundle"], action) == (
        "k8s.io", "x", False, "/b", "delete")
    flags, action = shim.parse(["-v"])
    assert flags["v"] and action == ""
    flags, action = shim.parse(["-id", "x", "--", "-weird"])
    assert action == "-weird"


@pytest.mark.parametrize("argv, msg", [(["-nope", "x"], "flag provided but not defined: -nope"),
                                       (["-id"], "flag needs an argument: -id")])
def test_parse_errors(argv, msg):
    with pytest.raises(shim.Usage, match=msg):
        shim.parse(argv)


def test_socket_path_is_the_runc_shims():
    # measured against containerd-shim-runc-v2 (SHIM.md §1.3): sha256("<address>/<ns>/<key>")
    want = hashlib.sha256(b"/run/containerd/containerd.sock/default/s1").hexdigest()
    assert shim.socket_path("/run/containerd/containerd.sock", "default", "s1") == "/run/containerd/s/" + want


def test_group_key():
    assert shim.group_key({}, "c1") == "c1"
    assert shim.group_key({"io.kubernetes.cri.sandbox-id": "pod"}, "c1") == "pod"
    assert shim.group_key({"io.kubernetes.cri.sandbox-id": "pod", "io.containerd.runc.v2.group": "g"}, "c1") == "g"
    assert shim.group_key({"io.containerd.runc.v2.group": ""}, "c1") == "c1"


def _run(args, **kw):
    exe = os.path.join(os.path.dirname(sys.executable), "containerd-shim-pyrunc-v1")
    if not os.path.exists(exe):
        pytest.skip("containerd-shim-pyrunc-v1 is not installed in this venv (make install)")
    return subprocess.run([exe, *args], capture_output=True, timeout=30, stdin=subprocess.DEVNULL, **kw)


def test_version_and_usage_errors():
    r = _run(["-v"])
    assert r.returncode == 0 and b"containerd-shim-pyrunc-v1" in r.stdout and r.stderr == b""
    r = _run(["-id", "x", "frobnicate"])
    assert r.returncode == 2 and r.stderr == b"containerd-shim-pyrunc-v1: unknown action 'frobnicate'\n"


def test_start_and_delete_stay_light():
    """start and delete are on every container's critical path: no protobuf, json, re, threading or the C helper
    before the daemon forks; delete with nothing left to clean imports none of the library."""
    code = ("import sys; from pyrunc.shim import main; main.parse(['-id', 'x', 'start']); "
            "main.socket_path('/a', 'ns', 'x'); main._annotations('/nonexistent'); "
            "print(' '.join(sorted(sys.modules)))")
    def modules(code):
        return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.split())

    # whatever this interpreter's site already imports (an editable install's finder imports re) is not ours
    mods = modules(code) - modules("import sys; print(' '.join(sorted(sys.modules)))")
    for heavy in ("google.protobuf", "json", "re", "threading", "pyrunc._helper", "_cffi_backend",
                  "pyrunc.container.lifecycle", "pyrunc.shim.api"):
        assert heavy not in mods, heavy
