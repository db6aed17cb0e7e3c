"""pyrunc-config: snippets, in-place edits that keep everything else, backups, idempotency, a real containerd."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib

import pytest

from pyrunc.glue import GlueError, containerd, docker, files, kubernetes
from tests.conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = "/usr/local/bin/pyrunc"
CRI = "io.containerd.grpc.v1.cri"

CONFIG_TOML = '''\
# /etc/containerd/config.toml, as an operator wrote it
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
oom_score = -999
disabled_plugins = ["io.containerd.internal.v1.restart"]

[grpc]
  address = "/run/containerd/containerd.sock"
  max_recv_message_size = 16777216

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"  # pinned
    enable_unprivileged_ports = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
          runtime_type = "io.containerd.kata.v2"
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
      endpoint = ["https://mirror.example.com", "https://registry-1.docker.io"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"

[metrics]
  address = "127.0.0.1:1338"
'''

DAEMON_JSON = '''{
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "storage-driver": "overlay2",
    "registry-mirrors": ["https://mirror.example.com"],
    "default-runtime": "runc",
    "runtimes": {
        "nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}
    },
    "live-restore": true,
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
    "mtu": 1450
}
'''


def _runtime(doc, name="pyrunc"):
    return doc["plugins"][CRI]["containerd"]["runtimes"][name]


def _without_runtime(doc, name="pyrunc"):
    doc = json.loads(json.dumps(doc))
    del doc["plugins"][CRI]["containerd"]["runtimes"][name]
    return doc


def _backups(path):
    d, base = os.path.split(str(path))
    return sorted(f for f in os.listdir(d) if f.startswith(base + ".bak."))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyrunc.glue.main", *args], capture_output=True, text=True,
                          cwd=REPO)


# -- containerd ------------------------------------------------------------------------------------------------

def test_containerd_snippet_parses_and_names_the_shim():
    doc = tomllib.loads("version = 2\n" + containerd.snippet("pyrunc", BIN))
    assert _runtime(doc) == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": BIN}}


def test_containerd_write_keeps_everything_else(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG_TOML)
    os.chmod(cfg, 0o600)
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0, p.stderr
    new = cfg.read_text()
    assert new.startswith(CONFIG_TOML)  # not one byte of the operator's file changed, comments included
    before, after = tomllib.loads(CONFIG_TOML), tomllib.loads(new)
    assert _runtime(after) == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": sys.executable}}
    assert _without_runtime(after) == before
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    (bak,) = _backups(cfg)
    assert (tmp_path / bak).read_text() == CONFIG_TOML
    assert "backup:" in p.stdout

    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")  # idempotent
    assert p.returncode == 0 and "nothing changed" in p.stdout
    assert cfg.read_text() == new and len(_backups(cfg)) == 1


def test_containerd_rewrite_replaces_only_its_block():
    first = containerd.edit(CONFIG_TOML, "pyrunc", "/opt/a/pyrunc")
    user_tail = '\n[plugins."io.containerd.grpc.v1.cri".x509_key_pair_streaming]\n  tls_cert_file = ""\n'
    second = containerd.edit(first + user_tail, "pyrunc", "/opt/b/pyrunc")
    assert second.count("# BEGIN pyrunc-config runtime pyrunc") == 1
    assert "/opt/a/pyrunc" not in second and second.endswith(user_tail)
    assert _runtime(tomllib.loads(second))["options"]["BinaryName"] == "/opt/b/pyrunc"
    assert containerd.edit(second, "pyrunc", "/opt/b/pyrunc") == second
    both = containerd.edit(second, "pyrunc-debug", "/opt/b/pyrunc")  # a second runtime name: its own block
    assert set(tomllib.loads(both)["plugins"][CRI]["containerd"]["runtimes"]) == {"runc", "kata", "pyrunc",
                                                                                  "pyrunc-debug"}
    third = containerd.edit(both, "pyrunc", "/opt/c/pyrunc")  # "pyrunc" must not touch the pyrunc-debug block
    runtimes = tomllib.loads(third)["plugins"][CRI]["containerd"]["runtimes"]
    assert runtimes["pyrunc"]["options"]["BinaryName"] == "/opt/c/pyrunc"
    assert runtimes["pyrunc-debug"]["options"]["BinaryName"] == "/opt/b/pyrunc"


def test_containerd_new_and_empty_files(tmp_path):
    cfg = tmp_path / "etc" / "containerd" / "config.toml"
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0, p.stderr
    doc = tomllib.loads(cfg.read_text())
    assert doc["version"] == 2 and _runtime(doc)["options"]["BinaryName"] == sys.executable
    assert _backups(cfg) == [] and "new file" in p.stdout
    for text in ("", "# nothing yet\n"):
        assert tomllib.loads(containerd.edit(text, "pyrunc", BIN))["version"] == 2


def test_containerd_quoted_runtime_name():
    doc = tomllib.loads(containerd.edit(CONFIG_TOML, "pyrunc.v1", BIN))
    assert _runtime(doc, "pyrunc.v1")["options"]["BinaryName"] == BIN


@pytest.mark.parametrize("text, words", [
    ("version = 3\n", "version 3"),
    ('[plugins.cri]\n  sandbox_image = "x"\n', "version 1"),
    ("version = 2\n[plugins\n", "parse"),
    (CONFIG_TOML + '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]\n'
                   '          runtime_type = "io.containerd.runsc.v1"\n', "already defined"),
    # an inline runtimes table cannot take another [table]: the verification refuses instead of writing
    ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
     '  runtimes = { runc = { runtime_type = "io.containerd.runc.v2" } }\n', "not written"),
])
def test_containerd_refusals_leave_the_file_alone(tmp_path, text, words):
    with pytest.raises(GlueError, match=words):
        containerd.edit(text, "pyrunc", BIN)
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 1 and p.stderr.startswith("pyrunc-config: ") and words in p.stderr
    assert cfg.read_text() == text and _backups(cfg) == []


@pytest.mark.parametrize("name", ["", "a b", "-x", 'q"', "x\ny"])
def test_containerd_bad_names(name):
    with pytest.raises(GlueError, match="runtime name"):
        containerd.edit(CONFIG_TOML, name, BIN)


def test_containerd_same_entry_by_hand_is_left_alone():
    text = CONFIG_TOML + containerd.snippet("pyrunc", BIN)
    assert containerd.edit(text, "pyrunc", BIN) == text


def test_containerd_default_config_as_base():
    require(shutil.which("containerd"), "containerd not installed")
    base = subprocess.run(["containerd", "config", "default"], capture_output=True, text=True, check=True).stdout
    new = containerd.edit(base, "pyrunc", BIN)
    assert new.startswith(base)
    assert _without_runtime(tomllib.loads(new)) == tomllib.loads(base)


SHIM_ENTRY = {"runtime_type": "io.containerd.pyrunc.v1"}


def test_containerd_shim_snippet_names_the_runtime_type_only():
    doc = tomllib.loads("version = 2\n" + containerd.snippet("pyrunc", shim=True))
    assert _runtime(doc) == SHIM_ENTRY  # no BinaryName, no runtime_path: containerd finds the shim by name
    p = _cli("containerd", "--shim")
    assert p.returncode == 0, p.stderr
    assert _runtime(tomllib.loads("version = 2\n" + p.stdout)) == SHIM_ENTRY
    assert "containerd-shim-pyrunc-v1" in p.stdout  # the comment says which binary containerd looks up


def test_containerd_shim_write_keeps_everything_else_and_switches_modes(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG_TOML)
    p = _cli("containerd", "--config", str(cfg), "--shim", "--write")
    assert p.returncode == 0, p.stderr
    assert "io.containerd.pyrunc.v1" in p.stdout
    after = tomllib.loads(cfg.read_text())
    assert _runtime(after) == SHIM_ENTRY
    assert _without_runtime(after) == tomllib.loads(CONFIG_TOML)
    assert cfg.read_text().startswith(CONFIG_TOML)
    p = _cli("containerd", "--config", str(cfg), "--shim", "--write")  # idempotent
    assert p.returncode == 0 and "nothing changed" in p.stdout
    # the same handler switched back to runc-v2 + BinaryName, and again to the shim: one block, replaced in place
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0, p.stderr
    assert _runtime(tomllib.loads(cfg.read_text()))["options"] == {"BinaryName": sys.executable}
    p = _cli("containerd", "--config", str(cfg), "--shim", "--write")
    assert p.returncode == 0, p.stderr
    text = cfg.read_text()
    assert _runtime(tomllib.loads(text)) == SHIM_ENTRY and text.count("# BEGIN pyrunc-config runtime pyrunc") == 1
    # both side by side under two handler names
    both = containerd.edit(text, "pyrunc-v2", sys.executable)
    runtimes = tomllib.loads(both)["plugins"][CRI]["containerd"]["runtimes"]
    assert runtimes["pyrunc"] == SHIM_ENTRY and runtimes["pyrunc-v2"]["runtime_type"] == "io.containerd.runc.v2"


def test_containerd_shim_refusals(tmp_path):
    p = _cli("containerd", "--shim", "--binary", sys.executable)
    assert p.returncode != 0 and "--binary" in p.stderr and "--shim" in p.stderr
    by_hand = CONFIG_TOML + containerd.snippet("pyrunc", BIN)
    with pytest.raises(GlueError, match="already defined outside a pyrunc-config block"):
        containerd.edit(by_hand, "pyrunc", shim=True)
    assert containerd.edit(CONFIG_TOML + containerd.snippet("pyrunc", shim=True), "pyrunc", shim=True).endswith(
        'runtime_type = "io.containerd.pyrunc.v1"\n')


def test_containerd_shim_lookup_note(tmp_path, monkeypatch):
    """CRI in containerd 1.6 ignores runtime_path: the shim must be on containerd's PATH, so say where it is."""
    shim = tmp_path / "venv" / "bin" / "containerd-shim-pyrunc-v1"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\n")
    shim.chmod(0o755)
    note = files.shim_note(str(shim))
    assert "ln -s %s /usr/local/bin/containerd-shim-pyrunc-v1" % shim in note
    assert files.shim_note("/usr/local/bin/containerd-shim-pyrunc-v1") is None
    assert "not installed" in files.shim_note(None)


