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
    code = ("import sys, tempfile; from pyrunc.shim import main; main.parse(['-id', 'x', 'start']); "
            "main.SOCKET_DIR = tempfile.mkdtemp(); main._listen(main.SOCKET_DIR + '/s').close(); "
            "main.socket_path('/a', 'ns', 'x'); main._annotations('/nonexistent'); "
            "print(' '.join(sorted(sys.modules)))")
    def modules(code):
        return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.split())

    # whatever this interpreter's site already imports (an editable install's finder imports re) is not ours
    mods = modules(code) - modules("import sys; print(' '.join(sorted(sys.modules)))")
    for heavy in ("google.protobuf", "json", "re", "threading", "socket", "enum", "pyrunc._helper",
                  "_cffi_backend", "pyrunc.container.lifecycle", "pyrunc.shim.api"):
        assert heavy not in mods, heavy


@pytest.mark.parametrize("pid, status, ns", [(5951, 137, 1764590000123456789), (0, 137, 1764590000000000000),
                                              (1, 0, 5)])
def test_delete_response_encoding_matches_the_codec(pid, status, ns):
    from pyrunc.shim import api, wire
    from pyrunc.shim.cleanup import delete_response

    want = api.DeleteResponse(pid=pid, exit_status=status, exited_at=wire.Timestamp.from_ns(ns))
    assert delete_response(pid, status, ns) == want.encode()
    assert api.DeleteResponse.decode(delete_response(pid, status, ns)) == want


def test_delete_with_nothing_left_is_light_and_prints_a_response(tmp_path):
    r = _run(["-namespace", "default", "-id", "gone", "-bundle", str(tmp_path), "delete"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from pyrunc.shim import api

    resp = api.DeleteResponse.decode(r.stdout)
    assert resp.exit_status == 137 and resp.exited_at.seconds > 0
    code = ("import sys; from pyrunc.shim import main; main.main(['-id', 'x', '-bundle', sys.argv[1], 'delete']); "
            "sys.stderr.write(' '.join(sorted(sys.modules)))")
    mods = set(subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=30,
                              check=True).stderr.decode().split())
    for heavy in ("pyrunc.shim.wire", "pyrunc.shim.api", "pyrunc.container.lifecycle", "threading", "socket",
                  "pyrunc.fastjson", "_json", "pyrunc.shim.mounts"):  # no options file: nothing was mounted
        assert heavy not in mods, heavy


def test_listen_reuses_a_live_socket_and_replaces_a_stale_one(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(shim, "SOCKET_DIR", str(tmp_path))
    path = str(tmp_path / "s")
    live = shim._listen(path)
    assert live is not None
    assert shim._listen(path) is None  # another container of the pod: print the address, spawn nothing
    live.close()  # the socket file stays, nobody listens: a SIGKILLed shim's leftover
    again = shim._listen(path)
    assert again is not None
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.close()
    again.close()


def test_daemon_modules_import_no_stdlib_wrappers():
    """The shim daemon's own modules use the C modules (_socket, _signal, _queue): `socket`, `signal` and `queue`
    pull in enum, selectors and heapq, ~5 ms before the first Create can be answered."""
    code = ("import sys, pyrunc; before = set(sys.modules); "  # an editable install's finder loads enum itself
            "from pyrunc.shim import daemon, events, reaper, service, stdio, ttrpc; "
            "sys.stderr.write(' '.join(sorted(set(sys.modules) - before)))")
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                              check=True).stderr.decode().split())
    assert "pyrunc.shim.ttrpc" in mods
    for heavy in ("socket", "signal", "queue", "enum", "selectors", "copy", "json", "threading"):
        assert heavy not in mods, heavy


def test_daemon_start_up_imports_no_threading():
    """Nothing the daemon imports before its first Create (its own modules and the warm-up of Create's) loads
    `threading` (functools, collections, _weakrefset...: ~3 ms): the shim's primitives are pyrunc/shim/sync.py;
    nor the C extension _queue (~0.25 ms to load): ttrpc's idle workers wait on locks of their own."""
    code = ("import sys, pyrunc; before = set(sys.modules); "
            "from pyrunc.shim import daemon, events, reaper, service, stdio, ttrpc; daemon._warm_up(); "
            "sys.stderr.write(' '.join(sorted(set(sys.modules) - before)))")
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                              check=True).stderr.decode().split())
    assert "pyrunc.process.child" in mods  # the warm-up ran
    # Stats' 25 Metrics messages are built on the first Stats (or REGISTRY), not before the first Create
    code = "from pyrunc.shim import api, daemon; daemon._warm_up(); print('V1Metrics' in vars(api)," \
           " api.V1Metrics.NAME, api.V2Metrics.NAME in api.REGISTRY)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=True).stdout.split()
    assert out == [b"False", b"io.containerd.cgroups.v1.Metrics", b"True"]
    for heavy in ("threading", "functools", "collections", "_weakrefset", "_queue",
                  "pyrunc.shim.cleanup"):
        assert heavy not in mods, heavy


