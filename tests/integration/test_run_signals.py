"""A foreground `run` forwards what runc forwards, real-time signals included (SIGRTMIN+3 is systemd's stop
signal), and exits with the container's status.  The same script runs under pyrunc and under runc."""

import os
import select
import shutil
import signal
import subprocess
import time

import pytest

RUNC = shutil.which("runc")
RTMIN3 = signal.SIGRTMIN + 3

# the container's init traps the signals and reports each on stdout (its rootfs is read-only)
SCRIPT = (f"trap 'echo got-rtmin3' {int(RTMIN3)}; trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; "
          "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done")


def _readline(stream, timeout=10):
    """One line of the container's stdout, or '' after timeout (never blocks on a pipe an orphan holds open)."""
    fd, buf, deadline = stream.fileno(), b"", time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode()


@pytest.mark.parametrize("runtime", ["pyrunc", "runc"])
def test_run_forwards_realtime_and_user_signals(pyrunc, bundle, tmp_path, runtime):
    b = bundle(["sh", "-c", SCRIPT])
    if runtime == "pyrunc":
        cmd = pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("sig"))
    else:
        if not RUNC:
            pytest.skip("runc is not installed: nothing to compare with")
        cmd = [RUNC, "--root", str(tmp_path / "runc-state"), "run", "--bundle", str(b), "runc-sig"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert _readline(proc.stdout) == "ready\n"
        got = []
        for sig, line in ((RTMIN3, "got-rtmin3\n"), (signal.SIGUSR1, "got-usr1\n"), (signal.SIGHUP, "got-hup\n")):
            proc.send_signal(sig)
            got.append(_readline(proc.stdout))
            assert proc.poll() is None, f"{runtime} died of signal {sig}"
        assert got == ["got-rtmin3\n", "got-usr1\n", "got-hup\n"]
        proc.send_signal(signal.SIGTERM)
        assert _readline(proc.stdout) == "got-term\n"
        assert proc.wait(timeout=20) == 7  # the container's own exit status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        runc_root = tmp_path / "runc-state"
        if runtime == "runc" and runc_root.is_dir():
            for cid in os.listdir(runc_root):
                subprocess.run([RUNC, "--root", str(runc_root), "delete", "--force", cid], capture_output=True)