# -- docker ----------------------------------------------------------------------------------------------------

def test_docker_write_keeps_everything_else(tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text(DAEMON_JSON)
    p = _cli("docker", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0, p.stderr
    before, after = json.loads(DAEMON_JSON), json.loads(cfg.read_text())
    assert after["runtimes"].pop("pyrunc") == {"path": sys.executable}
    assert after == before and list(after) == list(before)
    assert cfg.read_text().startswith('{\n    "log-driver"')  # the file's 4-space indentation kept
    (bak,) = _backups(cfg)
    assert (tmp_path / bak).read_text() == DAEMON_JSON
    written = cfg.read_text()
    p = _cli("docker", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0 and "nothing changed" in p.stdout
    assert cfg.read_text() == written and len(_backups(cfg)) == 1


def test_docker_update_keeps_runtime_args():
    text = '{"runtimes": {"pyrunc": {"path": "/old/pyrunc", "runtimeArgs": ["--debug"]}}}'
    doc = json.loads(docker.edit(text, "pyrunc", BIN))
    assert doc == {"runtimes": {"pyrunc": {"path": BIN, "runtimeArgs": ["--debug"]}}}


def test_docker_new_file_and_snippet(tmp_path):
    assert json.loads(docker.edit(None, "pyrunc", BIN)) == {"runtimes": {"pyrunc": {"path": BIN}}}
    assert json.loads(docker.snippet("pyrunc", BIN)) == {"runtimes": {"pyrunc": {"path": BIN}}}
    cfg = tmp_path / "docker" / "daemon.json"
    assert _cli("docker", "--config", str(cfg), "--binary", sys.executable, "--write").returncode == 0
    assert json.loads(cfg.read_text()) == {"runtimes": {"pyrunc": {"path": sys.executable}}}


@pytest.mark.parametrize("text, name, words", [
    ("[]", "pyrunc", "JSON object"),
    ('{"runtimes": []}', "pyrunc", "runtimes must be"),
    ("{", "pyrunc", "parse"),
    ("{}", "runc", "reserved"),
    ('{"runtimes": {"pyrunc": {"runtimeType": "io.containerd.runc.v2"}}}', "pyrunc", "runtimeType"),
])
def test_docker_refusals(text, name, words):
    with pytest.raises(GlueError, match=words):
        docker.edit(text, name, BIN)


# -- kubernetes, binary lookup, files --------------------------------------------------------------------------

def test_kubernetes_manifest():
    p = _cli("kubernetes", "--name", "fast", "--handler", "pyrunc")
    assert p.returncode == 0
    assert p.stdout == ("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: fast\nhandler: pyrunc\n")
    with pytest.raises(GlueError, match="DNS label"):
        kubernetes.manifest("pyrunc", "Py_Runc")
    p = _cli("kubernetes", "--help")
    assert "--shim" in p.stdout  # the handler is the name given to `pyrunc-config containerd [--shim] --name`


def test_print_mode_writes_nothing(tmp_path):
    cfg = tmp_path / "config.toml"
    p = _cli("containerd", "--config", str(cfg), "--binary", BIN)
    assert p.returncode == 0 and not cfg.exists()
    assert _runtime(tomllib.loads("version = 2\n" + p.stdout))["options"]["BinaryName"] == BIN


def test_default_binary(tmp_path, monkeypatch):
    fake = tmp_path / "pyrunc"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert files.default_binary() == str(fake)
    assert files.resolve_binary(None, must_exist=True) == str(fake)
    monkeypatch.chdir(tmp_path)
    assert files.resolve_binary("pyrunc", must_exist=True) == str(fake)  # made absolute
    with pytest.raises(GlueError, match="not an executable"):
        files.resolve_binary(str(tmp_path / "nope"), must_exist=True)


def test_backup_names_never_collide(tmp_path):
    f = tmp_path / "x"
    f.write_text("1")
    names = {files.backup(str(f), now=0) for _ in range(3)}
    assert len(names) == 3 and all(open(n).read() == "1" for n in names)


# -- a real containerd reads the result ------------------------------------------------------------------------

def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _unmount_under(d):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(d + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], check=False)


def test_real_containerd_accepts_the_edited_config():
    require(shutil.which("containerd") and shutil.which("ctr"), "containerd/ctr not installed")
    require(os.geteuid() == 0, "needs root to run containerd")
    d = tempfile.mkdtemp(prefix="pyrunc-ctrd-")
    proc = None
    try:
        sock = os.path.join(d, "c.sock")
        base = subprocess.run(["containerd", "config", "default"], capture_output=True, text=True,
                              check=True).stdout
        # a private daemon: its own root, state and socket; the CRI stream port left to the kernel so that a
        # running system containerd does not collide with it.  Nothing is disabled.
        base = (base.replace('root = "/var/lib/containerd"', f'root = "{d}/root"', 1)
                    .replace('state = "/run/containerd"', f'state = "{d}/state"', 1)
                    .replace('address = "/run/containerd/containerd.sock"', f'address = "{sock}"', 1)
                    .replace('stream_server_port = "10010"', 'stream_server_port = "0"', 1))
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(base)
        p = _cli("containerd", "--config", cfg, "--binary", sys.executable, "--write")
        assert p.returncode == 0, p.stderr
        p = _cli("containerd", "--config", cfg, "--shim", "--name", "pyrunc-shim", "--write")
        assert p.returncode == 0, p.stderr

        dump = subprocess.run(["containerd", "--config", cfg, "config", "dump"], capture_output=True, text=True)
        assert dump.returncode == 0, dump.stderr
        assert _runtime(tomllib.loads(dump.stdout))["options"]["BinaryName"] == sys.executable
        assert _runtime(tomllib.loads(dump.stdout), "pyrunc-shim")["runtime_type"] == "io.containerd.pyrunc.v1"

        log = open(os.path.join(d, "containerd.log"), "w")
        proc = subprocess.Popen(["containerd", "--config", cfg], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        logtext = open(os.path.join(d, "containerd.log")).read()
        assert proc.poll() is None, f"containerd exited: {logtext[-2000:]}"
        assert os.path.exists(sock), f"no socket after 30s: {logtext[-2000:]}"
        ls = subprocess.run(["ctr", "-a", sock, "plugins", "ls"], capture_output=True, text=True, timeout=30)
        assert ls.returncode == 0, ls.stderr
        cri = [line.split() for line in ls.stdout.splitlines() if line.split()[:2] == ["io.containerd.grpc.v1", "cri"]]
        assert cri and cri[0][-1] == "ok", ls.stdout
        logtext = open(os.path.join(d, "containerd.log")).read()
        assert "pyrunc:{Type:io.containerd.runc.v2" in logtext  # the CRI plugin's "Start cri plugin with config"
        assert f"BinaryName:{sys.executable}" in logtext
        assert "pyrunc-shim:{Type:io.containerd.pyrunc.v1" in logtext
    finally:
        if proc is not None:
            _stop(proc)
        _unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)


def test_containerd_systemd_cgroup_variant(tmp_path):
    """--systemd-cgroup: the shim passes --systemd-cgroup to pyrunc (runc options SystemdCgroup = true), for
    kubelets with cgroupDriver: systemd; running again without the flag switches the entry back."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG_TOML)
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--systemd-cgroup", "--write")
    assert p.returncode == 0, p.stderr
    assert _runtime(tomllib.loads(cfg.read_text()))["options"] == {"BinaryName": sys.executable,
                                                                   "SystemdCgroup": True}
    assert _without_runtime(tomllib.loads(cfg.read_text())) == tomllib.loads(CONFIG_TOML)
    p = _cli("containerd", "--config", str(cfg), "--binary", sys.executable, "--write")
    assert p.returncode == 0, p.stderr
    assert _runtime(tomllib.loads(cfg.read_text()))["options"] == {"BinaryName": sys.executable}
    printed = _cli("containerd", "--binary", sys.executable, "--systemd-cgroup").stdout
    assert _runtime(tomllib.loads("version = 2\n" + printed))["options"]["SystemdCgroup"] is True
