"""Driving a command on a fresh pty, shared by the ctr and docker scenarios."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time

from .conftest import CMD_TIMEOUT


def run_in_pty(argv: list[str], env: dict, rows: int, cols: int, timeout: float = CMD_TIMEOUT,
               send: bytes | None = None, send_after: bytes | None = None) -> tuple[int, str]:
    """Run argv with a fresh pty (rows x cols) as its controlling terminal; return (status, output).

    ``send`` is written to the terminal once ``send_after`` has appeared in the output
    (or after 1s if ``send_after`` is None).
    """
    pid, master = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    start = time.monotonic()
    deadline = start + timeout
    sent = send is None
    status = None
    try:
        while time.monotonic() < deadline:
            if not sent and ((send_after is None and time.monotonic() > start + 1.0)
                             or (send_after is not None and send_after in out)):
                os.write(master, send)
                sent = True
            r, _, _ = select.select([master], [], [], 0.2)
            if master in r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                out += chunk
            else:
                wpid, st = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    status = st
                    with contextlib.suppress(OSError):
                        while select.select([master], [], [], 0.2)[0]:
                            chunk = os.read(master, 4096)
                            if not chunk:
                                break
                            out += chunk
                    break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"pty command {argv} timed out; output so far: {out!r}")
    finally:
        os.close(master)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
