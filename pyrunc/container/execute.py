"""pyrunc exec as a library call: a new process in every namespace and the cgroup of a running container, with
the same security setup as the init (capabilities, no_new_privs, seccomp, rlimits), through the same exec stub."""

import copy
import json
import os

from ..errors import ConfigError, StateError
from .lifecycle import _manager, init_namespaces, spec_state
from .procsetup import _security, _spec_version, seccomp_notify, send_pidfd
from .state import Lock, write_pid_file


def exec_process(rt, cid, proc, *, console_socket=None, console=None, pid_file=None, preserve_fds=0,
                 ignore_paused=False, pidfd_socket=None, cgroup=None, stdio=None):
    """Start proc (an OCI process dict) in container cid; returns the host pid of the new process.

    cgroup: exec --cgroup values (`PATH` or `CONTROLLER[,CONTROLLER]:PATH`, see cgroups.manager.sub_cgroup_paths)
    or a ready {controller: path} dict.  stdio: (stdin, stdout, stderr) fds for the process (a shim's pipes).  The container's lock is held only to read its state: with
    ignore_paused the new process waits in the frozen cgroup until `resume`, which must be able to take the
    lock meanwhile (runc holds no lock across an exec either)."""
    sub = None
    if cgroup:
        from ..cgroups.manager import sub_cgroup_paths

        if isinstance(cgroup, dict):  # checked as the flags would be
            cgroup = [f"{k}:{v}" if k else v for k, v in cgroup.items()]
        sub = sub_cgroup_paths(list(cgroup))
    rt.store.load(cid)  # "does not exist" without waiting on a create in progress
    with Lock(rt.store.path(cid)):
        c = rt.store.load(cid)
    status = c.status()
    if status == "stopped":
        raise StateError("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    return spawn_in(rt, c, proc, console_socket=console_socket, console=console, pid_file=pid_file,
                    preserve_fds=preserve_fds, pidfd_socket=pidfd_socket, sub_cgroups=sub, stdio=stdio)


