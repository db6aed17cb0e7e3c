"""Through containerd's CRI plugin: a pod sandbox and a container in it, with logs, exec, stop and removal, once per
runtime handler — `runc` (runtime_type io.containerd.runc.v2 + runc, the reference) and `pyrunc`
(runtime_type io.containerd.pyrunc.v1, our shim).

A private containerd (CRI enabled, everything under one temp dir, cgroup parent /pyrunc-cri-<pid>, the pyrunc
handler written by `pyrunc-config containerd --shim`'s edit function) is driven with the gRPC client in
tests/e2e/cri_client.py. No CNI here: the pod uses the host network (NamespaceMode NODE),
which CRI sets up without CNI. The sandbox ("pause") image is built locally from busybox with `sleep` as its
command, and imported with the busybox image into namespace k8s.io. containerd 1.6's CRI ignores `runtime_path`
for the shim lookup, so the daemon gets the venv's bin directory (where `containerd-shim-pyrunc-v1` is installed)
first on its PATH.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

from pyrunc.glue import containerd as glue_containerd
from tests import protooracle as oracle
from tests.e2e import cri_client as cri
from tests.e2e.conftest import (IMAGE, Containerd, _busybox_path, _mounts_under, _pids_with_cmdline, _skip_reason,
                                build_oci_archive)

HERE = os.path.dirname(os.path.abspath(__file__))
PAUSE_IMAGE = "localhost/pause:e2e"
NS = "k8s.io"  # CRI's namespace, inside our private containerd only
CGROUP_PARENT = "/pyrunc-cri-%d" % os.getpid()
SHIM = "containerd-shim-pyrunc-v1"
# where containerd-shim-pyrunc-v1 is installed; PYRUNC_SHIM_DIR overrides (e.g. another checkout's venv)
VENV_BIN = os.environ.get("PYRUNC_SHIM_DIR") or os.path.dirname(sys.executable)
T = 60


# --- the CRI subset against its .proto (no containerd needed) --------------------------------------------------------

@pytest.fixture(scope="module")
def cri_descs(tmp_path_factory):
    return oracle.compile_protos(os.path.join(HERE, "cri_proto"), tmp_path_factory.mktemp("cri"))


def test_cri_messages_match_the_proto(cri_descs):
    problems = oracle.check_against_descriptors(cri.REGISTRY, cri_descs, ("runtime.v1.",))
    assert not problems, "\n".join(problems)
    for method, (req, resp) in cri.METHODS.items():
        assert req.NAME in cri_descs and resp.NAME in cri_descs, method


@pytest.mark.parametrize("name", sorted(cri.REGISTRY))
def test_cri_roundtrip_through_protobuf(cri_descs, name):
    cls = cri.REGISTRY[name]
    ours, theirs = oracle.roundtrip(cls, cri_descs[name], oracle.sample(cls))
    if not oracle.has_map(cls):
        assert ours == theirs


# --- images -------------------------------------------------------------------------------------------------------

def _derive_image(src_archive, dest_archive, name, cmd):
    """Copy an OCI archive made by build_oci_archive, changing the config's Cmd and the image name."""
    with tarfile.open(src_archive) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    index = json.loads(files["index.json"])
    blob = lambda d: "blobs/sha256/" + d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(files[blob(index["manifests"][0]["digest"])])
    config = json.loads(files[blob(manifest["config"]["digest"])])
    config["config"]["Cmd"] = list(cmd)

    def put(obj):
        data = json.dumps(obj, sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        files[blob(digest)] = data
        return digest, len(data)
    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    desc = index["manifests"][0]
    desc["digest"], desc["size"] = put(manifest)
    desc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":")[-1]}
    files["index.json"] = json.dumps(index).encode()
    with tarfile.open(dest_archive, "w") as out:
        for path in ("oci-layout", "index.json") + tuple(sorted(p for p in files if p.startswith("blobs/"))):
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode = len(files[path]), 0o644
            out.addfile(ti, io.BytesIO(files[path]))


# --- the daemon -----------------------------------------------------------------------------------------------------

def _cri_config(d, tmp):
    """The e2e fixture's config.toml with the CRI plugin enabled and configured."""
    runc = shutil.which("runc", path=d.env["PATH"]) or "runc"
    with open(d.config) as f:
        base = f.read()
    enabled = base.replace('  "io.containerd.grpc.v1.cri",\n', "", 1)
    assert enabled != base, "the e2e fixture no longer disables CRI the way this test expects"
    return enabled + f"""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true     # no CAP_SYS_RESOURCE on this VM: CRI would ask for -998 for the sandbox
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{tmp}/cni/bin"
    conf_dir = "{tmp}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
"""