def test_exit_code_when_run_as_the_program(tmp_path):
    """Run as the program, main() leaves with os._exit(code): the code and the bytes written still arrive."""
    r = _run(["-id", "x", "frobnicate"])
    assert r.returncode == 2
    r = _run(["-namespace", "default", "-id", "gone", "-bundle", str(tmp_path), "delete"], cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(b"\x10\x89\x01")  # exit_status 137


@pytest.mark.parametrize("config, key", [
    (b'{"ociVersion": "1.0.2", "annotations": {"x": "y"}}', "c1"),
    (b'{"annotations": {"io.kubernetes.cri.sandbox-id": "pod"}}', "pod"),
    (b'{"annotations": {"io.kubernetes.cri.sandbox\\u002did": "pod"}}', "pod"),  # escaped: still found
    (b'{"annotations": {"io.containerd.runc.v2.group": "g", "io.kubernetes.cri.sandbox-id": "pod"}}', "g"),
    (b'not json', "c1"),
])
def test_start_grouping_key_from_the_bundle(tmp_path, config, key):
    (tmp_path / "config.json").write_bytes(config)
    assert shim.group_key(shim._annotations(str(tmp_path)), "c1") == key


def test_start_parses_no_json_without_a_grouping_label(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "1.0.2", "annotations": {"x": "y"}}')
    code = ("import sys; from pyrunc.shim import main; before = set(sys.modules); "
            "assert main._annotations(sys.argv[1]) == {}; "
            "sys.stderr.write(' '.join(sorted(set(sys.modules) - before)))")
    mods = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=30,
                          check=True).stderr.decode().split()
    assert "pyrunc.fastjson" not in mods and "_json" not in mods


def test_shim_cgroup_from_runc_options_and_toml(tmp_path):
    from pyrunc.shim import api, wire

    runc = wire.pack(api.RuncOptions(shim_cgroup="/pods/a", binary_name="x", io_uid=5)).encode()
    assert shim.shim_cgroup(runc) == "/pods/a"
    assert shim.shim_cgroup(b"") == "" and shim.shim_cgroup(wire.pack(api.RuncOptions(root="/r")).encode()) == ""
    toml = tmp_path / "shim.toml"
    toml.write_text('root = "/r"\nshim_cgroup = "/pods/b"\n')
    assert shim.shim_cgroup(wire.pack(api.RuntimeOptions(config_path=str(toml))).encode()) == "/pods/b"
    toml.write_text('root = "/r"\n')
    assert shim.shim_cgroup(wire.pack(api.RuntimeOptions(config_path=str(toml))).encode()) == ""
    toml.write_text("shim_cgroup = 3\n")
    with pytest.raises(shim.Usage, match="shim_cgroup must be a string"):
        shim.shim_cgroup(wire.pack(api.RuntimeOptions(config_path=str(toml))).encode())
    with pytest.raises(shim.Usage, match="runtime options"):
        shim.shim_cgroup(b"\x0a\x10short")


def _fake_cgroups(root, hierarchies, path):
    for h in hierarchies:
        d = root / h / path.strip("/")
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")


def test_join_cgroup_v1_every_hierarchy_that_has_it(tmp_path):
    _fake_cgroups(tmp_path, ["pids", "memory", "unified"], "/pods/a")
    (tmp_path / "cpu,cpuacct").mkdir()  # a hierarchy without the cgroup: skipped
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    shim.join_cgroup("/pods/a", 4242, root=str(tmp_path))
    for h in ("pids", "memory"):
        assert (tmp_path / h / "pods/a/cgroup.procs").read_text() == "4242"
    assert (tmp_path / "unified/pods/a/cgroup.procs").read_text() == ""  # hybrid: v1 hierarchies only


def test_join_cgroup_v2_and_refusals(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("pids memory\n")
    _fake_cgroups(tmp_path, [""], "/pods/a")
    shim.join_cgroup("/pods/a", 7, root=str(tmp_path))
    assert (tmp_path / "pods/a/cgroup.procs").read_text() == "7"
    with pytest.raises(shim.Usage, match="shim_cgroup /pods/zz: no such cgroup"):
        shim.join_cgroup("/pods/zz", 7, root=str(tmp_path))
    for bad in ("pods/a", "/pods/../etc"):
        with pytest.raises(shim.Usage, match="not an absolute cgroup path"):
            shim.join_cgroup(bad, 7, root=str(tmp_path))
