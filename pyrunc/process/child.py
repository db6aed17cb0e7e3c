"""The stages that run in the forked children (see the ladder in init.py; "sync N" marks both ends).

Code here runs after fork in a process that must never return into the caller's stack: run_stage() turns any
exception into an ERROR message for the parent and _exit()s.  Stage B is the container's init until it
fexecve()s the sealed pyrunc-init stub.  Both stages are non-dumpable from their first instruction, so no
container process can open /proc/<pid>/exe (the host's python3) or /proc/<pid>/fd of ours without
CAP_SYS_PTRACE in the host user namespace.
"""

import errno
import sys

# Everything the stages use is imported here, before fork: after pivot_root (or setns into the container's mount
# namespace) the importer would search the container's filesystem and run whatever it found there; from that
# point forbid_imports() leaves the importer nothing but the modules compiled into the interpreter.  What only
# some configs need (console.py for a terminal, sock.py to pass fds) is imported by the parent before the fork
# (init.load_stage_modules) and taken from sys.modules here (loaded()).
import _frozen_importlib
from posix import _exit  # osx leaves out posix's private names
import _signal as signal  # the C module: `signal` imports enum
from _stat import S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK  # compiled in; `stat` is a file to load

from .. import fastjson
from .. import osx as os
from ..cgroups.manager import own_join_fds
from ..errors import PyruncError, SysError
from ..linux import (AF_INET, CLONE_NEWCGROUP, CLONE_NEWPID, CLONE_NEWUSER, IFF_UP, NAMESPACES, O_PATH,
                     PR_SET_DUMPABLE, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM)
from ..security.keyring import join_session_keyring
from . import init as proto
from . import rootfs, sched
from .idmap import source_binds
from .init_rootfs import enter_rootfs, finish_rootfs, prepare_rootfs
from .stub import INIT_ENV, init_args

F_SETFD, F_SETPIPE_SZ = 2, 1031
_BUILTIN_IMPORTERS = (_frozen_importlib.BuiltinImporter, _frozen_importlib.FrozenImporter)
MSG_CMSG_CLOEXEC = 0x40000000
_FORBIDDEN = []  # the import state forbid_imports() replaced, kept alive (see there)


def loaded(name):
    """pyrunc.process.<name>, which the parent imported before the fork because this config needs it
    (init.load_stage_modules; plan.build for mempolicy and timens): a lookup in sys.modules, never an import
    (KeyError if the parent did not)."""
    return sys.modules["pyrunc.process." + name]


def run_stage(fn, plan, ctx, sock, lx):
    # No collection in a forked stage: it would write the header of every object it walks, a copy-on-write
    # fault per page shared with the parent; the stage is short and ends in execve or _exit.  The CLI turned the
    # collector off already (pyrunc.main) and the shim, which keeps it on, has imported gc: the module is taken
    # from sys.modules, not imported here (create's import budget, tests/unit/test_imports.py); a caller that
    # never imported gc keeps its collector on here too.
    gc = sys.modules.get("gc")
    if gc is not None:
        gc.disable()
    code = 1
    try:
        fn(plan, ctx, sock, lx)
        code = 0
    except BaseException as e:  # noqa: BLE001: everything must reach the parent as one message
        msg = str(e) if isinstance(e, (PyruncError, OSError)) else f"{type(e).__name__}: {e}"
        try:
            sock.send(proto.ERROR + msg.encode(errors="replace")[:60000])
        except OSError:
            pass
    finally:
        _exit(code)


def forbid_imports():
    """From here on this process sees the container's filesystem (after pivot_root, or after setns into its mount
    namespace): an import would search sys.path there and run the image's code with our privileges.  Everything
    the stages use is imported before fork; this makes a forgotten lazy import fail (ModuleNotFoundError) instead
    of loading a file from the image: no path, and only the importers of modules compiled into the interpreter.

    The import system reads these four through the sys module at every import, so fresh empty ones replace them,
    and the old ones are kept, not freed: freeing the path finders (each holds a set of every file name in its
    directory) would write to pages shared with the parent, a copy-on-write fault each (~80 in stage B)."""
    _FORBIDDEN.append((sys.path, sys.path_hooks, sys.path_importer_cache, sys.meta_path))
    sys.path = []
    sys.path_hooks = []
    sys.path_importer_cache = {}
    sys.meta_path = [f for f in sys.meta_path if f in _BUILTIN_IMPORTERS]


