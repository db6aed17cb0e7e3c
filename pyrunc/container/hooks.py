"""OCI hooks: each runs with the container state JSON on stdin, its own args/env, and an optional timeout.

Failure semantics (runtime-spec config.md#posix-platform-hooks): a failing prestart/createRuntime/
createContainer/startContainer hook fails the operation (the caller cleans up); a failing poststart or
poststop hook is logged as a warning and the remaining hooks still run.
"""

import json
import os
import signal
import subprocess

from ..errors import PyruncError


class HookError(PyruncError):
    pass


def run_hooks(hooks, kind, state, log=None, fatal=True):
    for i, h in enumerate((hooks or {}).get(kind) or ()):
        try:
            run_one(h, state)
        except HookError as e:
            msg = f"error running {kind} hook #{i}: {e}"
            if fatal:
                raise HookError(msg) from None
            if log:
                log.warning(msg)


def run_one(h, state):
    path = h["path"]
    args = h.get("args") or [path]
    env = {}
    for kv in h.get("env") or ():
        k, _, v = kv.partition("=")
        env[k] = v
    data = json.dumps(state, separators=(",", ":")).encode()
    from ..process import waiter

    try:
        with waiter.exclusive():  # subprocess waits for its child itself
            p = subprocess.run(args, executable=path, input=data, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=h.get("timeout"), close_fds=True, cwd="/")
    except subprocess.TimeoutExpired:
        raise HookError(f"{path}: timeout after {h.get('timeout')}s") from None
    except OSError as e:
        raise HookError(f"{path}: {os.strerror(e.errno).lower()}") from None
    if p.returncode != 0:
        out = (p.stdout + p.stderr).decode(errors="replace").strip()
        raise HookError(f"{path}: exit status {p.returncode}" + (f", stdout/stderr: {out}" if out else ""))


def run_in_container(rt, c, kind):
    """startContainer hooks run in the container, before the user program, as the container's own processes
    do: each through the exec path (every namespace and the cgroup of the still-blocked init, the process's
    user, capabilities, no_new_privs and seccomp), never as host root inside the container's filesystem.
    The state is on stdin, output is kept for the error message, and a timeout kills the hook."""
    import copy
    import time

    from .. import fastjson
    from ..process import waiter
    from .execute import spawn_in
    from .lifecycle import spec_state

    data = fastjson.dumps(spec_state(c.doc, "created", c.pid)).encode()
    base = (c.doc.get("config") or {}).get("process") or {}
    for i, h in enumerate((c.doc.get("hooks") or {}).get(kind) or ()):
        proc = copy.deepcopy(base)
        proc.update(args=list(h.get("args") or [h["path"]]), env=list(h.get("env") or []), cwd="/",
                    terminal=False)
        proc.pop("consoleSize", None)
        r, w = os.pipe()
        out = os.memfd_create("pyrunc-hook-output", os.MFD_CLOEXEC)
        try:  # stdio given to the process, never dup2'd over ours: a shim has other threads using fd 2
            pid = spawn_in(rt, c, proc, exec_path=h["path"], stdio=(r, out, out))
        finally:
            os.close(r)
        try:
            os.write(w, data)
        except BrokenPipeError:
            pass
        os.close(w)
        deadline = time.monotonic() + (h.get("timeout") or 3600)
        while True:
            wpid, status = waiter.waitpid(pid, os.WNOHANG)
            if wpid:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                waiter.waitpid(pid, 0)
                os.close(out)
                raise HookError(f"error running {kind} hook #{i}: {h['path']}: timeout after {h['timeout']}s")
            time.sleep(0.005)
        os.lseek(out, 0, os.SEEK_SET)
        text = os.read(out, 65536).decode(errors="replace").strip()
        os.close(out)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            why = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
            raise HookError(f"error running {kind} hook #{i}: {h['path']}: {why}"
                            + (f", stdout/stderr: {text}" if text else ""))
