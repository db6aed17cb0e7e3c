"""OCI hooks: each runs with the container state JSON on stdin, its own args/env, and an optional timeout.

Failure semantics (runtime-spec config.md#posix-platform-hooks): a failing prestart/createRuntime/
createContainer/startContainer hook fails the operation (the caller cleans up); a failing poststart or
poststop hook is logged as a warning and the remaining hooks still run.
"""

import json
import os
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
    try:
        p = subprocess.run(args, executable=path, input=data, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=h.get("timeout"), close_fds=True, cwd="/")
    except subprocess.TimeoutExpired:
        raise HookError(f"{path}: timeout after {h.get('timeout')}s") from None
    except OSError as e:
        raise HookError(f"{path}: {os.strerror(e.errno).lower()}") from None
    if p.returncode != 0:
        out = (p.stdout + p.stderr).decode(errors="replace").strip()
        raise HookError(f"{path}: exit status {p.returncode}" + (f", stdout/stderr: {out}" if out else ""))
