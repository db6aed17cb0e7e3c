"""A private dockerd (Debian docker.io 20.10) for the docker end-to-end tests.

Everything lives under one temp dir ``/tmp/pyrunc-dk-XXXX``:

* ``dockerd --data-root TMP/data --exec-root TMP/exec --pidfile TMP/docker.pid
  -H unix://TMP/docker.sock --config-file TMP/daemon.json`` (the config file
  only moves the trust key off /etc/docker/key.json: ``deprecated-key-path``
  has no command-line flag in 20.10);
* no ``--containerd``: dockerd 20.10 then supervises its own containerd with
  root TMP/data/containerd/daemon, state TMP/exec/containerd/daemon and socket
  TMP/exec/containerd/containerd.sock (containerd namespace
  ``pyrunc-docker-<pid>``);
* ``--iptables=false --ip-masq=false --ip-forward=false --bridge=none
  --userland-proxy=false``: no host network changes; containers use
  ``--network none`` (which still gets a network namespace and therefore
  libnetwork's ``libnetwork-setkey`` OCI prestart hook);
* ``--storage-driver vfs``; images come from ``docker load`` of a
  docker-archive tarball built in Python from /bin/busybox (no registry);
* ``--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent /pyrunc-docker-<pid>``
  so teardown removes exactly the cgroups of these containers;
* runtimes: ``--add-runtime pyrunc=$PYRUNC_BIN --add-runtime runcref=<runc>``
  and ``--default-runtime pyrunc`` (20.10 runs ``<default runtime> --version``
  for ``docker info``; every test names its runtime with ``--runtime``).
  dockerd hands the binary to containerd-shim-runc-v2 as
  ``runc.v1.Options{BinaryName, Root: TMP/exec/runtime-<name>}``.

The 1.6 shim hard-codes its socket dir /run/containerd/s/<sha256>; the entries
of the containers we created are removed in teardown (ids come from --cidfile),
as are /run/docker/plugins (created by dockerd's plugin discovery) and the
parent dirs, if this session created them and they are empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from ..conftest import require
from .conftest import (CMD_TIMEOUT, IMAGE, _SYS_PATH, _busybox_path, _goarch, _mounts_under,  # noqa: F401
                       _pids_with_cmdline, _pyrunc_binary, _tar_add, build_rootfs_layer)

RUNTIMES = ["runcref", "pyrunc"]
TAG = f"pyrunc-docker-{os.getpid()}"  # containerd namespace and cgroup parent
_PATH = _SYS_PATH + (":" + os.environ["PATH"] if os.environ.get("PATH") else "")


# --------------------------------------------------------------------------- image


def build_docker_archive(bb: str, dest: str, name: str = IMAGE) -> None:
    """Write a docker-archive tarball (``docker save`` format) of a one-layer busybox image."""
    layer = build_rootfs_layer(bb)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": _goarch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=" + _SYS_PATH], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pyrunc tests/e2e"}],
    }
    config_b = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_b).hexdigest() + ".json"
    layer_dir = diff_id.split(":", 1)[1]
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": [layer_dir + "/layer.tar"]}]
    repo, tag = name.rsplit(":", 1)
    with tarfile.open(dest, "w") as tf:
        _tar_add(tf, layer_dir, kind="dir")
        _tar_add(tf, layer_dir + "/VERSION", kind="file", mode=0o644, data=b"1.0")
        _tar_add(tf, layer_dir + "/json", kind="file", mode=0o644,
                 data=json.dumps({"id": layer_dir, "created": "1970-01-01T00:00:00Z"}).encode())
        _tar_add(tf, layer_dir + "/layer.tar", kind="file", mode=0o644, data=layer)
        _tar_add(tf, config_name, kind="file", mode=0o644, data=config_b)
        _tar_add(tf, "manifest.json", kind="file", mode=0o644, data=json.dumps(manifest).encode())
        _tar_add(tf, "repositories", kind="file", mode=0o644,
                 data=json.dumps({repo: {tag: layer_dir}}).encode())


# --------------------------------------------------------------------------- helpers


def _which(name: str) -> str | None:
    return shutil.which(name, path=_PATH)


def docker_client() -> str | None:
    """The docker.io 20.10 client if present (matches the daemon), else any `docker`."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return _which("docker")


def docker_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "docker e2e tests need root"
    for b in ("dockerd", "containerd", "containerd-shim-runc-v2"):
        if _which(b) is None:
            return f"{b} is not installed (apt-get install docker.io)"
    if docker_client() is None:
        return "the docker client is not installed (apt-get install docker.io)"
    if _busybox_path() is None:
        return "busybox (static) is not installed"
    if not os.path.isdir("/sys/fs/cgroup"):
        return "no /sys/fs/cgroup"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie we cannot reap is as good as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cgroup_dirs(tag: str) -> list[str]:
    res = []
    with contextlib.suppress(OSError):
        for ctl in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", ctl, tag)
            if os.path.isdir(p):
                res.append(p)
    return res


