"""docker (dockerd 20.10 + its own containerd) end-to-end scenarios, once per runtime.

Runtimes are registered with dockerd as ``runcref`` (plain runc) and ``pyrunc``
and chosen per container with ``docker run --runtime NAME``; see docker_fixture.py
for how the private daemon is configured.  Containers use ``--network none``
(which still runs libnetwork's ``libnetwork-setkey`` OCI prestart hook).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from ..conftest import require

# fixtures (docker_session, docker_runtime, dk) are imported so pytest finds them here
from .docker_fixture import docker_runtime, docker_session, dk  # noqa: F401
from .docker_fixture import CMD_TIMEOUT
from .ptyutil import run_in_pty

pytestmark = pytest.mark.e2e

# the docker client resizes the tty only after start: poll until the size is set
WAIT_SIZE = ('i=0; while [ $i -lt 50 ]; do s=$(stty size 2>/dev/null); '
             'case "$s" in [1-9]*" "[1-9]*) break;; esac; i=$((i+1)); sleep 0.1; done; echo "size=$s"')
# PID 1 that exits 0 on SIGTERM (sh runs a trap only between commands: short sleeps)
TRAPPED = ('trap "echo got-term; exit 0" TERM; trap "echo got-usr1" USR1; trap "echo got-hup; exit 7" HUP; '
           'echo started; while :; do sleep 0.1; done')


# ----------------------------------------------------------------------------- daemon


def test_info_lists_runtimes(docker_session):
    d = docker_session.daemon
    require("pyrunc" in d.runtimes, "pyrunc binary not found: set PYRUNC_BIN or put `pyrunc` next to python")
    r = d.docker("info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}|{{json .RuncCommit}}",
                 check=True)
    runtimes, default, commit = r.out.strip().split("|", 2)
    runtimes = json.loads(runtimes)
    assert runtimes["pyrunc"]["path"] == d.runtimes["pyrunc"], runtimes
    assert "runcref" in runtimes, runtimes
    assert default == "pyrunc"
    # 20.10 runs `<default runtime> --version` for info and parses its "commit: X" line
    v = subprocess.run([d.runtimes["pyrunc"], "--version"], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert v.returncode == 0, v.stderr
    want = [ln.split(":", 1)[1].strip() for ln in v.stdout.splitlines() if ln.startswith("commit:")]
    assert want and json.loads(commit)["ID"] == want[0], (commit, v.stdout)
    plain = d.docker("info", check=True).out
    assert re.search(r"Runtimes:.*\bpyrunc\b", plain), plain
    assert f"runc version: {want[0]}" in plain, plain


def test_daemon_log_clean_for_pyrunc(docker_session):
    d = docker_session.daemon
    d.docker("info", check=True)  # runs `pyrunc --version`
    bad = [ln for ln in d.log_text().splitlines()
           if re.search(r"level=(warning|error|fatal)", ln)
           and re.search(r"runtime|runc|features|failed to (retrieve|parse)", ln, re.I)
           and "containerd config version" not in ln]
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------- run


def test_runtime_owns_container(dk):
    """The container really runs under the chosen binary: its state is in that runtime's root."""
    name = dk.run_detached("sh", "-c", TRAPPED)
    info = dk.inspect(name)
    assert info["HostConfig"]["Runtime"] == dk.runtime
    binary = dk.d.runtimes[dk.runtime]
    bundle = dk.d.bundle_dir(info["Id"])
    with open(os.path.join(bundle, "options.json")) as f:  # runc.v1.Options the shim got
        opts = json.load(f)
    assert opts.get("binary_name") == binary, opts
    # 20.10 sets Root to <exec-root>/runtime-runc for every runtime; the shim appends the namespace
    root = os.path.join(opts["root"], dk.d.ns)
    r = subprocess.run([binary, "--root", root, "state", info["Id"]], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, (r.stdout, r.stderr, dk.diag(name))
    st = json.loads(r.stdout)
    assert st["status"] == "running" and st["pid"] == info["State"]["Pid"], st
    assert st["bundle"] == bundle, st


def test_run_rm_output_exit_code(dk):
    r = dk.run("sh", "-c", "echo hello-out; echo hello-err >&2; exit 3", opts=["--rm"])
    assert r.returncode == 3, (r.out, r.err, dk.diag())
    assert r.out == "hello-out\n"
    assert "hello-err" in r.err
    r = dk.run("true", opts=["--rm"])
    assert r.returncode == 0, (r.out, r.err)


def test_run_stdin(dk):
    r = dk.run("sh", "-c", "tr a-z A-Z; echo done", opts=["--rm", "-i"], input=b"abc\nxyz\n")
    assert r.returncode == 0, (r.out, r.err, dk.diag())
    assert r.out == "ABC\nXYZ\ndone\n"


def test_run_tty(dk):
    argv = dk.run_argv("sh", "-c", WAIT_SIZE + "; tty; exit 5", opts=["--rm", "-it"])
    status, out = run_in_pty(argv, dk.env, rows=37, cols=113)
    assert status == 5, (out, dk.diag())
    assert "size=37 113" in out, out
    assert re.search(r"/dev/pts/\d+", out), out


def test_run_tty_input(dk):
    argv = dk.run_argv("sh", "-c", "echo ready; read line; echo got=$line",
                       opts=["--rm", "-it"])
    status, out = run_in_pty(argv, dk.env, rows=24, cols=80, send=b"hello\r", send_after=b"ready")
    assert status == 0, (out, dk.diag())
    assert "got=hello" in out, out


def test_run_init(dk):
    require(os.access("/usr/bin/docker-init", os.X_OK) or shutil.which("docker-init"),
            "docker-init is not installed (tini, a dependency of docker.io)")
    r = dk.run("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo pid=$$; exit 9",
               opts=["--rm", "--init"])
    assert r.returncode == 9, (r.out, r.err, dk.diag())
    first = r.out.splitlines()[0]
    assert "docker-init" in first, r.out
    assert "pid=1\n" not in r.out


def test_run_restricted(dk, tmp_path):
    """docker's spec for a locked-down container: read-only rootfs, tmpfs, bind mount, user, caps."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in.txt").write_text("from-host\n")
    os.chmod(vol, 0o777)
    script = ("cat /vol/in.txt; id -u; id -g; touch /x 2>/dev/null && echo rootfs-rw || echo rootfs-ro; "
              "echo t > /scratch/t && echo tmpfs-ok; echo v > /vol/out.txt && echo vol-ok; "
              "grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; "
              "grep Seccomp: /proc/self/status; hostname")
    r = dk.run("sh", "-c", script,
               opts=["--rm", "--read-only", "--tmpfs", "/scratch:mode=1777", "-v", f"{vol}:/vol",
                     "--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                     "--hostname", "locked", "-e", "FOO=bar"])
    assert r.returncode == 0, (r.out, r.err, dk.diag())
    lines = r.out.splitlines()
    assert lines[:6] == ["from-host", "65534", "65534", "rootfs-ro", "tmpfs-ok", "vol-ok"], r.out
    assert re.search(r"CapEff:\s+0+$", r.out, re.M), r.out
    assert re.search(r"NoNewPrivs:\s+1$", r.out, re.M), r.out
    assert re.search(r"Seccomp:\s+2$", r.out, re.M), r.out  # docker's default profile (filter mode)
    assert lines[-1] == "locked"
    assert (vol / "out.txt").read_text() == "v\n"


def _missing_bounding_caps() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        full = (1 << (int(f.read()) + 1)) - 1
    with open("/proc/self/status") as f:
        bnd = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
    return full & ~bnd


def test_run_privileged(dk):
    missing = _missing_bounding_caps()
    if missing:
        pytest.skip(f"this host's capability bounding set lacks {missing:#x}: --privileged asks for "
                    "every capability and fails with EPERM (runc: 'unable to apply caps')")
    r = dk.run("sh", "-c", "grep CapEff /proc/self/status; grep Seccomp: /proc/self/status; "
               "mount -t tmpfs none /mnt && echo mount-ok; ls /dev | wc -l",
               opts=["--rm", "--privileged"])
    assert r.returncode == 0, (r.out, r.err, dk.diag())
    assert re.search(r"CapEff:\s+0*[13]?f{9,}", r.out), r.out
    assert re.search(r"Seccomp:\s+0$", r.out, re.M), r.out
    assert "mount-ok" in r.out
    assert int(r.out.split()[-1]) > 15, r.out  # host devices are visible


def test_run_oom_killed(dk):
    if not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") and \
            not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("no swap accounting: the OOM scenario could swap instead of being killed")
    name = dk.new_name()
    r = dk.run("sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
               opts=["--memory", "32m", "--memory-swap", "32m"], name=name)
    st = dk.state(name)
    assert r.returncode == 137 and st["OOMKilled"], (r.out, r.err, st, dk.diag(name))


# ----------------------------------------------------------------------------- exec


def test_exec_plain(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    r = dk.docker("exec", name, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 4")
    assert r.returncode == 4, (r.out, r.err, dk.diag(name))
    assert r.out == "exec-out\n"
    assert "exec-err" in r.err
    r = dk.docker("exec", "-w", "/tmp", "-u", "65534", name, "sh", "-c", "pwd; id -u")
    assert r.returncode == 0, (r.out, r.err)
    assert r.out.split() == ["/tmp", "65534"]


def test_exec_stdin(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    r = dk.docker("exec", "-i", name, "sh", "-c", "tr a-z A-Z; echo done", input=b"hello\n")
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    assert r.out == "HELLO\ndone\n"


def test_exec_tty(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    argv = [dk.d.client, "exec", "-it", name, "sh", "-c", WAIT_SIZE + "; tty; exit 6"]
    status, out = run_in_pty(argv, dk.env, rows=41, cols=99)
    assert status == 6, (out, dk.diag(name))
    assert "size=41 99" in out, out
    assert re.search(r"/dev/pts/\d+", out), out


# ----------------------------------------------------------------------------- inspect / resources


def test_top(dk):
    name = dk.run_detached("sh", "-c", "sleep 1234 & wait")
    r = dk.docker("top", name)  # shim -> `<runtime> ps --format json <id>`
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    assert "sleep 1234" in r.out, r.out
    assert len(r.out.strip().splitlines()) >= 3, r.out  # header + sh + sleep


def test_stats_no_stream(dk):
    name = dk.run_detached("sh", "-c", TRAPPED, opts=["--memory", "256m"])
    r = dk.docker("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    nm, mem, pids = r.out.strip().split("|")
    assert nm == name
    assert mem.endswith("/ 256MiB") and not mem.startswith("0B"), mem
    assert int(pids) >= 1, r.out


def test_update_memory(dk):
    name = dk.run_detached("sh", "-c", TRAPPED, opts=["--memory", "128m", "--memory-swap", "256m"])
    limit = os.path.join(dk.cgroup(name, "memory"), "memory.limit_in_bytes")
    assert int(open(limit).read()) == 128 << 20
    r = dk.docker("update", "--memory", "64m", "--memory-swap", "192m", "--pids-limit", "99", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))  # shim -> `update --resources=- <id>`
    assert int(open(limit).read()) == 64 << 20
    memsw = os.path.join(dk.cgroup(name, "memory"), "memory.memsw.limit_in_bytes")
    if os.path.exists(memsw):
        assert int(open(memsw).read()) == 192 << 20
    pids_max = os.path.join(dk.cgroup(name, "pids"), "pids.max")
    if os.path.exists(pids_max):
        assert open(pids_max).read().strip() == "99"
    hc = dk.inspect(name)["HostConfig"]
    assert hc["Memory"] == 64 << 20 and hc["PidsLimit"] == 99
    r = dk.docker("exec", name, "true")
    assert r.returncode == 0, r.err


def test_pause_unpause(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    r = dk.docker("pause", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.state(name)
    assert st["Paused"] and st["Status"] == "paused", st
    freezer = os.path.join(dk.cgroup(name, "freezer"), "freezer.state")
    if os.path.exists(freezer):
        assert open(freezer).read().strip() == "FROZEN"
    r = dk.docker("unpause", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.state(name)
    assert not st["Paused"] and st["Status"] == "running", st
    r = dk.docker("exec", name, "echo", "alive")
    assert r.out == "alive\n", (r.out, r.err)


# ----------------------------------------------------------------------------- lifecycle


def test_stop_start_restart(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    dk.wait_log(name, "started")
    t0 = time.monotonic()
    r = dk.docker("stop", "-t", "20", name)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.state(name)
    assert st["Status"] == "exited" and st["ExitCode"] == 0 and not st["Running"], st
    assert elapsed < 15, f"stop took {elapsed:.1f}s: SIGTERM not delivered/handled"
    assert "got-term" in dk.docker("logs", name).out

    r = dk.docker("start", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.wait_state(name, "running")
    assert st["Pid"] > 0
    dk.wait_log(name, "started", count=2)
    started1 = st["StartedAt"]

    r = dk.docker("restart", "-t", "20", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.wait_state(name, "running")
    assert st["StartedAt"] != started1, st
    dk.wait_log(name, "started", count=3)
    assert dk.docker("logs", name).out.count("got-term") == 2
    r = dk.docker("exec", name, "echo", "alive")
    assert r.out == "alive\n", (r.out, r.err)


def test_kill_signal(dk):
    name = dk.run_detached("sh", "-c", TRAPPED)
    dk.wait_log(name, "started")
    r = dk.docker("kill", "-s", "USR1", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    dk.wait_log(name, "got-usr1")
    assert dk.state(name)["Status"] == "running"
    r = dk.docker("kill", "--signal", "SIGHUP", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.wait_state(name, "exited")
    assert st["ExitCode"] == 7, st


def test_kill_default_sigkill(dk):
    name = dk.run_detached("sh", "-c", "trap '' TERM; sleep 1000 & wait")
    r = dk.docker("kill", name)
    assert r.returncode == 0, (r.out, r.err, dk.diag(name))
    st = dk.wait_state(name, "exited")
    assert st["ExitCode"] == 137, st


def test_wait_exit_code(dk):
    name = dk.run_detached("sh", "-c", "sleep 0.5; exit 42")
    r = dk.docker("wait", name)
    assert r.returncode == 0 and r.out.strip() == "42", (r.out, r.err, dk.diag(name))


# ----------------------------------------------------------------------------- networking



def test_network_none_prestart_hook(dk):
    """--network none: a fresh netns with only lo, set up by the libnetwork-setkey prestart hook."""
    r = dk.run("sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; hostname",
               opts=["--rm", "--hostname", "hooked"])
    assert r.returncode == 0, (r.out, r.err, dk.diag())
    lines = r.out.split()
    assert lines[:-1] == ["lo"], r.out
    assert lines[-1] == "hooked"


def test_bridge_network(dk):
    """A user-defined bridge network: veth + IP + embedded DNS, set up by the prestart hook.

    The default bridge (docker0) is off (--bridge=none, --iptables=false: the host's firewall is
    untouched); a user-defined bridge works without iptables for container-to-container traffic.
    Its host bridge gets a unique name and is removed at the end of the test.
    """
    net = f"pyrdk-{os.getpid()}-{dk.runtime}"
    bridge = f"pyrdk{os.getpid() % 100000}{dk.runtime[0]}"  # <= 15 chars
    r = dk.docker("network", "create", "--driver", "bridge",
                  "-o", f"com.docker.network.bridge.name={bridge}", net)
    if r.returncode != 0:
        pytest.skip(f"cannot create a bridge network here: {r.err.strip()}")
    try:
        srv = dk.new_name("srv")
        r = dk.run("sh", "-c", "echo hi-from-srv > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
                   opts=["-d", "--network", net], name=srv)
        assert r.returncode == 0, (r.out, r.err, dk.diag(srv))
        dk.wait_state(srv, "running")
        ip = dk.inspect(srv)["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert ip, dk.inspect(srv)["NetworkSettings"]
        r = dk.run("sh", "-c", f"ip -4 addr show eth0; i=0; until wget -q -O - http://{srv}:8080/; do "
                   "i=$((i+1)); [ $i -gt 30 ] && exit 1; sleep 0.1; done",
                   opts=["--rm", "--network", net])
        assert r.returncode == 0, (r.out, r.err, dk.diag())
        assert "inet " in r.out and "hi-from-srv" in r.out, r.out
    finally:
        dk.cleanup()
        dk.names.clear()
        dk.docker("network", "rm", net)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True, timeout=10)
