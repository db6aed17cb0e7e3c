"""The installed shim as a /bin/sh + Python script (pyrunc/shim/launcher.py): the shell answers the `delete`
containerd runs after a clean teardown by itself; everything else runs the Python part, unchanged."""

import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from pyrunc.launch import FLAGS
from pyrunc.shim import api, launcher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BODY = 'import sys\nsys.stdout.write("python " + " ".join(sys.argv[1:]))\n'  # stands for the real script

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="no /bin/sh")


def _launcher(tmp_path, body=BODY):
    path = tmp_path / "containerd-shim-pyrunc-v1"
    path.write_text(launcher.script(sys.executable, FLAGS.decode(), body))
    path.chmod(0o755)
    return str(path)


def _run(exe, args, cwd=None):
    return subprocess.run([exe, *args], capture_output=True, timeout=30, cwd=cwd)


def _containerd_delete_args(bundle):
    return ["-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary",
            "/usr/bin/containerd", "-id", "c1", "-bundle", bundle, "delete"]


def test_clean_delete_is_answered_by_the_shell(tmp_path):
    exe = _launcher(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    before = time.time()
    r = _run(exe, _containerd_delete_args(str(bundle)))
    assert r.returncode == 0 and r.stderr == b""
    assert not r.stdout.startswith(b"python")
    resp = api.DeleteResponse.decode(r.stdout)
    assert (resp.pid, resp.exit_status) == (0, 137)
    # now = btime + uptime: whole seconds of boot time, so within a second or two of the clock
    assert abs(resp.exited_at.seconds + resp.exited_at.nanos / 1e9 - before) < 3
    assert 0 <= resp.exited_at.nanos < 10**9


@pytest.mark.parametrize("args", [
    ["-bundle=BUNDLE", "delete"],
    ["--bundle", "BUNDLE", "-debug", "delete"],
    ["-id=c1", "-debug=false", "-info", "delete"],  # no -bundle: the working directory
])
def test_clean_delete_flag_spellings(tmp_path, args):
    exe = _launcher(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    r = _run(exe, [a.replace("BUNDLE", str(bundle)) for a in args], cwd=str(bundle))
    assert r.returncode == 0 and r.stderr == b""
    assert api.DeleteResponse.decode(r.stdout).exit_status == 137


@pytest.mark.parametrize("args", [
    ["-namespace", "default", "-id", "c1", "start"],
    ["-v"],
    ["-v", "delete"],  # Python prints the version
    ["-namespace", "delete"],  # `delete` is the namespace: no action (the daemon)
    ["--", "delete"],
    ["-x", "delete"],  # unknown flag: Python's error
    ["-id"],
    ["-id", "c1", "frobnicate"],
    [],
])
def test_anything_else_runs_python_with_the_same_arguments(tmp_path, args):
    exe = _launcher(tmp_path)
    r = _run(exe, args, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout == ("python " + " ".join(args)).encode()


def test_a_delete_after_a_crash_runs_python(tmp_path):
    """The daemon's Create wrote pyrunc-shim.json and nothing removed it: the Python part cleans up."""
    exe = _launcher(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "pyrunc-shim.json").write_text('{"root": "/nonexistent"}')
    args = _containerd_delete_args(str(bundle))
    r = _run(exe, args)
    assert r.stdout == ("python " + " ".join(args)).encode()


def test_the_launcher_is_python_that_compiles_without_a_warning(tmp_path):
    """A SyntaxWarning (an invalid escape in the shell part) would land on `start`'s stderr, which containerd
    reads as part of the address."""
    exe = _launcher(tmp_path)
    code = "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')"
    r = subprocess.run([sys.executable, "-W", "error", "-c", code, exe], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_the_real_script_runs_under_the_launcher(tmp_path):
    with open(os.path.join(REPO, "bin", "pyrunc")) as f:
        body = f.read().split("\n", 1)[1]
    exe = _launcher(tmp_path, body)
    r = _run(exe, ["-v"])
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.startswith(b"containerd-shim-pyrunc-v1:\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    r = _run(exe, ["-id", "c1", "-bundle", str(bundle), "frobnicate"])
    assert r.returncode == 2 and b"unknown action" in r.stderr


@pytest.mark.parametrize("first", ["#!" + sys.executable, "#!" + sys.executable + " " + FLAGS.decode()])
def test_install_rewrites_what_pip_wrote_once(tmp_path, first):
    path = tmp_path / "containerd-shim-pyrunc-v1"
    path.write_text(first + "\n" + BODY)
    path.chmod(0o751)
    assert launcher.install(str(path))
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n" + launcher.MARK) and text.endswith("\n" + BODY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert not launcher.install(str(path))  # already the launcher
    assert path.read_text() == text
    assert sorted(os.listdir(tmp_path)) == ["containerd-shim-pyrunc-v1"]  # no temporary file left
    r = _run(str(path), ["-id", "c1", "start"])
    assert r.stdout == b"python -id c1 start"


def test_install_leaves_the_pyrunc_command_alone(tmp_path):
    """The shim reached through a symlink to the pyrunc script: its realpath is `pyrunc`, whose `delete` verb is
    not the shim's; the shell part also answers only under a containerd-shim-* name."""
    real = tmp_path / "pyrunc"
    real.write_text("#!" + sys.executable + "\n" + BODY)
    (tmp_path / "containerd-shim-pyrunc-v1").symlink_to(real)
    assert not launcher.install(str(tmp_path / "containerd-shim-pyrunc-v1"))
    assert real.read_text() == "#!" + sys.executable + "\n" + BODY
    real.write_text(launcher.script(sys.executable, FLAGS.decode(), BODY))
    real.chmod(0o755)
    r = _run(str(real), ["delete", "c1"], cwd=str(tmp_path))
    assert r.stdout == b"python delete c1"


@pytest.mark.parametrize("first", ["#!/usr/bin/python3.9", "#!/bin/sh", "#!" + sys.executable + " -E"])
def test_install_leaves_other_scripts_alone(tmp_path, first):
    path = tmp_path / "containerd-shim-x-v1"
    path.write_text(first + "\n" + BODY)
    assert not launcher.install(str(path))
    assert path.read_text() == first + "\n" + BODY


def test_install_leaves_another_owners_script_alone(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    path = tmp_path / "containerd-shim-x-v1"
    path.write_text("#!" + sys.executable + "\n" + BODY)
    os.chown(path, 65534, 65534)
    assert not launcher.install(str(path))
    assert path.read_text().startswith("#!" + sys.executable + "\n")


def test_start_installs_the_launcher_when_run_as_the_program(tmp_path, monkeypatch):
    """main(), run as the program for `start`, turns its own script into the launcher (first run by the owner)."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    path = tmp_path / "containerd-shim-pyrunc-v1"
    with open(os.path.join(REPO, "bin", "pyrunc")) as f:
        path.write_text("#!" + sys.executable + "\n" + f.read().split("\n", 1)[1])
    path.chmod(0o755)
    # an unknown flag fails before start does anything: install is tried only after a start that succeeded
    r = subprocess.run([str(path), "-nope", "start"], capture_output=True, timeout=30)
    assert r.returncode == 2
    assert path.read_text().startswith("#!" + sys.executable)
    from pyrunc.shim import main as shim

    monkeypatch.setattr(sys, "argv", [str(path), "start"])
    assert shim._after_start(0) is None
    assert path.read_text().startswith("#!/bin/sh\n")


def test_start_checks_an_installed_launcher_without_loading_launcher_py(tmp_path):
    """Every start (its answer already out, but containerd waits for it to exit) looks at two bytes only."""
    exe = _launcher(tmp_path)
    code = ("import sys; from pyrunc.shim import main; sys.argv[0] = sys.argv[1]; main._after_start(0); "
            "print('pyrunc.shim.launcher' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, exe], capture_output=True, timeout=30, check=True)
    assert r.stdout == b"False\n"
