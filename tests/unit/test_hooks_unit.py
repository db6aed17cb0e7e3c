"""pyrunc.container.hooks without root: the in-container hooks' wait (non-blocking stdin, deadline), runc's error
wording, and the environment and cwd host hooks get."""

import json
import os
import sys
import time

import pytest

from pyrunc.container import hooks


def test_wait_hook_deadline_and_large_input():
    """hooks.wait_hook (the in-container hooks' wait): a hook that never reads more than a pipe's worth of
    input is killed at its deadline, whatever the deadline (the default one raised KeyError before)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        time.sleep(30)
        os._exit(0)
    os.close(r)
    t0 = time.monotonic()
    status = hooks.wait_hook(pid, w, b"x" * (1 << 20), 0.5)
    assert status is None and time.monotonic() - t0 < 5
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os._exit(0 if json.loads(data) == {"big": "y" * (1 << 20)} else 1)
    os.close(r)
    status = hooks.wait_hook(pid, w, json.dumps({"big": "y" * (1 << 20)}).encode(), 10)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0


def test_failure_wording_is_runcs():
    assert hooks.failure(3, b"out\n", b"err\n") == "error running hook: exit status 3, stdout: out\n, stderr: err\n"
    assert hooks.failure(-9, b"", b"") == "error running hook: signal: killed, stdout: , stderr: "


def _probe(tmp_path, **hook):
    out = tmp_path / "probe.json"
    code = f"import json,os,sys; json.dump({{'cwd': os.getcwd(), 'env': dict(os.environ), 'stdin': sys.stdin.read()}}, open({str(out)!r}, 'w'))"
    h = dict({"path": sys.executable, "args": [sys.executable, "-c", code]}, **hook)
    return h, out


def test_host_hook_cwd_env_and_state(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    monkeypatch.setenv("PYRUNC_TEST_INHERITED", "1")
    h, out = _probe(tmp_path)
    state = {"id": "c", "bundle": str(bundle), "annotations": {"big": "z" * (200 << 10)}}
    hooks.run_hooks({"prestart": [h]}, "prestart", state)
    got = json.loads(out.read_text())
    assert got["cwd"] == str(bundle)
    assert got["env"].get("PYRUNC_TEST_INHERITED") == "1"  # no `env`: ours (Go's nil Env)
    assert json.loads(got["stdin"]) == state
    h, out = _probe(tmp_path, env=["ONLY=1"])
    hooks.run_hooks({"poststop": [h]}, "poststop", state, cwd="/")
    got = json.loads(out.read_text())
    assert got["cwd"] == "/" and got["env"].get("ONLY") == "1" and "PYRUNC_TEST_INHERITED" not in got["env"]


def test_hook_errors_name_kind_and_index(tmp_path):
    state = {"id": "c", "bundle": str(tmp_path)}
    bad = {"path": "/bin/sh", "args": ["sh", "-c", "echo o; echo e >&2; exit 4"]}
    with pytest.raises(hooks.HookError) as e:
        hooks.run_hooks({"createRuntime": [{"path": "/bin/true"}, bad]}, "createRuntime", state)
    assert str(e.value) == "error running createRuntime hook #1: error running hook: exit status 4, stdout: o\n, stderr: e\n"
    with pytest.raises(hooks.HookError) as e:
        hooks.run_hooks({"prestart": [{"path": "/no/such/hook"}]}, "prestart", state)
    assert str(e.value) == "error running prestart hook #0: fork/exec /no/such/hook: no such file or directory"
    with pytest.raises(hooks.HookError) as e:
        hooks.run_hooks({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}, "prestart",
                        state)
    assert str(e.value) == "error running prestart hook #0: hook ran past specified timeout of 1.0s"