class CriDaemon:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="pyrunc-cri-", dir="/tmp")
        self.d = Containerd(self.tmp, namespace=NS)
        self.d.env["PATH"] = VENV_BIN + ":" + self.d.env["PATH"]
        # the pyrunc handler as `pyrunc-config containerd --shim` writes it
        config = glue_containerd.edit(_cri_config(self.d, self.tmp), "pyrunc", shim=True)
        with open(self.d.config, "w") as f:
            f.write(config)
        self.logs = os.path.join(self.tmp, "pod-logs")
        self.shim_sockets = set()
        self.pre_existing = [p for p in ("/run/containerd", "/run/containerd/s", "/run/containerd/runc",
                                         "/run/containerd/runc/" + NS) if os.path.exists(p)]
        self.rs = None

    def start(self):
        self.d.start()
        bb = _busybox_path()
        busybox = os.path.join(self.tmp, "busybox-oci.tar")
        pause = os.path.join(self.tmp, "pause-oci.tar")
        build_oci_archive(bb, busybox)
        _derive_image(busybox, pause, PAUSE_IMAGE, ["sleep", "2147483647"])
        for archive in (busybox, pause):
            self.d.ctr("images", "import", archive, timeout=T, check=True)
        self.rs = cri.RuntimeService(self.d.sock)
        v = self.rs.Version(cri.VersionRequest(version="v1"), timeout=T)
        assert v.runtime_name == "containerd" and v.runtime_api_version == "v1", v

    def _hashed_sockets(self):
        """Sockets of shims that died before the test learnt their address (e.g. a failed RunPodSandbox): the
        runc-v2 naming, sha256(<containerd socket>/<ns>/<sandbox id>), for every id in our daemon's log. They
        hash our private socket path, so they cannot be anybody else's."""
        try:
            with open(self.d.log, errors="replace") as f:
                ids = set(re.findall(r"\bid=([0-9a-f]{64})\b", f.read()))
        except OSError:
            return set()
        return {"/run/containerd/s/" + hashlib.sha256(os.path.join(self.d.sock, NS, i).encode()).hexdigest()
                for i in ids}

    def teardown(self):
        if self.rs is not None:
            with contextlib.suppress(Exception):
                for c in self.rs.ListContainers(cri.ListContainersRequest(), timeout=10).containers:
                    self.rs.StopContainer(cri.StopContainerRequest(container_id=c.id, timeout=0), timeout=30)
                    self.rs.RemoveContainer(cri.RemoveContainerRequest(container_id=c.id), timeout=30)
            with contextlib.suppress(Exception):
                for p in self.rs.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items:
                    self.rs.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
                    self.rs.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
            self.rs.close()
        if self.d.proc is not None and self.d.proc.poll() is None:
            self.d.cleanup_all()
        self.d.stop()
        for pid in _pids_with_cmdline(self.d.sock):  # shims of this daemon, whatever state they are in
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _remove_cgroup_tree(CGROUP_PARENT)
        for mp in sorted(_mounts_under(self.tmp), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True, timeout=10)
        for path in self.shim_sockets | self._hashed_sockets():
            with contextlib.suppress(OSError):
                os.unlink(path)
        for p in ("/run/containerd/runc/" + NS, "/run/containerd/runc", "/run/containerd/s", "/run/containerd"):
            if p not in self.pre_existing:
                with contextlib.suppress(OSError):
                    os.rmdir(p)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _cgroup_dirs(parent):
    """The directories of a cgroup path in every mounted hierarchy (v1 controllers and the unified one)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        roots = ["/sys/fs/cgroup"]
    else:
        roots = [p for p in (os.path.join("/sys/fs/cgroup", n) for n in os.listdir("/sys/fs/cgroup"))
                 if os.path.isdir(p) and not os.path.islink(p)]
    return [r + parent for r in roots if os.path.isdir(r + parent)]


def _remove_cgroup_tree(parent):
    for base in _cgroup_dirs(parent):
        for dirpath, _dirnames, _files in sorted(os.walk(base), key=lambda t: len(t[0]), reverse=True):
            with contextlib.suppress(OSError, ValueError):
                for pid in open(os.path.join(dirpath, "cgroup.procs")).read().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


@pytest.fixture(scope="module")
def cri_daemon():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("grpc", reason="grpcio is in the test extra")
    daemon = CriDaemon()
    # the shims' per-namespace state roots (runc-v2's and ours) are made under /run/containerd on first use
    # (and /run/containerd itself, which the daemon's teardown cannot remove while they are in it)
    roots = [r for r in ("/run/containerd/pyrunc/k8s.io", "/run/containerd/pyrunc", "/run/containerd/runc/k8s.io",
                         "/run/containerd/runc", "/run/containerd/s", "/run/containerd") if not os.path.exists(r)]
    try:
        try:
            daemon.start()
        except Exception as e:
            pytest.fail("CRI containerd did not come up: %s\n%s" % (e, daemon.d.log_tail(60)))
        yield daemon
    finally:
        daemon.teardown()
        for r in roots:  # deepest first; only what this test made, and only when empty
            try:
                os.rmdir(r)
            except (FileNotFoundError, OSError):
                pass


# --- the scenario ---------------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^(\S+) (stdout|stderr) ([FP]) (.*)$")
SCRIPT = 'trap "exit 3" TERM; echo hello-cri; echo err-cri >&2; while true; do sleep 0.1; done'


def _wait_for(what, cond, timeout=T):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def _log_lines(path):
    try:
        with open(path) as f:
            return [LOG_LINE.match(line.rstrip("\n")).groups() for line in f]
    except FileNotFoundError:
        return []


@pytest.fixture(params=["runc", "pyrunc"])
def handler(request):
    if request.param == "pyrunc" and not os.path.exists(os.path.join(VENV_BIN, SHIM)):
        pytest.skip("%s is not installed in %s (the shim is built on branch shim-core)" % (SHIM, VENV_BIN))
    return request.param


def test_pod_with_logs_exec_stop_and_removal(cri_daemon, handler):
    try:
        _pod_scenario(cri_daemon, handler)
    except BaseException:
        print("containerd log (tail):\n" + cri_daemon.d.log_tail(80))
        raise


def _pod_scenario(cri_daemon, handler):
    rs, d = cri_daemon.rs, cri_daemon.d
    logdir = os.path.join(cri_daemon.logs, handler)
    os.makedirs(logdir)
    sandbox_config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="pod-" + handler, uid="uid-" + handler, namespace="e2e", attempt=0),
        log_directory=logdir, labels={"test": "cri"},
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=CGROUP_PARENT,
            security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NODE, pid=cri.CONTAINER, ipc=cri.POD))))
    pod = rs.RunPodSandbox(cri.RunPodSandboxRequest(config=sandbox_config, runtime_handler=handler),
                           timeout=T).pod_sandbox_id
    with open(os.path.join(d.state, "io.containerd.runtime.v2.task", NS, pod, "address")) as f:
        address = f.read().strip()  # written by the shim's `start` (SHIM.md §1.3)
    assert address.startswith("unix://") and os.path.exists(address[len("unix://"):]), address
    cri_daemon.shim_sockets.add(address[len("unix://"):])
    st = rs.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=T).status
    assert (st.state, st.runtime_handler, st.metadata.name) == (cri.SANDBOX_READY, handler, "pod-" + handler)

    cid = rs.CreateContainer(cri.CreateContainerRequest(
        pod_sandbox_id=pod, sandbox_config=sandbox_config,
        config=cri.ContainerConfig(metadata=cri.ContainerMetadata(name="c1"), image=cri.ImageSpec(image=IMAGE),
                                   command=["sh", "-c", SCRIPT], log_path="c1.log",
                                   envs=[cri.KeyValue(key="WHO", value="cri")])), timeout=T).container_id
    assert rs.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=T).status.state == \
        cri.CONTAINER_CREATED
    rs.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=T)
    status = rs.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=T).status
    assert status.state == cri.CONTAINER_RUNNING and status.log_path == os.path.join(logdir, "c1.log")

    # the container log, in CRI format: "<RFC3339Nano time> <stream> F <line>"
    lines = _wait_for("both log lines", lambda: (lambda ls: ls if len(ls) >= 2 else None)(
        _log_lines(status.log_path)))
    assert sorted((s, tag, text) for _t, s, tag, text in lines) == [("stderr", "F", "err-cri"),
                                                                     ("stdout", "F", "hello-cri")]

    r = rs.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["echo", "hi"], timeout=30), timeout=T)
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n", b"", 0)
    r = rs.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $WHO; echo e >&2; exit 7"],
                                        timeout=30), timeout=T)
    assert (r.stdout, r.stderr, r.exit_code) == (b"cri\n", b"e\n", 7)

    rs.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=30), timeout=T)
    status = rs.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=T).status
    assert (status.state, status.exit_code, status.reason) == (cri.CONTAINER_EXITED, 3, "Error")
    assert status.finished_at >= status.started_at > 0
    rs.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=T)
    assert cid not in [c.id for c in rs.ListContainers(cri.ListContainersRequest(), timeout=T).containers]

    rs.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    st = rs.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=T).status
    assert st.state == cri.SANDBOX_NOTREADY
    rs.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    assert pod not in [p.id for p in rs.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=T).items]

    # nothing left behind: tasks, containers, shim processes and socket, mounts, leaf cgroups
    assert d.ctr("task", "ls", "-q", check=True).stdout_s.split() == []
    assert d.ctr("container", "ls", "-q", check=True).stdout_s.split() == []
    _wait_for("the shim to exit", lambda: not _pids_with_cmdline(d.sock))
    assert not os.path.exists(address[len("unix://"):]), "shim socket left behind"
    assert [m for m in _mounts_under(cri_daemon.tmp) if pod in m or cid in m] == []
    for base in _cgroup_dirs(CGROUP_PARENT):
        assert [x for x in os.listdir(base) if x in (pod, cid)] == [], base