def expect(sock, what):
    msg = sock.recv(65536)
    if msg != what:
        raise PyruncError(f"init protocol: expected {what!r}, got {msg[:20]!r}")


def kept_fds(plan, ctx, sock):
    """The fds a container process may start with: stdio, the preserved ones, and pyrunc's own for this setup."""
    keep = set(range(3 + plan.preserve_fds)) | {sock.fileno()}
    for fd in (ctx.stub_fd, ctx.fifo_fd, ctx.seccomp_fd):
        if fd is not None and fd >= 0:
            keep.add(fd)
    if ctx.console is not None:
        keep.add(ctx.console.fileno())
    keep.update((ctx.mount_fds or {}).values())
    keep.update(fd for _, fd in plan.ns_join if isinstance(fd, int))
    return keep


def close_stray_fds(keep):
    """Close every fd not in keep, first thing after fork.  The stub's close_range before execve is not enough:
    until `start`, the init would hold whatever the caller leaked (podman passes stray fds; a lock fd of pyrunc's
    is a host directory), reachable through /proc/1/fd by anything that may ptrace it (CVE-2024-21626 class)."""
    prev = -1
    for fd in sorted(keep):
        if fd > prev + 1:
            os.closerange(prev + 1, fd)
        prev = fd
    os.closerange(prev + 1, 1 << 20)


OWN_TASK = b"0"  # what a v1 `tasks` write names to move the writing thread itself


def join_own_cgroups(join, keep_below):
    """First thing in the first stage: write 0 to each v1 `tasks` file the parent opened (join: its
    Manager.own_join()), so that this process, still one thread, moves itself into the container's cgroups
    without the kernel's global migration lock.  A refusal fails the create, naming the file, except in a
    hierarchy joined best effort (name=systemd).  close_stray_fds, next, closes these fds with the rest; those
    below keep_below (stdio and preserved numbers, which it keeps: a caller that left them closed) are closed
    here."""
    if join is None:
        return
    try:
        for fd, path, soft in join[0]:
            try:
                os.write(fd, OWN_TASK)
            except OSError as e:
                if not soft:
                    from ..cgroups.fs import write_error

                    raise write_error(path, OWN_TASK.decode(), e.errno) from None
    finally:
        for fd in own_join_fds(join):
            if fd < keep_below:
                os.close(fd)


def stage_a(plan, ctx, sock, lx):
    join_own_cgroups(ctx.own_join, 3 + plan.preserve_fds)
    lx.prctl(PR_SET_DUMPABLE, 0)
    for i, fd in enumerate(ctx.stdio or ()):  # before the close: 0-2 are kept, the originals are not
        os.dup2(fd, i)
    close_stray_fds(kept_fds(plan, ctx, sock))
    notify = notify_connect(ctx)  # before any setns: listenerPath is a path on the host
    offsets = loaded("timens").open_offsets() if plan.time_offsets else None  # the host's root still: timens.py
    joins = open_namespaces(plan.ns_join)
    if any(t == "mount" for t, _ in joins):
        forbid_imports()  # the container's mount namespace: its / is the container's
    ctx.userns_fd = join_namespaces(joins, lx, keep_user=ctx.exec_mode)
    new = plan.ns_new
    if new & CLONE_NEWUSER:
        lx.unshare(CLONE_NEWUSER)
        # dumpable until the parent has written the id maps (runc's nsexec does the same): a non-dumpable
        # process's /proc files belong to root, which a caller that is not root could not open
        lx.prctl(PR_SET_DUMPABLE, 1)
        sock.send(proto.USERNS)  # sync 1.
        new &= ~CLONE_NEWUSER
    elif new & ~CLONE_NEWCGROUP:
        # No new user namespace: the other new namespaces are made now, while the parent puts us in the cgroups
        # it writes (the first cgroup.procs write can wait for an RCU grace period), not after.  Only the cgroup
        # namespace waits for GO: its root is the cgroup we are in when we unshare it.
        lx.unshare(new & ~CLONE_NEWCGROUP)
        new &= CLONE_NEWCGROUP
    expect(sock, proto.GO)  # sync 2.
    lx.prctl(PR_SET_DUMPABLE, 0)
    if plan.userns:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if new:
        lx.unshare(new)
    if offsets is not None:  # the new time ns is B's: its offsets are set before B is born
        loaded("timens").write(offsets, plan.time_offsets)
    if ctx.exec_mode:
        # exec: every Python step happens here, in stage A, which joined the container's namespaces but is not
        # in its pid namespace (setns(pid) only applies to children), so no container process can see it.  The
        # child that lands in the pid namespace runs a few syscalls and fexecve()s the sealed stub: no window in
        # which a container process with CAP_SYS_PTRACE could open our /proc/<pid>/exe (the host's python3).
        ctx.exec_args = prepare_exec(plan.process, ctx, sock, lx, -1, plan.preserve_fds, in_stage_a=True)
    # B must not speak before A has sent its pid (sync 3): with a seccomp agent, A writes the agent's state first,
    # and B's HOOKS could reach the parent before PID.  B waits for EOF on this pipe, which A closes after sync 3.
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(hold_w)
        os.read(hold_r, 1)
        os.close(hold_r)
        if ctx.exec_mode:
            run_stage(exec_now, plan, ctx, sock, lx)
        run_stage(stage_b, plan, ctx, sock, lx)
    os.close(hold_r)
    if notify:
        try:
            notify_payload(ctx, pid, lx)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # the parent learns no pid from a failed stage A: B must not run on
            raise
    sock.send(proto.PID + str(pid).encode())  # sync 3.
    os.close(hold_w)