# --------------------------------------------------------------------------- daemon


class Dockerd:
    def __init__(self, tmp: str, pyrunc: str | None, runc: str | None):
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        self.exec_root = os.path.join(tmp, "exec")
        self.sock = os.path.join(tmp, "docker.sock")
        self.pidfile = os.path.join(tmp, "docker.pid")
        self.log = os.path.join(tmp, "dockerd.log")
        self.config = os.path.join(tmp, "daemon.json")
        self.cli_config = os.path.join(tmp, "cli")
        self.cids = os.path.join(tmp, "cids")
        self.ns = TAG
        self.cgroup_parent = "/" + TAG
        self.containerd_sock = os.path.join(self.exec_root, "containerd", "containerd.sock")
        self.client = docker_client()
        self.runtimes = {}  # name -> the path dockerd is given
        if pyrunc:
            self.runtimes["pyrunc"] = pyrunc
        if runc:
            self.runtimes["runcref"] = runc
        self.proc: subprocess.Popen | None = None
        for d in (self.data, self.exec_root, self.cli_config, self.cids):
            os.makedirs(d, mode=0o711, exist_ok=True)
        argv_log = os.environ.get("PYRUNC_E2E_ARGV_LOG")
        if argv_log:  # debugging aid: wrap each runtime to append "<name> <argv...>" to the log
            wrap_dir = os.path.join(tmp, "rt")
            os.makedirs(wrap_dir, exist_ok=True)
            for name, path in list(self.runtimes.items()):
                w = os.path.join(wrap_dir, name)
                with open(w, "w") as f:
                    f.write(f'#!/bin/sh\necho "{name} $*" >> "{os.path.abspath(argv_log)}"\n'
                            f'exec "{path}" "$@"\n')
                os.chmod(w, 0o755)
                self.runtimes[name] = w
        with open(self.config, "w") as f:
            json.dump({"deprecated-key-path": os.path.join(tmp, "key.json")}, f)
        base = {k: v for k, v in os.environ.items()
                if k != "NOTIFY_SOCKET" and not k.startswith("DOCKER_")}
        base["PATH"] = _PATH
        self.daemon_env = dict(base)
        self.env = dict(base, DOCKER_HOST="unix://" + self.sock, DOCKER_CONFIG=self.cli_config)
        if self.client != "/usr/bin/docker":
            self.env["DOCKER_API_VERSION"] = "1.41"  # a newer CLI talking to 20.10

    def argv(self) -> list[str]:
        a = ["dockerd", "--config-file", self.config,
             "--data-root", self.data, "--exec-root", self.exec_root, "--pidfile", self.pidfile,
             "-H", "unix://" + self.sock,
             "--containerd-namespace", self.ns, "--containerd-plugins-namespace", self.ns + "-plugins",
             "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
             "--userland-proxy=false", "--storage-driver", "vfs",
             "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent,
             "--debug"]
        for name, path in self.runtimes.items():
            a += ["--add-runtime", f"{name}={path}"]
        if "pyrunc" in self.runtimes:
            a += ["--default-runtime", "pyrunc"]
        return a

    def start(self, timeout: float = 40) -> None:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     env=self.daemon_env, cwd=self.tmp, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if os.path.exists(self.sock):
                if self.docker("version", timeout=10).returncode == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not come up in {timeout}s:\n{self.log_tail()}")

    def containerd_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(self.exec_root, "containerd", "containerd.pid")) as f:
                return int(f.read().strip())
        return None

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        ctd = self.containerd_pid()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        # dockerd stops its managed containerd; make sure (by pid) it is gone
        if ctd and _pid_alive(ctd):
            with contextlib.suppress(OSError, ValueError):
                with open(f"/proc/{ctd}/cmdline", "rb") as f:
                    if b"containerd" not in f.read():
                        return
            with contextlib.suppress(ProcessLookupError):
                os.kill(ctd, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(ctd) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(ctd, signal.SIGKILL)

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "".join(self.log_text().splitlines(keepends=True)[-n:])

    def docker(self, *args: str, timeout: float = CMD_TIMEOUT, input: bytes | str | None = None,
               check: bool = False) -> subprocess.CompletedProcess:
        argv = [self.client, *args]
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, env=self.env)
        r.out = r.stdout.decode(errors="replace")  # type: ignore[attr-defined]
        r.err = r.stderr.decode(errors="replace")  # type: ignore[attr-defined]
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} -> {r.returncode}\nstdout: {r.out}\nstderr: {r.err}")
        return r

    def bundle_dir(self, cid: str) -> str:
        return os.path.join(self.exec_root, "containerd", "daemon", "io.containerd.runtime.v2.task",
                            self.ns, cid)

    def cids_seen(self) -> list[str]:
        res = []
        for n in os.listdir(self.cids):
            with contextlib.suppress(OSError):
                with open(os.path.join(self.cids, n)) as f:
                    c = f.read().strip()
                if c:
                    res.append(c)
        return res

    def cleanup_all(self) -> None:
        with contextlib.suppress(Exception):
            ids = self.docker("ps", "-aq", "--no-trunc", timeout=15).out.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, timeout=60)
        with contextlib.suppress(Exception):
            self.docker("network", "prune", "-f", timeout=30)
        with contextlib.suppress(Exception):
            imgs = self.docker("images", "-aq", "--no-trunc", timeout=15).out.split()
            if imgs:
                self.docker("rmi", "-f", *sorted(set(imgs)), timeout=60)


