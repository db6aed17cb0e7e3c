"""OCI hooks: each runs with the container state JSON on stdin, its own args/env, and an optional timeout.

Failure semantics (runtime-spec config.md#posix-platform-hooks): a failing prestart/createRuntime/
createContainer/startContainer hook fails the operation (the caller cleans up); a failing poststart or
poststop hook is logged as a warning and the remaining hooks still run.

What a hook sees is runc's (libcontainer/configs Command.Run, rootfs_linux.go prepareRootfs):
  * env: the hook's `env`; without one, the environment of the process that runs it (Go's exec.Cmd with a nil
    Env), i.e. pyrunc's for host hooks and the container process's for createContainer and startContainer hooks;
  * cwd: the bundle for host hooks (runc create/run chdir to the bundle), the container's rootfs for
    createContainer hooks (runc chdirs there before running them: the NVIDIA toolkit bind-mounts into `./lib`),
    the process's cwd for startContainer hooks (they run in the container, as its process);
  * errors: `error running <kind> hook #N: error running hook: exit status 1, stdout: ..., stderr: ...` (runc
    1.1.5 says `error running hook #N: error running hook: ...`; 1.2 adds the kind, as we do);
  * timeout: none unless the hook sets one; then `hook ran past specified timeout of 1.0s`.
The state is written to the hook's stdin without ever blocking: a hook that does not read a large state (more
than a pipe holds) still ends at its timeout, or when it exits.
"""

import os
import signal
import subprocess  # here, not in run_one: createContainer hooks run in the init, where nothing may be imported
import time

from .. import fastjson
from ..errors import PyruncError
from ..process import waiter  # the library's waits; a shim replaces them (process/waiter.py)

# In-container hooks (startContainer) run through exec: without their own timeout they are still killed after
# this long, so a hung hook cannot keep `start` waiting forever.
IN_CONTAINER_TIMEOUT = 3600


class HookError(PyruncError):
    pass


def run_hooks(hooks, kind, state, log=None, fatal=True, cwd=None, env=None):
    """Run the hooks of `kind` in order.  cwd: their working directory (default: the bundle named by the state);
    env: the environment of a hook without `env` (default: ours)."""
    if cwd is None:
        cwd = state.get("bundle") or "/"
        if not os.path.isdir(cwd):
            cwd = "/"  # a bundle removed before `delete` (poststop): still run the hook
    for i, h in enumerate((hooks or {}).get(kind) or ()):
        try:
            run_one(h, state, cwd=cwd, env=env)
        except HookError as e:
            msg = f"error running {kind} hook #{i}: {e}"
            if fatal:
                raise HookError(msg) from None
            if log:
                log.warning(msg)


def _env(h, default):
    if h.get("env") is None:
        return dict(os.environ) if default is None else default
    env = {}
    for kv in h["env"]:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def run_one(h, state, cwd="/", env=None):
    path = h["path"]
    args = h.get("args") or [path]
    data = fastjson.dumps(state).encode()
    timeout = h.get("timeout")
    try:
        # communicate() writes stdin from its select loop: never blocked by a hook that does not read it;
        # exclusive(): subprocess waits for its child itself, so a shim's reaper must hold off meanwhile
        with waiter.exclusive():
            p = subprocess.run(args, executable=path, input=data, env=_env(h, env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, close_fds=True, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise HookError(f"hook ran past specified timeout of {float(timeout):.1f}s") from None
    except OSError as e:
        raise HookError(f"fork/exec {path}: {os.strerror(e.errno).lower()}") from None
    if p.returncode != 0:
        raise HookError(failure(p.returncode, p.stdout, p.stderr))


def failure(code, out, err):
    """runc's text for a hook that ran and failed (Go's ExitError: `exit status N` / `signal: killed`)."""
    why = f"exit status {code}" if code > 0 else f"signal: {_signame(-code)}"
    return (f"error running hook: {why}, stdout: {out.decode(errors='replace')}, "
            f"stderr: {err.decode(errors='replace')}")


def _signame(n):
    try:
        return signal.strsignal(n).lower()
    except ValueError:
        return str(n)


def wait_hook(pid, w, data, timeout):
    """Write data into w (non-blocking; w is closed here) while waiting for pid; returns its wait status, or None
    after killing it when timeout (seconds) passed."""
    import select

    os.set_blocking(w, False)
    deadline = time.monotonic() + timeout
    poll = select.poll()
    poll.register(w, select.POLLOUT)
    try:
        while True:
            wpid, status = waiter.waitpid(pid, os.WNOHANG)
            if wpid:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                waiter.waitpid(pid, 0)
                return None
            if data and w >= 0:
                if poll.poll(min(left, 0.05) * 1000):
                    try:
                        data = data[os.write(w, data):]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        data = b""
                if not data:
                    os.close(w)
                    w = -1
            else:
                if w >= 0:
                    os.close(w)
                    w = -1
                time.sleep(min(left, 0.005))
    finally:
        if w >= 0:
            os.close(w)


def run_in_container(rt, c, kind):
    """startContainer hooks run in the container, before the user program, as the container's own processes
    do: each through the exec path (every namespace and the cgroup of the still-blocked init, the process's
    user, capabilities, no_new_privs and seccomp), never as host root inside the container's filesystem.
    The state is on stdin, output is kept for the error message, and a timeout kills the hook."""
    import copy

    from .execute import spawn_in
    from .lifecycle import spec_state

    data = fastjson.dumps(spec_state(c.doc, "created", c.pid)).encode()
    base = (c.doc.get("config") or {}).get("process") or {}
    for i, h in enumerate((c.doc.get("hooks") or {}).get(kind) or ()):
        proc = copy.deepcopy(base)
        proc.update(args=list(h.get("args") or [h["path"]]), terminal=False)
        if h.get("env") is not None:  # else the container process's own, as runc's init runs them
            proc["env"] = list(h["env"])
        proc.pop("consoleSize", None)
        r, w = os.pipe2(os.O_CLOEXEC)
        out = os.memfd_create("pyrunc-hook-stdout", os.MFD_CLOEXEC)
        err = os.memfd_create("pyrunc-hook-stderr", os.MFD_CLOEXEC)
        try:  # stdio given to the process, never dup2'd over ours: a shim has other threads using fd 2
            pid = spawn_in(rt, c, proc, exec_path=h["path"], stdio=(r, out, err))
        except BaseException:
            os.close(w)
            os.close(out)
            os.close(err)
            raise
        finally:
            os.close(r)
        try:
            timeout = h.get("timeout") or IN_CONTAINER_TIMEOUT
            status = wait_hook(pid, w, data, timeout)
            if status is None:
                raise HookError(f"error running {kind} hook #{i}: hook ran past specified timeout of "
                                f"{float(timeout):.1f}s")
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise HookError(f"error running {kind} hook #{i}: "
                                + failure(code, _read_all(out), _read_all(err)))
        finally:
            os.close(out)
            os.close(err)


def _read_all(fd, limit=65536):
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, limit)