def stage_init(plan, ctx, sock, lx):
    """The container's init forked by the parent itself (Spawn.direct: its namespaces all new, no user or time
    namespace, no seccomp agent): stage A's part of such a plan, then stage B.  Born in its new pid namespace
    (the parent's unshare) and, where it could, in its cgroup2 cgroup (init.Spawn._fork), it joins its v1 cgroups
    itself and makes its other namespaces while the parent writes what cgroup.procs are left, the cgroup namespace
    after GO; then it says PID (sync 3) from inside them when the parent is to move net devices or open bind
    sources in its mount namespace (init.reports_pid)."""
    join_own_cgroups(ctx.own_join, 3 + plan.preserve_fds)
    lx.prctl(PR_SET_DUMPABLE, 0)
    for i, fd in enumerate(ctx.stdio or ()):
        os.dup2(fd, i)
    close_stray_fds(kept_fds(plan, ctx, sock))
    new = plan.ns_new & ~CLONE_NEWPID
    if new & ~CLONE_NEWCGROUP:
        lx.unshare(new & ~CLONE_NEWCGROUP)
    expect(sock, proto.GO)  # sync 2.
    if new & CLONE_NEWCGROUP:
        lx.unshare(CLONE_NEWCGROUP)
    if proto.reports_pid(plan):  # else the parent goes on to wait for READY: no wake-up for nothing
        sock.send(proto.PID + b"1")  # sync 3.
    stage_b(plan, ctx, sock, lx)