@dataclass
class DockerSession:
    daemon: Dockerd
    tmp: str
    pre_existing: list[str] = field(default_factory=list)
    run_dirs_before: dict[str, set[str]] = field(default_factory=dict)


_WATCHED_DIRS = ("/run/containerd", "/run/containerd/s", "/run/containerd/runc",
                 "/run/containerd/fifo", "/run/docker", "/run/docker/plugins", "/etc/docker")


@pytest.fixture(scope="session")
def docker_session():
    reason = docker_skip_reason()
    require(reason is None, reason)
    pyrunc = _pyrunc_binary()
    runc = _which("runc")
    tmp = tempfile.mkdtemp(prefix="pyrunc-dk-", dir="/tmp")
    pre = [d for d in _WATCHED_DIRS if os.path.exists(d)]
    before = {}
    for d in ("/run/containerd/s", "/etc/docker"):
        with contextlib.suppress(OSError):
            before[d] = set(os.listdir(d))
    d = Dockerd(tmp, pyrunc, runc)
    sess = DockerSession(daemon=d, tmp=tmp, pre_existing=pre, run_dirs_before=before)
    try:
        try:
            d.start()
        except Exception as e:
            require(False, f"dockerd cannot start here: {e}")
        archive = os.path.join(tmp, "busybox-docker.tar")
        build_docker_archive(_busybox_path(), archive)
        r = d.docker("load", "-i", archive, timeout=60)
        if r.returncode != 0:
            require(False, f"docker load of the local busybox image failed: {r.err.strip()}")
        imgs = d.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).out.split()
        if IMAGE not in imgs:
            require(False, f"docker load did not produce {IMAGE}: {imgs}")
        yield sess
    finally:
        docker_teardown(sess)


