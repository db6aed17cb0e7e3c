"""containerd + ctr end-to-end scenarios, run once per runtime binary (runc, pyrunc)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import termios
import time

import pytest

from .conftest import CMD_TIMEOUT, HOWS, IMAGE, wait_caught

from .ptyutil import run_in_pty

pytestmark = pytest.mark.e2e


# ----------------------------------------------------------------------------- helpers


WAIT_SIZE = ('i=0; while [ $i -lt 50 ]; do s=$(stty size 2>/dev/null); '
             'case "$s" in [1-9]*" "[1-9]*) break;; esac; i=$((i+1)); sleep 0.1; done; echo "size=$s"')


def cgroup_path(pid: int, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def delete_exit_code(r) -> int:
    """`ctr task delete` logs 'task X exit with non-zero exit code N' (0 when silent)."""
    import re
    m = re.search(r"exit code (\d+)", r.stderr_s)
    return int(m.group(1)) if m else 0


# ----------------------------------------------------------------------------- run --rm


@pytest.mark.parametrize("how", HOWS)
def test_run_rm_output(ctr, how):
    cid = ctr.new_id()
    r = ctr.run(cid, "sh", "-c", "echo hello-out; echo hello-err >&2", opts=["--rm"], how=how)
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.replace("\r", "") == "hello-out\n"
    assert "hello-err" in r.stderr_s
    assert cid not in ctr.d.ctr("container", "ls", "-q").stdout_s.split()


@pytest.mark.parametrize("how", HOWS)
def test_run_exit_code(ctr, how):
    cid = ctr.new_id()
    r = ctr.run(cid, "sh", "-c", "exit 3", opts=["--rm"], how=how)
    assert r.returncode == 3, (r.returncode, r.stderr_s)


def test_run_stdin(ctr):
    cid = ctr.new_id()
    data = "line1\nline2 with spaces\n" + "x" * 70000 + "\n"
    rc, out, err = ctr.with_stdin(ctr.run_argv(cid, "sh", "-c", "echo ready; cat; echo END",
                                               opts=["--rm"]), data.encode())
    assert rc == 0, err
    assert out == data + "END\n"


def test_run_env(ctr):
    cid = ctr.new_id()
    r = ctr.run(cid, "env", opts=["--rm", "--env", "FOO=bar baz", "--env", "E2E_X=1"])
    assert r.returncode == 0, r.stderr_s
    lines = r.stdout_s.splitlines()
    assert "FOO=bar baz" in lines
    assert "E2E_X=1" in lines
    assert any(l.startswith("PATH=") and "/bin" in l for l in lines), lines


def test_run_cwd(ctr):
    cid = ctr.new_id()
    r = ctr.run(cid, "pwd", opts=["--rm", "--cwd", "/tmp"])
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.strip() == "/tmp"
    # a cwd that does not exist in the image is created by the runtime
    cid = ctr.new_id()
    r = ctr.run(cid, "pwd", opts=["--rm", "--cwd", "/does/not/exist"])
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.strip() == "/does/not/exist"


def test_run_read_only(ctr):
    cid = ctr.new_id()
    r = ctr.run(cid, "sh", "-c", "touch /newfile; echo rc=$?; touch /dev/shm/ok && echo shm-ok",
                opts=["--rm", "--read-only"])
    assert r.returncode == 0, r.stderr_s
    assert "rc=1" in r.stdout_s, r.stdout_s
    assert "Read-only file system" in r.stderr_s, r.stderr_s
    assert "shm-ok" in r.stdout_s
    # without --read-only the same write works
    cid = ctr.new_id()
    r = ctr.run(cid, "sh", "-c", "touch /newfile && echo ok", opts=["--rm"])
    assert r.returncode == 0 and "ok" in r.stdout_s, r.stderr_s


@pytest.mark.parametrize("cmd,phrase", [
    ("/no/such/binary", "no such file or directory"),
    ("no-such-binary", "executable file not found"),
])
def test_run_missing_binary(ctr, cmd, phrase):
    cid = ctr.new_id()
    r = ctr.run(cid, cmd, opts=["--rm"])
    assert r.returncode != 0
    assert phrase in r.stderr_s.lower(), r.stderr_s
    # the failed task must not linger
    assert cid not in ctr.d.tasks()


def test_run_memory_limit(ctr):
    limit = 64 * 1024 * 1024
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sleep", "60", opts=["--memory-limit", str(limit)])
    path = cgroup_path(pid, "memory")
    assert path.endswith("/" + cid), path
    with open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes") as f:
        assert int(f.read()) == limit
    # the pids/devices/freezer cgroups are the same path
    assert cgroup_path(pid, "pids") == path


def test_run_tty(ctr):
    cid = ctr.new_id()
    argv = ctr.run_argv(cid, "sh", "-c", WAIT_SIZE + "; tty; test -t 0 && echo is-a-tty",
                        opts=["--rm", "-t"])
    status, out = run_in_pty(argv, ctr.d.env, rows=37, cols=113)
    assert status == 0, out
    assert "size=37 113" in out, out
    assert "/dev/pts/" in out or "/dev/console" in out, out
    assert "is-a-tty" in out, out


def test_run_tty_exit_code(ctr):
    cid = ctr.new_id()
    argv = ctr.run_argv(cid, "sh", "-c", "exit 5", opts=["--rm", "-t"])
    status, out = run_in_pty(argv, ctr.d.env, rows=24, cols=80)
    assert status == 5, out


# ----------------------------------------------------------------------------- detached + task verbs


@pytest.mark.parametrize("how", HOWS)
def test_exec_plain(ctr, how):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60", how=how)
    r = ctr.exec_output(cid, "echo exec-out; echo exec-err >&2; exit 4")
    assert r.returncode == 4, r.stderr_s
    assert r.stdout_s == "exec-out\n"
    assert "exec-err" in r.stderr_s
    r = ctr.exec(cid, "cat", "/etc/hostname")
    assert r.returncode == 0, r.stderr_s


def test_exec_stdin(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60")
    rc, out, err = ctr.with_stdin(ctr.exec_argv(cid, "sh", "-c", "echo ready; cat | wc -l"),
                                  b"a\nb\nc\n")
    assert rc == 0, err
    assert out.strip() == "3"


def test_exec_tty(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60")
    argv = ctr.exec_argv(cid, "sh", "-c", WAIT_SIZE + "; test -t 1 && echo is-a-tty", opts=["-t"])
    status, out = run_in_pty(argv, ctr.d.env, rows=41, cols=99)
    assert status == 0, out
    assert "size=41 99" in out, out
    assert "is-a-tty" in out, out


def test_exec_user_and_cwd(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60")
    r = ctr.exec_output(cid, "id -u; id -g; pwd", opts=["--user", "nobody", "--cwd", "/tmp"])
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.split() == ["65534", "65534", "/tmp"]
    r = ctr.exec_output(cid, "id -u", opts=["--user", "1234"])
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.strip() == "1234"
    r = ctr.exec_output(cid, "id -u")
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s.strip() == "0"


def test_exec_missing_binary(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60")
    r = ctr.exec(cid, "/no/such/exe")
    assert r.returncode != 0
    assert "no such file or directory" in r.stderr_s.lower(), r.stderr_s
    # the container survives a failed exec
    assert ctr.d.tasks()[cid][1] == "RUNNING"


def test_task_ps(ctr):
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sh", "-c", "sleep 60 & sleep 61 & wait")
    deadline = time.monotonic() + 10
    pids: list[int] = []
    while time.monotonic() < deadline:
        r = ctr.d.ctr("task", "ps", cid, check=True)
        pids = [int(l.split()[0]) for l in r.stdout_s.splitlines()[1:] if l.strip()]
        if len(pids) >= 3:
            break
        time.sleep(0.1)
    assert pid in pids
    assert len(pids) == 3, r.stdout_s


def test_task_metrics(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60", opts=["--memory-limit", str(128 * 1024 * 1024)])
    r = ctr.d.ctr("task", "metrics", "--format", "json", cid, check=True)
    m = json.loads(r.stdout_s)
    blob = json.dumps(m).lower()
    assert "memory" in blob and "pids" in blob, r.stdout_s[:500]
    r = ctr.d.ctr("task", "metrics", cid, check=True)
    assert "memory" in r.stdout_s.lower()


def test_task_pause_resume(ctr):
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sleep", "60")
    ctr.d.ctr("task", "pause", cid, check=True)
    assert ctr.d.tasks()[cid] == (pid, "PAUSED")
    freezer = cgroup_path(pid, "freezer")
    with open(f"/sys/fs/cgroup/freezer{freezer}/freezer.state") as f:
        assert f.read().strip() == "FROZEN"
    ctr.d.ctr("task", "resume", cid, check=True)
    assert ctr.d.tasks()[cid] == (pid, "RUNNING")
    r = ctr.exec_output(cid, "echo alive")
    assert r.stdout_s == "alive\n"


def test_task_kill_trapped_term(ctr):
    """The init traps TERM and exits 7; `ctr run` (attached) propagates it."""
    cid = ctr.new_id()
    argv = ctr.run_argv(cid, "sh", "-c", 'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done',
                        opts=["--rm"])
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ctr.d.env)
    try:
        assert select.select([p.stdout], [], [], CMD_TIMEOUT)[0], "no output from container"
        assert p.stdout.readline() == b"ready\n"
        ctr.d.ctr("task", "kill", cid, check=True)  # default SIGTERM
        rc = p.wait(CMD_TIMEOUT)
        assert rc == 7, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stdout.close()
        p.stderr.close()


def test_task_kill_detached_exit_status(ctr):
    """Detached: kill TERM, the task goes STOPPED, `task delete` reports exit code 7."""
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sh", "-c", 'trap "exit 7" TERM; while :; do sleep 0.1; done')
    assert wait_caught(pid, signal.SIGTERM), "sh never installed its TERM trap"
    ctr.d.ctr("task", "kill", "--signal", "SIGTERM", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    r = ctr.d.ctr("task", "delete", cid)
    assert delete_exit_code(r) == 7, r.stderr_s


def test_task_kill_all(ctr):
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sh", "-c", "sleep 60 & sleep 61 & wait")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = [int(l.split()[0]) for l in
                ctr.d.ctr("task", "ps", cid, check=True).stdout_s.splitlines()[1:] if l.strip()]
        if len(pids) >= 3:
            break
        time.sleep(0.1)
    assert len(pids) == 3
    ctr.d.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    r = ctr.d.ctr("task", "delete", cid)
    assert delete_exit_code(r) == 137, r.stderr_s
    for p in pids:
        assert not os.path.exists(f"/proc/{p}"), f"pid {p} survived kill --all"


def test_task_kill_plain_sigkill(ctr):
    cid = ctr.new_id()
    ctr.run_detached(cid, "sleep", "60")
    ctr.d.ctr("task", "kill", "-s", "9", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    r = ctr.d.ctr("task", "delete", cid)
    assert delete_exit_code(r) == 137, r.stderr_s
    ctr.d.ctr("container", "rm", cid, check=True)


# ----------------------------------------------------------------------------- daemon restart


@pytest.mark.parametrize("how", HOWS)
def test_containerd_restart(ctr, how):
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sh", "-c", 'trap "exit 9" TERM; while :; do sleep 0.1; done', how=how)
    assert wait_caught(pid, signal.SIGTERM), "sh never installed its TERM trap"
    old_daemon = ctr.d.pid
    try:
        ctr.d.stop()
        assert os.path.exists(f"/proc/{pid}"), "container died with containerd"
    finally:
        ctr.d.start()
    assert ctr.d.pid != old_daemon
    assert ctr.d.tasks()[cid] == (pid, "RUNNING")
    r = ctr.exec_output(cid, "echo after-restart")
    assert r.returncode == 0, r.stderr_s
    assert r.stdout_s == "after-restart\n"
    ctr.d.ctr("task", "kill", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    r = ctr.d.ctr("task", "delete", cid)
    assert delete_exit_code(r) == 9, r.stderr_s
    ctr.d.ctr("container", "rm", cid, check=True)
    assert not os.path.exists(f"/proc/{pid}")


# ----------------------------------------------------------------------------- what the shim passes


ARGV_WRAPPER = """#!/bin/sh
{{ printf 'cwd=%s' "$PWD"; for a in "$@"; do printf ' %s' "$a"; done; echo; }} >> {log}
exec {binary} "$@"
"""


@pytest.mark.parametrize("how", HOWS)
def test_runtime_argv(ctr, how, tmp_path):
    """Point the shim at a logging wrapper; check the verbs and flags pyrunc must accept."""
    log = tmp_path / "argv.log"
    wrapper = tmp_path / f"{ctr.rt.name}-argv-wrapper"
    wrapper.write_text(ARGV_WRAPPER.format(log=log, binary=ctr.rt.binary))
    wrapper.chmod(0o755)
    b = str(wrapper)

    cid = ctr.new_id("a")
    r = ctr.run(cid, "echo", "hi", opts=["--rm"], how=how, binary=b)
    assert r.returncode == 0 and r.stdout_s == "hi\n", r.stderr_s
    cid = ctr.new_id("b")
    pid = ctr.run_detached(cid, "sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done', how=how, binary=b)
    assert wait_caught(pid, signal.SIGTERM), "sh never installed its TERM trap"
    assert ctr.exec(cid, "true").returncode == 0
    status, out = run_in_pty(ctr.exec_argv(cid, "true", opts=["-t"]), ctr.d.env, 24, 80)
    assert status == 0, out
    ctr.d.ctr("task", "ps", cid, check=True)
    ctr.d.ctr("task", "pause", cid, check=True)
    ctr.d.ctr("task", "resume", cid, check=True)
    ctr.d.ctr("task", "kill", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    ctr.d.ctr("task", "delete", cid, check=True)
    ctr.d.ctr("container", "rm", cid, check=True)
    cid = ctr.new_id("c")
    status, out = run_in_pty(ctr.run_argv(cid, "true", opts=["--rm", "-t"], how=how, binary=b),
                             ctr.d.env, 24, 80)
    assert status == 0, out

    lines = log.read_text().splitlines()
    keep = os.environ.get("PYRUNC_E2E_ARGV_LOG")
    if keep:
        with open(keep, "a") as f:
            f.write(f"# {ctr.rt.name} {how}\n" + "\n".join(lines) + "\n")
    root = os.path.join({"runc-binary": os.path.join(ctr.d.runc_roots, ctr.rt.name),
                         "named-shim": "/run/containerd/runc",   # shim default
                         "v1-linux": ctr.d.v1_root}[how], ctr.d.ns)
    prefix = f" --root {root} --log "
    verbs = set()
    for line in lines:
        assert prefix in line, line
        rest = line.split(prefix, 1)[1].split()
        assert rest[0].endswith("/log.json") and rest[1:3] == ["--log-format", "json"], line
        verbs.add(rest[3])
    assert {"create", "start", "exec", "ps", "pause", "resume", "kill", "delete"} <= verbs, verbs
    assert any(" create --bundle " in l and " --pid-file " in l for l in lines)
    assert any(" create " in l and " --console-socket " in l for l in lines)
    assert any(" exec --process " in l and " --console-socket " in l for l in lines)
    assert any(" exec --process " in l and " --detach " in l for l in lines)
    assert any(" ps --format json " in l for l in lines)