def open_namespaces(ns_join):
    """[(type, fd)]: every namespace path opened before the first setns, as nsexec does; once in another user
    namespace, a path on the host (/run/netns/X) may no longer be reachable."""
    out = []
    try:
        for t, path in ns_join:
            if isinstance(path, int):  # opened by the parent (exec: checked against the init's start time after)
                out.append((t, path))
                continue
            try:
                out.append((t, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as e:
                raise SysError("open namespace", path, e.errno) from None
    except BaseException:
        for _, fd in out:
            os.close(fd)
        raise
    return out


def join_namespaces(joins, lx, keep_user=False):
    """setns in runc's order (nsexec.c join_namespaces): first every non-user namespace that our (host) privileges
    allow, then the user namespace, becoming its root at once (setresuid(0): the ids of the host's root are not
    mapped there, and without them the process has no capability in it), then the namespaces that needed it.
    Joining the user namespace first would lose the host privileges that a namespace owned by the host's user
    namespace needs (a CNI netns: setns(net) wants CAP_SYS_ADMIN over its owner).

    keep_user (exec): the user namespace is not joined here but its fd returned, for the stub to join in C: the
    stub is then exec'd in the host's user namespace, so its mm stays owned by the host's (see pyrunc_init.c)."""
    user, later = None, []
    has_user = any(t == "user" for t, _ in joins)
    for t, fd in joins:
        if t == "user":
            user = fd
            continue
        try:
            lx.setns(fd, NAMESPACES[t][0], f"{t} namespace")
        except SysError as e:
            if e.errno != errno.EPERM or not has_user:
                raise
            later.append((t, fd))
            continue
        os.close(fd)
    if user is not None and keep_user and not (later and os.geteuid() != 0):
        # (a caller that is not root owns nothing in the container's namespaces until it joins their user
        # namespace: it joins here, as runc's nsexec; its own uid is the container's root, nothing to protect)
        if later:
            os.close(user)
            raise SysError("setns", f"{later[0][0]} namespace", errno.EPERM)
        return user
    if user is not None:
        lx.setns(user, CLONE_NEWUSER, "user namespace")
        os.close(user)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for t, fd in later:
        lx.setns(fd, NAMESPACES[t][0], f"{t} namespace")
        os.close(fd)
    return None


def notify_connect(ctx):
    """linux.seccomp.listenerPath: connect to the seccomp agent now, on the host, as runc does (it connects from
    the runc process), and make the pipe that will carry the container process state.  Stage B inherits both
    and hands them to the stub (notify=, notifymsg=), which sends the listener fd with that state right after it
    loads the filter (SCM_RIGHTS): the fd exists only in the container process, after the filter is loaded."""
    path = (ctx.notify or {}).get("path")
    if not path:
        ctx.notify_fds = None
        return False
    socket = loaded("sock")
    s = socket.socket(socket.AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise SysError("connect to seccomp agent", path, e.errno) from None
    r, w = os.pipe2(os.O_CLOEXEC)
    ctx.notify_fds = (s.detach(), r, w)
    return True


def notify_payload(ctx, pid, lx):
    """After the fork of stage B (pid: its host pid): write runc's ContainerProcessState into the pipe."""
    sfd, r, w = ctx.notify_fds
    os.close(sfd)
    os.close(r)
    state = dict(ctx.notify["state"])
    if state.get("pid") is None:
        state["pid"] = pid  # the init's own state: its pid
    msg = {"ociVersion": ctx.notify["version"], "fds": ["seccompFd"], "pid": pid}
    if ctx.notify.get("metadata"):
        msg["metadata"] = ctx.notify["metadata"]
    msg["state"] = state
    data = fastjson.dumps(msg).encode()
    try:
        if len(data) > 65536:  # B reads it only in its stub (an init: after sync 5): it must fit, never block A
            lx.fcntl(w, F_SETPIPE_SZ, len(data), "the seccomp agent's state pipe")
        os.write(w, data)
    finally:
        os.close(w)


def _loopback_up(lx):
    """The new network namespace's lo up, as runc does (SIOCGIFFLAGS, SIOCSIFFLAGS through the helper)."""
    s = lx.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC)
    try:
        lx.set_ifflags(s, "lo", lx.get_ifflags(s, "lo") | IFF_UP)
    finally:
        os.close(s)


def stage_b(plan, ctx, sock, lx):
    lx.prctl(PR_SET_DUMPABLE, 0)
    os.setsid()
    os.umask(0)
    if not plan.no_new_keyring:
        join_session_keyring(lx, ctx.id)
    if plan.new_netns:
        _loopback_up(lx)
    for key, value in plan.sysctl.items():
        proto.write_proc("/proc/sys/" + key.replace(".", "/"), value)

    stub = ctx.stub_fd
    fifo = -1
    if ctx.fifo_fd is not None:
        fifo = ctx.fifo_fd  # opened by the parent before the first fork (see Spawn.run)
    elif ctx.fifo:
        fifo = os.open(ctx.fifo, O_PATH | os.O_CLOEXEC)

    binds = source_binds(plan)
    if binds:  # sync 3b: the parent opened them on the host's side (see idmap.open_bind_sources)
        msg, fds, _, _ = loaded("sock").recv_fds(sock, 64, len(binds), MSG_CMSG_CLOEXEC)
        if msg != proto.MOUNTS or len(fds) != len(binds):
            raise PyruncError(f"init protocol: expected {len(binds)} mount fds, got {msg[:20]!r} and {len(fds)}")
        ctx.mount_fds = dict(ctx.mount_fds or {})
        ctx.mount_fds.update((op.index, fd) for op, fd in zip(binds, fds))
    rootfd = prepare_rootfs(plan, ctx, lx)
    if ctx.run_hooks is not None:  # the parent's prestart and createRuntime hooks
        sock.send(proto.HOOKS)  # sync 4.
        expect(sock, proto.GO)  # sync 5.
    if ctx.run_container_hooks:
        ctx.run_container_hooks()
    if plan.hostname:
        lx.sethostname(plan.hostname)
    if plan.domainname:
        lx.setdomainname(plan.domainname)
    proc = plan.process
    if proc.cwd.strip("/"):  # "/" is the root itself
        try:
            cwdfd = rootfs.mkdir_all_in_root(lx, rootfd, proc.cwd)
        except SysError as e:
            raise PyruncError(f'chdir to cwd ("{proc.cwd}") set in config.json failed: {e}') from None
        os.close(cwdfd)
    forbid_imports()
    enter_rootfs(plan, rootfd, lx)
    finish_rootfs(plan, lx)
    exec_stub(proc, ctx, sock, lx, stub, fifo, plan.preserve_fds)


def exec_now(plan, ctx, sock, lx):
    """Stage B of `pyrunc exec`, the only one in the container's pid namespace: a new session (with the pty as
    its controlling terminal), the scheduler (SCHED_RESET_ON_FORK would not survive the fork), then the stub."""
    os.setsid()
    if plan.process.terminal:
        loaded("console").set_ctty(0)
    sched.apply_process(plan.process, lx)
    stub, argv, env = ctx.exec_args
    expect(sock, proto.GO)  # sync 6: the parent has set our rlimits
    os.execve(stub, argv, env)


def exec_stub(proc, ctx, sock, lx, stub, fifo, preserve_fds):
    """Last Python steps of the container's init: scheduler and ioPriority, then fexecve the stub (sync 6)."""
    stub, argv, env = prepare_exec(proc, ctx, sock, lx, fifo, preserve_fds)
    sched.apply_process(proc, lx)  # runc's order: scheduler, ioPriority, then (prepared) personality, affinity
    if ctx.own_rlimits is not None:  # no user namespace: our privileges are the parent's, no sync 6 (Spawn.run)
        proto.set_rlimits(lx, 0, ctx.own_rlimits)
    else:
        sock.send(proto.EXEC)  # sync 6.
        expect(sock, proto.GO)  # sync 6: the parent has set our rlimits
    os.execve(stub, argv, env)


def prepare_exec(proc, ctx, sock, lx, fifo, preserve_fds, in_stage_a=False):
    """The Python steps before the stub: tty, cwd, env, PATH lookup, umask, personality, cpu affinity,
    signals; returns (stub fd, argv, env) for fexecve.  in_stage_a: prepared by exec's stage A for its child (the
    controlling terminal is then taken by the child, and stage A itself still writes the seccomp agent's state)."""
    stub = ctx.stub_fd
    if proc.terminal:
        loaded("console").setup(lx, ctx.console, proc.console_size, ctty=not in_stage_a)
    fix_stdio_owner(proc.uid, proc.terminal)  # the final stdio becomes the user's (runc's setupUser)
    if in_stage_a or proc.cwd.strip("/"):  # stage B's cwd is "/" already (enter_rootfs)
        rootdir = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            cwd = rootfs.open_in_root(lx, rootdir, proc.cwd, O_PATH | os.O_DIRECTORY)
        except SysError as e:
            raise PyruncError(f'chdir to cwd ("{proc.cwd}") set in config.json failed: {e}') from None
        finally:
            os.close(rootdir)
        # resolved inside the root: never a host directory reached through /proc/self/fd (CVE-2024-21626)
        os.fchdir(cwd)
        os.close(cwd)
    env = environ(proc)
    path = getattr(proc, "exec_path", None) or lookup(proc.args[0], env)
    os.umask(0o022 if proc.umask is None else int(proc.umask))
    # runc's order (standard_init_linux.go, setns_init_linux.go): scheduler and ioPriority (by the caller), then
    # personality, while the process still has every capability (SCHED_FIFO and a negative nice need CAP_SYS_NICE)
    if getattr(proc, "personality", None) is not None:
        lx.personality(proc.personality)
    if proc.mempolicy is not None:  # runc's place: right after personality
        loaded("mempolicy").apply(lx, proc.mempolicy)
    if proc.cpu_final is not None:  # execCPUAffinity.final: now in the container's cgroup, right before the stub
        sched.set_affinity(proc.cpu_final, "final")
    elif proc.cpu_initial is None:  # runc's tryResetCPUAffinity: never the caller's affinity
        sched.reset_affinity(lx)
    caps = ctx.caps
    ctl = {"sync": sock.fileno(), "userns": ctx.userns_fd, "fifo": fifo if fifo >= 0 else None, "keep": 2 + preserve_fds,
           "uid": proc.uid, "gid": proc.gid, "groups": proc.groups, "nnp": proc.nnp,
           "seccomp": ctx.seccomp_fd, "sflags": ctx.seccomp_flags}
    if caps is not None:
        ctl.update(caps)
    notify = ctx.notify_fds
    if notify:
        if not in_stage_a:  # the write end is stage A's: the stub reads the state until EOF
            os.close(notify[2])
        ctl.update(notify=notify[0], notifymsg=notify[1])
    for fd in (sock.fileno(), fifo, ctx.seccomp_fd, ctx.userns_fd) + (notify[:2] if notify else ()):
        if fd is not None and fd >= 0:  # FD_CLOEXEC off in one call (os.set_inheritable: three on an O_PATH fd)
            lx.fcntl(fd, F_SETFD, 0, "keep fd for the stub")
    default_signals(ctx.ignored_signals)
    env[INIT_ENV] = str(init_args(ctl, path, proc.args))  # the stub reads its arguments from this fd, not argv
    return stub, ["pyrunc", "init"], env


def ignored_signals():
    """The signals whose disposition is SIG_IGN, from Python's table (getsignal), which knows each: those Python set
    (SIGPIPE, SIGXFSZ at startup) and those it found at startup (a caller's SIG_IGN).  Read by the parent before
    the fork (Ctx.ignored_signals): the same table, and the init's ~60 lookups would each be Python work in a
    just-forked process."""
    out = []
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            h = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if isinstance(h, int) and h == signal.SIG_IGN:  # an int, or the `signal` module's IntEnum
            out.append(sig)
    return out


def default_signals(ignored=None):
    """Every signal back to SIG_DFL and none blocked: an ignored disposition survives execve, and Python ignores
    SIGPIPE and SIGXFSZ at startup (run also installs forwarding handlers); the container must start with runc's
    clean slate.  Only ignored signals need a call (ignored: ignored_signals(), read before the fork, else now):
    execve itself resets every handled one."""
    for sig in ignored_signals() if ignored is None else ignored:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, ())  # a blocked mask survives execve as well


def environ(proc):
    env = {}
    for kv in proc.env:
        k, _, v = kv.partition("=")
        env[k] = v
    if "HOME" not in env:
        env["HOME"] = _home(proc.uid)
    return env


def _home(uid):
    """HOME from the image's /etc/passwd: a regular file, not followed through a symlink, read at most 1 MiB (an
    image's /etc/passwd may be a fifo or /dev/zero)."""
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            return "/"
        data = os.read(fd, min(st.st_size, 1 << 20))  # not a 1 MiB buffer for 100 bytes (mmap, mremap, munmap)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == str(uid):
            return parts[5] or "/"
    return "/"


def lookup(name, env):
    """runc's exec.LookPath with the container's PATH, and its error wording (docker matches it)."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise PyruncError(f'exec: "{name}": stat {name}: {os.strerror(e.errno).lower()}') from None
        if S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise PyruncError(f'exec: "{name}": permission denied')
        return name
    for d in env.get("PATH", "").split(":"):
        p = os.path.join(d or ".", name)
        try:
            st = os.stat(p)
        except OSError:
            continue
        if S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return p
    raise PyruncError(f'exec: "{name}": executable file not found in $PATH')


_SKIP_ERRNOS = (errno.EINVAL, errno.EPERM, errno.EROFS)


def fix_stdio_owner(uid, own_pty=False):
    """runc's fixStdioPermissions, before the ids change: the pipes and sockets on fds 0-2, and the pty slave made
    for the process (own_pty), become the container user's, gid kept, so the process can reopen /dev/stdout
    (/proc/self/fd/1: the kernel checks the inode's owner).  Left as they are: fds the user owns already, and host
    objects that have an owner of their own: /dev/null and any other character device (the caller's terminal,
    passed through by a foreground run), and regular files (a log the caller redirected to).  runc would chown
    those too when it passes the caller's stdio through (run -d); in the foreground it never does, it gives the
    container pipes of its own.  EINVAL (the gid is not mapped in the user namespace), EPERM (the owner is not)
    and EROFS leave the fd as it is, as in runc."""
    for fd in (0, 1, 2):  # uid 0 too: in a user namespace that is a host uid the caller's pipes do not belong to
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # a closed stdio fd: nothing to hand over
        mine = S_ISFIFO(st.st_mode) or S_ISSOCK(st.st_mode) or own_pty and S_ISCHR(st.st_mode)
        if not mine or st.st_uid == uid:
            continue
        try:
            os.fchown(fd, uid, st.st_gid)
        except OSError as e:
            if e.errno not in _SKIP_ERRNOS:
                raise SysError("fchown", f"stdio fd {fd}", e.errno) from None