def docker_teardown(sess: DockerSession) -> None:
    d = sess.daemon
    if d.proc is not None and d.proc.poll() is None:
        d.cleanup_all()
    ctd_sock = d.containerd_sock
    d.stop()
    # shims (and whatever they still hold) started on behalf of our containerd
    for pid in _pids_with_cmdline(ctd_sock):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # processes left in our cgroups (a runtime under test may leak them)
    for base in _cgroup_dirs(TAG):
        for dirpath, _, files in os.walk(base):
            if "freezer.state" in files:
                with contextlib.suppress(OSError):
                    with open(os.path.join(dirpath, "freezer.state"), "w") as f:
                        f.write("THAWED")
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError, ValueError):
                    for pid in open(os.path.join(dirpath, "cgroup.procs")).read().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.3)
    for mp in sorted(_mounts_under(sess.tmp), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True, timeout=10)
    # 1.6 shim sockets: /run/containerd/s/sha256(<containerd address>/<ns>/<id>)
    for cid in d.cids_seen():
        for addr in (ctd_sock, "unix://" + ctd_sock):
            h = hashlib.sha256(os.path.join(addr, d.ns, cid).encode()).hexdigest()
            with contextlib.suppress(OSError):
                os.unlink("/run/containerd/s/" + h)
    for dd in ("/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd/runc",
               "/run/containerd/fifo", "/run/containerd"):
        if dd not in sess.pre_existing:
            with contextlib.suppress(OSError):
                os.rmdir(dd)  # only if empty
    if "/etc/docker" in sess.run_dirs_before:  # in case the trust key still went there
        for n in set(os.listdir("/etc/docker")) - sess.run_dirs_before["/etc/docker"]:
            if n == "key.json":
                with contextlib.suppress(OSError):
                    os.unlink("/etc/docker/key.json")
    # host bridges of test networks (test_bridge_network names them pyrdk<pid%100000><r>)
    with contextlib.suppress(OSError):
        for link in os.listdir("/sys/class/net"):
            if link.startswith(f"pyrdk{os.getpid() % 100000}"):
                subprocess.run(["ip", "link", "delete", link], capture_output=True, timeout=10)
    for base in _cgroup_dirs(TAG):
        for dirpath, _, _ in sorted(os.walk(base), key=lambda t: len(t[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    shutil.rmtree(sess.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- per test

_COUNTER = itertools.count(1)


class DockerHelper:
    """Per-test helper: runs containers with one runtime and removes them afterwards."""

    def __init__(self, sess: DockerSession, runtime: str, test_name: str):
        self.sess = sess
        self.d = sess.daemon
        self.runtime = runtime
        self.test_name = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[-30:]
        self.names: list[str] = []

    @property
    def env(self) -> dict:
        return self.d.env

    def docker(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.d.docker(*args, **kw)

    def new_name(self, tag: str = "") -> str:
        n = f"{self.runtime}-{self.test_name}{'-' + tag if tag else ''}-{next(_COUNTER)}"
        self.names.append(n)
        return n

    def run_opts(self, name: str | None = None, network: bool = True) -> list[str]:
        """Options for `docker run`: runtime, network, name, cidfile (to find shim sockets later)."""
        name = name or self.new_name()
        return ["--runtime", self.runtime, *(["--network", "none"] if network else []),
                "--name", name, "--cidfile", os.path.join(self.d.cids, name)]

    def run_argv(self, *cmd: str, opts: list[str] = (), name: str | None = None) -> list[str]:
        has_net = any(o == "--network" or o.startswith("--network=") or o == "--net" for o in opts)
        return [self.d.client, "run", *self.run_opts(name, network=not has_net), *opts, IMAGE, *cmd]

    def run(self, *cmd: str, opts: list[str] = (), name: str | None = None, **kw):
        return self.docker(*self.run_argv(*cmd, opts=opts, name=name)[1:], **kw)

    def run_detached(self, *cmd: str, opts: list[str] = (), tag: str = "") -> str:
        name = self.new_name(tag)
        r = self.run(*cmd, opts=["-d", *opts], name=name)
        assert r.returncode == 0, f"docker run -d failed: {r.err}\n{self.diag(name)}"
        self.wait_state(name, "running")
        return name

    def inspect(self, name: str) -> dict:
        r = self.docker("inspect", name, check=True)
        return json.loads(r.out)[0]

    def state(self, name: str) -> dict:
        return self.inspect(name)["State"]

    def wait_state(self, name: str, status: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.state(name)
            if st["Status"] == status:
                return st
            time.sleep(0.1)
        raise AssertionError(f"{name} did not reach {status}: {st}\n{self.diag(name)}")

    def wait_log(self, name: str, needle: str, timeout: float = 20, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            r = self.docker("logs", name)
            out = r.out + r.err
            if out.count(needle) >= count:
                return out
            time.sleep(0.1)
        raise AssertionError(f"{name}: {needle!r} x{count} not in logs: {out!r}\n{self.diag(name)}")

    def cgroup(self, name: str, ctl: str) -> str:
        cid = self.inspect(name)["Id"]
        return os.path.join("/sys/fs/cgroup", ctl, TAG, cid)

    def diag(self, name: str | None = None) -> str:
        """Runtime log (shim's <bundle>/log.json) and the daemon log tail, for assertion messages."""
        parts = []
        cid = None
        if name:
            with contextlib.suppress(Exception):
                cid = self.inspect(name)["Id"]
        if cid:
            lj = os.path.join(self.d.bundle_dir(cid), "log.json")
            with contextlib.suppress(OSError):
                with open(lj, errors="replace") as f:
                    parts.append(f"--- {lj}\n" + f.read()[-4000:])
        parts.append("--- dockerd.log (tail)\n" + self.d.log_tail(25))
        return "\n".join(parts)

    def cleanup(self) -> None:
        if self.names:
            with contextlib.suppress(Exception):
                self.docker("rm", "-f", "-v", *self.names, timeout=60)


@pytest.fixture(params=RUNTIMES)
def docker_runtime(request, docker_session) -> str:
    name = request.param
    require(name in docker_session.daemon.runtimes,
            "pyrunc binary not found: set PYRUNC_BIN or put `pyrunc` next to python" if name == "pyrunc"
            else "runc is not installed")
    return name


@pytest.fixture
def dk(docker_session, docker_runtime, request):
    h = DockerHelper(docker_session, docker_runtime, request.node.originalname or request.node.name)
    try:
        yield h
    finally:
        h.cleanup()