def spawn_in(rt, c, proc, *, console_socket=None, console=None, pid_file=None, preserve_fds=0, pidfd_socket=None,
             exec_path=None, sub_cgroups=None, stdio=None):
    """The exec itself (exec, and start's startContainer hooks): no lock is needed, the namespaces are opened by
    fd and the init checked against its start time afterwards.
    exec_path: run this file instead of looking args[0] up in the container's PATH (a hook's `path`).
    If the pid file or the pidfd cannot be handed over, the new process is killed (runc's runner.terminate)."""
    from ..process.init import Ctx, Spawn
    from ..process.plan import Plan, process_plan
    from ..process.stub import sealed_stub

    cid = c.id
    plan = Plan()
    plan.process = process_plan(proc)
    plan.preserve_fds = preserve_fds
    plan.ns_new = 0
    plan.userns = False
    plan.process.exec_path = exec_path
    if plan.process.terminal and not (console_socket or console):
        raise ConfigError("cannot allocate tty if pyrunc will detach without setting console socket")
    cfg = c.doc.get("config") or {}
    from ..process import sched

    # runc's setns init applies the container's linux.personality to exec'd processes as well
    plan.process.personality = sched.personality((cfg.get("linux") or {}).get("personality"))[0]
    from ..process import mempolicy

    plan.process.mempolicy = mempolicy.plan((cfg.get("linux") or {}).get("memoryPolicy"))  # runc: likewise
    ctx = Ctx()
    ctx.id = cid
    ctx.exec_mode = True
    ctx.stdio = stdio
    ctx.notify = seccomp_notify(cfg, spec_state(c.doc, "running", c.pid, _spec_version()))
    ctx.caps, ctx.seccomp_fd, ctx.seccomp_flags = _security(plan.process, cfg, rt.log)
    mgr = _manager(c)
    if mgr is not None:
        ctx.cgroup = mgr.for_exec(sub_cgroups, c.pid)
    elif sub_cgroups:
        raise ConfigError("invalid --cgroup argument: the container has no cgroup")
    if c.doc.get("intel_rdt"):  # runc's setns process joins the container's resctrl group too
        from ..process import intelrdt

        ctx.join_rdt = lambda pid: intelrdt.join(c.doc["intel_rdt"], pid)
    # The namespaces are opened here and the init checked against its start time afterwards: a pid recycled
    # in between can never lead the new process into someone else's namespaces.
    plan.ns_join = [(t, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for t, path in init_namespaces(c)]
    if not c.alive():
        for _, fd in plan.ns_join:
            os.close(fd)
        raise StateError("container not running")
    try:
        if plan.process.terminal:
            from ..process.console import connect

            ctx.console = console if console is not None else connect(console_socket)
        ctx.stub_fd = sealed_stub()
        pid = _spawn_with_affinity(Spawn(plan, ctx), plan.process.cpu_initial)
        rt.log.debug(f"exec {cid}: joined {[t for t, _ in plan.ns_join]} of init {c.pid}, pid {pid}")
    finally:
        for fd in (ctx.stub_fd, ctx.seccomp_fd, *(fd for _, fd in plan.ns_join)):
            if fd is not None:
                os.close(fd)
        if ctx.console is not None and console is None:
            ctx.console.close()
    try:
        if pid_file:
            write_pid_file(pid_file, pid)
        if pidfd_socket:
            send_pidfd(pidfd_socket, pid)
    except BaseException:
        _terminate(pid)
        raise
    return pid


def _terminate(pid):
    """Kill and reap a process we just started (our child: we are its subreaper, so the pid is still ours)."""
    import _signal

    try:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _spawn_with_affinity(spawn, initial):
    """execCPUAffinity.initial: the process starts on these cpus, before it joins the container's cgroup.  As runc
    does (it sets the affinity of the thread that forks runc init), set ours around the fork, then restore it."""
    if initial is None:
        return spawn.run()
    from ..process.sched import set_affinity

    saved = os.sched_getaffinity(0)
    set_affinity(initial, "initial")
    try:
        return spawn.run()
    finally:
        os.sched_setaffinity(0, saved)


# runc's newProcess/initConfig: these come from the container's config unless the --process JSON sets them
_INHERITED = ("scheduler", "ioPriority", "execCPUAffinity")


def build_process(doc, o):
    """The process for `exec`: --process FILE, else the config's process with the command-line overrides (runc's
    getProcess): args, env added, cwd, user, additional gids, caps added (never to inheritable: CVE-2022-29162),
    no_new_privs, tty."""
    if o.process:
        try:
            with open(o.process, "rb") as f:
                p = json.loads(f.read())
        except (OSError, ValueError) as e:
            raise ConfigError(f"load process {o.process}: {e}") from None
        from ..spec.validate import validate_process

        validate_process(p)
        base = (doc.get("config") or {}).get("process") or {}
        for key in _INHERITED:
            if p.get(key) is None and base.get(key) is not None:
                p[key] = copy.deepcopy(base[key])
        return p
    base = (doc.get("config") or {}).get("process") or {}
    p = copy.deepcopy(base)
    args = o.args[1:]
    if not args:
        raise ConfigError("exec: args must not be empty")
    p["args"] = args
    p["env"] = list(p.get("env") or []) + list(o.env)
    if o.cwd:
        p["cwd"] = o.cwd
    p["terminal"] = bool(o.tty)
    p.pop("consoleSize", None)
    user = p.setdefault("user", {"uid": 0, "gid": 0})
    if o.user:
        u, _, g = o.user.partition(":")
        try:
            user["uid"] = int(u)
            if g:
                user["gid"] = int(g)
        except ValueError:
            raise ConfigError(f"exec: --user {o.user!r}: expected uid[:gid] as numbers") from None
    if o.additional_gids:
        try:
            user["additionalGids"] = [int(x) for gids in o.additional_gids for x in gids.split(",") if x]
        except ValueError:
            raise ConfigError(f"exec: --additional-gids {o.additional_gids!r}: expected numbers") from None
    if o.cap:
        caps = p.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted"):
            caps[key] = list(caps.get(key) or []) + [c for c in o.cap if c not in (caps.get(key) or [])]
    if o.no_new_privs:
        p["noNewPrivileges"] = True
    if o.apparmor:
        p["apparmorProfile"] = o.apparmor
    if o.process_label:
        p["selinuxLabel"] = o.process_label
    return p
