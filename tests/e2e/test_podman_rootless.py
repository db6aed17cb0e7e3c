"""Rootless podman with `--runtime` pointing at pyrunc, run by a dedicated unprivileged user (the fixture of
tests/integration/test_rootless.py: made with subuid/subgid ranges, removed afterwards with everything it ran),
the same scenarios against runc: run and its exit code, exec and its exit code, logs, stop, rm.  Storage is vfs
under the user's temp home, networking `--network none`, the image a busybox rootfs imported from a tarball.

Rootless podman runs the OCI runtime inside its own user namespace, as root there: pyrunc sees a config without a
user namespace of its own and binds devices instead of making them (runc's RunningInUserNS)."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import require
from tests.integration.test_rootless import user  # noqa: F401: the module-scoped unprivileged user fixture

RUNTIMES = ["pyrunc", "runc"]


@pytest.fixture(scope="module")
def podman(user):  # noqa: F811
    require(shutil.which("podman"), "needs podman (apt-get install podman)")
    require(shutil.which("newuidmap"), "needs newuidmap (apt-get install uidmap)")
    from pyrunc.demo import make_bundle

    make_bundle(os.path.join(user.tmp, "img"), ["true"])
    tar = os.path.join(user.tmp, "bb.tar")
    subprocess.run(["tar", "-C", os.path.join(user.tmp, "img", "rootfs"), "-cf", tar, "."], check=True, timeout=60)
    os.chmod(tar, 0o644)

    def run(runtime, *args, timeout=90):
        path = user.cmd[0] if runtime == "pyrunc" else shutil.which("runc")
        return user.sh("podman", "--storage-driver", "vfs", "--root", os.path.join(user.home, "storage"),
                       "--runroot", os.path.join(user.xdg, "storage"), "--runtime", path,
                       "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args, timeout=timeout)

    p = run("pyrunc", "import", tar, "localhost/pyrunc-bb")
    assert p.returncode == 0, p.stderr
    yield run
    for rt in RUNTIMES:
        run(rt, "rm", "--all", "--force", "--time", "0")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_exit_code_and_output(podman, runtime):
    p = podman(runtime, "run", "--rm", "--network", "none", "localhost/pyrunc-bb",
               "sh", "-c", "echo hello; cat /proc/self/uid_map | wc -l; exit 3")
    assert p.returncode == 3, p.stderr
    assert p.stdout.split("\n")[0] == "hello", p.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_exec_logs_stop_rm(podman, runtime):
    name = f"pyrunc-podman-{runtime}"
    p = podman(runtime, "run", "-d", "--name", name, "--network", "none", "localhost/pyrunc-bb",
               "sh", "-c", "echo started; trap 'exit 0' TERM; while :; do sleep 0.1; done")
    assert p.returncode == 0, p.stderr
    try:
        p = podman(runtime, "exec", name, "sh", "-c", "echo in-exec; exit 4")
        assert (p.returncode, p.stdout) == (4, "in-exec\n"), p.stderr
        p = podman(runtime, "logs", name)
        assert p.returncode == 0 and p.stdout == "started\n", (p.stdout, p.stderr)
        p = podman(runtime, "stop", "--time", "10", name)
        assert p.returncode == 0, p.stderr
        p = podman(runtime, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert p.stdout.strip() == "exited 0", (p.stdout, p.stderr)
    finally:
        p = podman(runtime, "rm", "--force", name)
    assert p.returncode == 0, p.stderr
    p = podman(runtime, "ps", "--all", "--format", "{{.Names}}")
    assert name not in p.stdout.split()
