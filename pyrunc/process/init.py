"""The init protocol: how `pyrunc create` (the parent) brings up a container's init process.

  parent (pyrunc create/run)              stage A (fork)                      stage B (init; pid 1 in a new pid ns)
  --------------------------              --------------                      -------------------------------------
  socketpair(SEQPACKET); subreaper;
  [id-mapped trees: open_tree + mount_setattr]
  [open the cgroups' v1 tasks files and
   cgroup2 dir: Manager.own_join]
  fork (clone3 into the cgroup2 cgroup) > write 0 to each tasks file (joins its
                                          v1 cgroups); non-dumpable; [seccomp
  [cgroup: add A, where it did not join   agent: connect to listenerPath, on the
   itself]; [resctrl group: add A]        host]; open every joined ns path, then
                                          setns: host-owned first, then user
                                          (+ setresuid 0), rest
                                          [new user ns] unshare(NEWUSER)
                                          [else: unshare(new namespaces but
                                          cgroup), while the parent works]
         <------------- 1. USERNS -------
  [write uid_map/gid_map of A]
  oom_score_adj of A (B inherits it)
  [cgroup limits: linux.resources]
         -------------- 2. GO ---------->
                                          unshare(other new namespaces, or
                                          only cgroup);
                                          [timens_offsets]
                                          fork ---------------------------->  (waits for A's exit) non-dumpable;
         <------------- 3. PID <B> ------ [agent: state JSON with                setsid; keyring; lo up; sysctl;
                                          B's pid into B's pipe]; exit(0)
  reap A (B re-parents to us: subreaper)
  [linux.netDevices: move them into B's
   network namespace (netdev.py)]
  [new user ns: open bind sources
   in B's mount ns]
         --------------------------------------------------- 3b. MOUNTS ---->  (SCM_RIGHTS: the sources' fds)
                                                                               mounts in the rootfs, by fd;
                                                                               devices, /dev symlinks
         <-------------------------------------------------- 4. HOOKS -------
  prestart + createRuntime hooks          (4 and 5 only when there are such hooks: ctx.run_hooks)
         --------------------------------------------------- 5. GO -------->
                                                                               createContainer hooks; hostname;
                                                                               no more imports; pivot_root;
                                                                               readonly, masked paths;
                                                                               cwd, umask; PATH lookup;
                                                                               scheduler, ioprio, personality,
                                                                               cpu affinity (sched.py)
                                                                               [no user namespace: B sets its own
                                                                               rlimits (prlimit) and skips sync 6]
         <-------------------------------------------------- 6. EXEC -------
  rlimits of B (prlimit)
         --------------------------------------------------- 6. GO -------->
                                                                               fexecve(sealed pyrunc-init) which sets
                                                                               ids, caps, nnp, seccomp (listener fd
                                                                               to the agent), then closes
         <-------------------------------------------------- 7. READY ------   writes READY (an error instead);
  write state.json, pid file
         --------------------------------------------------- 8. GO -------->   (EOF instead: pyrunc died before the
  exit                                                                         state was written: exit) closes the
                                                                               sync fd, waits on exec.fifo for `start`

Most creates skip stage A (Spawn.direct: every namespace new, no user or time namespace, no seccomp agent): the
parent itself unshares CLONE_NEWPID (only where its next child is born), forks the init, and sets its own pid
namespace back at once; the init (child.stage_init) makes its other namespaces while the parent works, the cgroup
namespace after 2. GO, and sends 3. PID from inside them only when the parent needs to know that (net
devices to move, bind sources to open: reports_pid); steps 1 and the reaping of A do not exist.

The first process (A, or the direct init) joins its cgroups without the kernel's global cgroup migration lock, whose
first taker waits out an RCU grace period (cgroups/warm.py): it is born in its cgroup2 cgroup (clone3
CLONE_INTO_CGROUP) and writes 0 (itself) to each v1 `tasks` file, fds the parent opened.  The parent writes
cgroup.procs instead where that cannot be: a process with other threads (a shim: the raw clone3 skips glibc's fork
locks), the systemd driver (its unit's PIDs), exec (runc's rules for a busy cgroup2 cgroup: for_exec), a file that
will not open, a clone3 that fails (then only the cgroup2 cgroup).

The limits of linux.resources (devices, memory, pids...) are written after the fork, as runc writes them once its
init is in the cgroups, and before 2. GO: the first process runs nothing of the container's and makes no device
node or mount before it, and the writes overlap its namespace work.

Any stage may instead send ERROR <message>; the parent then kills what it started and reports the message once.
Stage code is in child.py; the numbers above appear as "sync N" comments at both ends.

oom_score_adj and rlimits are set by the parent, on the host's side, as runc does: in a new user namespace the
init can neither open its own /proc/self/oom_score_adj (it is non-dumpable, so the file belongs to the host's root,
unmapped in the container) nor raise a limit (both need CAP_SYS_RESOURCE in the host's user namespace).  Without a
user namespace the init has the parent's privileges and sets its own rlimits at the same point (no sync 6).

`pyrunc exec` runs the same ladder without steps 1, 3b, 4, 5, 6 and 8 (its 6. GO, after the rlimits, follows 3.; its
stub closes the sync fd at 7): stage A joins every namespace of the container's init but the user namespace
(opened by the parent), does all the process steps itself (it is not in the container's pid namespace, so no
container process can see it), and forks stage B (child.exec_now), which only makes its session and fexecve()s the
stub, still in the host's user namespace; the stub joins the container's user namespace itself (userns=FD), so its
memory stays the host's (see join_userns in csrc/pyrunc_init.c).
"""

import _signal as signal  # the C module: `signal` imports enum
import _thread

from .. import osx as os
from ..cgroups.manager import UNIFIED, close_own_join
from ..errors import PyruncError, SysError
from ..linux import (AF_UNIX, CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWUSER, O_PATH, PR_SET_CHILD_SUBREAPER,
                     SOCK_CLOEXEC, SOCK_SEQPACKET, real)
from . import waiter
from .idmap import source_binds, write_id_maps

USERNS, GO, PID, MOUNTS, HOOKS, EXEC, READY, ERROR = (b"userns", b"go", b"pid ", b"mounts", b"hooks", b"exec", b"ready",
                                                b"error ")


class Ctx:
    """What the init protocol needs besides the plan, filled in by the caller (create or exec); the defaults are
    those of a plain create.  fds are pyrunc's own, closed by the caller after Spawn.run()."""

    id = None  # the container id
    exec_mode = False  # exec: no user namespace, hooks or rootfs; stage A prepares, its child fexecve()s the stub
    fifo = None  # path of the exec fifo (create); fifo_fd: its O_PATH fd, opened by the parent
    fifo_fd = None
    stub_fd = None  # the sealed pyrunc-init memfd
    caps = None  # capability masks for the stub (bnd, eff, prm, inh, amb), or None to leave them
    seccomp_fd = None  # memfd holding the BPF program, and the seccomp(2) flags
    seccomp_flags = None
    notify = None  # seccomp agent (listenerPath) settings; notify_fds: its socket and state pipe, made in stage A
    notify_fds = None
    console = None  # connected console socket, when the process has a terminal
    cgroup = None  # cgroups manager to put stage A in
    join_rdt = None  # join_rdt(pid): put stage A in the container's resctrl group (linux.intelRdt, intelrdt.py)
    limits = None  # limits(): write linux.resources to the container's cgroups, after the fork, before sync 2
    idmap_fds = None  # {mount index: user namespace fd} for id-mapped mounts
    mount_fds = None  # {mount index: fd} opened by Spawn.run on the host's side: id-mapped trees, bind sources
    run_hooks = None  # run_hooks(kind, pid): prestart and createRuntime, in the parent; None: none (no sync 4, 5)
    run_container_hooks = None  # createContainer, in stage B before pivot_root
    exec_args = None  # exec: (stub fd, argv, env) prepared by stage A
    userns_fd = None  # exec: the container's user namespace, joined by the stub (set in stage A)
    stdio = None  # (stdin, stdout, stderr) fds for the process instead of ours (a shim's pipes); stage A dup2s them
    own_rlimits = None  # set by Spawn.run: parsed rlimits the init sets itself (no user namespace), else None
    cgroup_hier = None  # set by Spawn.run: the host's cgroup mounts (cgroupfs.host_hierarchies) for a cgroup mount
    ignored_signals = None  # set by Spawn.run: child.ignored_signals(), for the process to start with none ignored
    while_waiting = None  # create: while_waiting(pid), called once the init is set going, before the wait for READY
    own_join = None  # set by Spawn.run: Manager.own_join()'s fds, v1 `tasks` files the first stage writes 0 to


class Channel:
    """One end of the sync socketpair (SOCK_SEQPACKET, made by the helper), read and written with posix's read and
    write: on a SEQPACKET socket each write is one message and each read takes one (truncated to its size), as
    send and recv do, with the same errors (EPIPE: the peer is gone; ECONNRESET: it closed with our message
    unread).  No socket object: _socket and _struct (~0.6 ms) load only where fds are handed over (sock.py)."""

    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def send(self, data):
        return os.write(self.fd, data)

    def recv(self, size):
        return os.read(self.fd, size)

    def close(self):
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def channel_pair(lx):
    """(parent's end, child's end), close-on-exec: the stub gets its end by set_inheritable, as a number."""
    a, b = lx.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)
    return Channel(a), Channel(b)


def load_stage_modules(plan, ctx):
    """Import, before the fork, what the stages need only for some configs: console.py (termios, fcntl, struct)
    for a terminal, sock.py (_socket, _struct) to hand fds over (bind sources at sync 3b, the seccomp agent's
    connection).  The stages take them from sys.modules (child.loaded): no import after the fork, and a plain
    create loads neither."""
    if plan.process.terminal:
        from . import console  # noqa: F401
    if source_binds(plan) or (ctx.notify or {}).get("path"):
        from . import sock  # noqa: F401


class InitError(PyruncError):
    """The container process failed to come up; the message is the child's."""


def receive(sock):
    """One message from the child, b"" at its end."""
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        # The child closed its end with a message of ours unread (it failed before reading a GO we sent): the
        # kernel reports that first, and what the child sent before it went (its ERROR) is still queued.
        return sock.recv(65536)


def recv(sock):
    """receive(), for a message the protocol needs: the child's end or ERROR raise InitError."""
    data = receive(sock)
    if not data:
        raise InitError("container init process exited before it was set up")
    if data.startswith(ERROR):
        raise InitError("unable to start container process: " + data[len(ERROR):].decode(errors="replace"))
    return data


def set_oom_score_adj(pid, value):
    write_proc(f"/proc/{pid}/oom_score_adj", value)


def write_proc(path, value):
    """Write one value to a procfs file (the host's /proc: the parent's, or stage B's before pivot_root)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise SysError("open", path, e.errno) from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise SysError("write", f"{path} {value!r}", e.errno) from None
    finally:
        os.close(fd)


def parse_rlimits(rlimits):
    """process.rlimits -> [(resource, soft, hard, what)] for set_rlimits, parsed in the parent before the first fork
    (a bad entry is refused before anything starts).  Values from 2**63 up are RLIM_INFINITY, as for `resource`."""
    if not rlimits:
        return []
    from ..security.rlimits import RLIMITS, parse

    names = {v: k for k, v in RLIMITS.items()}
    inf = (1 << 64) - 1
    return [(res, inf if soft >= 1 << 63 else soft, inf if hard >= 1 << 63 else hard,
             f"{names[res]} (soft {soft}, hard {hard})") for res, soft, hard in parse(rlimits)]


def set_rlimits(lx, pid, limits):
    """prlimit(2) of each parsed limit on pid (0: the caller).  From the parent on the init with a user namespace
    (runc's setupRlimits at procReady: in it the init could not raise a limit, which needs CAP_SYS_RESOURCE in
    the host's user namespace); without one the init sets its own at the same point (see Spawn.run)."""
    for res, soft, hard, what in limits:
        lx.prlimit(pid, res, soft, hard, what)


def reports_pid(plan):
    """Whether the init forked by the parent itself (Spawn.direct) says PID (sync 3): only when the parent needs
    to know it is in its namespaces, to move net devices into them or open bind sources in its mount namespace.
    Stage A always does: the parent learns the init's pid from it."""
    return bool(plan.net_devices or source_binds(plan))


def _kill_reap(pid):
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            waiter.waitpid(pid, 0)
        except ChildProcessError:
            pass


class Spawn:
    """Parent side.  ctx carries: id, fifo path or None, stdio, cgroup manager, run_hooks(kind, pid)."""

    def __init__(self, plan, ctx, lx=real):
        self.plan, self.ctx, self.lx = plan, ctx, lx
        self.pid = 0
        self.sock = None  # create: our end of the sync socket, kept from sync 7 until commit() (sync 8)

    def run(self):
        from . import child

        lx = self.lx
        limits = parse_rlimits(self.plan.process.rlimits)
        # Without a user namespace the init has our privileges (host root, or as little as we have: without
        # CAP_SYS_RESOURCE neither of us may raise a hard limit), so it sets its own rlimits right before the stub
        # and sync 6 is skipped: one round trip less.  In a user namespace (new or joined) it could not raise
        # one, so the parent sets them at sync 6, as runc does; and so for exec, whose stage B is prepared by A.
        self.ctx.own_rlimits = limits if not (self.ctx.exec_mode or self.plan.userns) else None
        lx.lib  # noqa: B018: load the helper before forking, once
        self.ctx.ignored_signals = child.ignored_signals()
        lx.prctl(PR_SET_CHILD_SUBREAPER, 1)
        # The exec fifo is opened (O_PATH) here, by the host's root, and inherited: in a new user namespace the
        # init is an unprivileged host uid by the time it could open the path itself, and may not be able to
        # search the state directory's ancestors (runc passes it the same way).
        if self.ctx.fifo and self.ctx.fifo_fd is None:
            self.ctx.fifo_fd = os.open(self.ctx.fifo, O_PATH | os.O_CLOEXEC)
        if not self.ctx.exec_mode and not any(t == "mount" for t, _ in self.plan.ns_join) and any(
                op.fstype in ("cgroup", "cgroup2") and not op.bind for op in self.plan.mounts):
            # Read here, not in the init: Python work in a just-forked child runs several times slower (each page
            # it touches first is a copy-on-write or a page-table fault; this read: 0.69 ms there, 0.19 ms here).
            # The init's mount namespace is a copy of ours (none joined), so it sees the same mounts.
            from .cgroupfs import host_hierarchies

            self.ctx.cgroup_hier = host_hierarchies()
        if not self.ctx.exec_mode:
            from .idmap import idmapped_trees

            try:
                self.ctx.mount_fds = idmapped_trees(self.plan.mounts, self.ctx.idmap_fds or {}, lx)
            except BaseException:
                self._close_fifo()
                raise
        try:
            load_stage_modules(self.plan, self.ctx)
            parent, kid = channel_pair(lx)
        except BaseException:
            self._close_fifo()
            raise
        own_pidns = self._own_pidns(lx) if self.direct() else None
        direct = own_pidns is not None
        join = self._own_join()  # None: we write the first process's pid to each cgroup.procs (add_pid), below
        self.ctx.own_join = join
        try:
            pid_a, born = self._fork_init(lx, own_pidns, join) if direct else self._fork(lx, join)
        except BaseException:
            if join is not None:
                close_own_join(join)
            self._close_fifo()
            raise
        if pid_a == 0:  # stage A (or, direct, the init): never returns
            parent.close()
            child.run_stage(child.stage_init if direct else child.stage_a, self.plan, self.ctx, kid, lx)
        kid.close()
        if join is not None:
            close_own_join(join)
        if direct:
            self.pid, pid_a = pid_a, 0
        try:
            first = pid_a or self.pid
            if join is None:
                if self.ctx.cgroup is not None:
                    self.ctx.cgroup.add_pid(first)
            elif join[1] is not None and not born:  # no clone3 here: its cgroup2 cgroup the old way
                self.ctx.cgroup.add_pid(first, keys=(UNIFIED,))
            if self.ctx.join_rdt is not None:  # before sync 2: B and all after it are forked inside the group
                self.ctx.join_rdt(first)
            exec_mode = self.ctx.exec_mode
            if self.plan.ns_new & CLONE_NEWUSER:  # sync 1.
                if recv(parent) != USERNS:
                    raise InitError("init protocol: expected userns")
                write_id_maps(pid_a, self.plan.uid_mappings, self.plan.gid_mappings)
            if self.plan.process.oom_score_adj is not None:
                set_oom_score_adj(first, self.plan.process.oom_score_adj)
            if self.ctx.limits is not None:  # while the init makes its namespaces; in force before it mounts
                self.ctx.limits()
            try:
                parent.send(GO)  # sync 2.
            except BrokenPipeError:
                pass  # stage A failed before sync 2 (a setns, the seccomp agent): its ERROR is read next
            msg = recv(parent) if not direct or reports_pid(self.plan) else PID  # sync 3.
            if not msg.startswith(PID):
                if exec_mode:  # the exec'd stub may fail (and say why) before stage A has reported its pid
                    raise InitError("unable to start container process: " + msg.decode(errors="replace"))
                raise InitError(f"init protocol: unexpected {msg[:20]!r}")
            if not direct:  # direct: the init says it is in its namespaces; its pid is our fork's
                self.pid = int(msg[len(PID):])
                waiter.waitpid(pid_a, 0)
                pid_a = 0
            if not exec_mode and self.plan.net_devices:  # B is in its network namespace, which runs nothing
                from .netdev import move

                move(self.plan.net_devices, self.pid)
            if not exec_mode:
                self._send_bind_sources(parent)  # sync 3b.
            if not exec_mode and self.ctx.run_hooks is not None:  # None: no prestart/createRuntime hooks
                if recv(parent) != HOOKS:  # sync 4.
                    raise InitError("init protocol: expected hooks")
                self.ctx.run_hooks("prestart", self.pid)
                self.ctx.run_hooks("createRuntime", self.pid)
                parent.send(GO)  # sync 5.
            if self.ctx.own_rlimits is None:  # a user namespace, or exec (see above)
                if not exec_mode:  # exec: stage A prepared everything, its child goes straight to the stub
                    msg = recv(parent)  # sync 6.
                    if msg != EXEC:
                        raise InitError(f"init protocol: unexpected {msg[:20]!r}")
                set_rlimits(lx, self.pid, limits)
                try:
                    parent.send(GO)  # sync 6.
                except BrokenPipeError:
                    pass  # it failed first: its ERROR is read next
            if self.ctx.while_waiting is not None:  # what the caller can do while the init sets itself up
                self.ctx.while_waiting(self.pid)
            err = receive(parent)  # sync 7: EOF (exec) or READY (create) when the stub is ready
            if err.startswith(ERROR):  # stage B's own (Python) error: the stub's carry no prefix
                err = err[len(ERROR):]
            if self.ctx.fifo_fd is not None:
                if err != READY:
                    raise InitError("unable to start container process: " + (
                        err.decode(errors="replace") if err else "container init process exited before it was set up"))
                self.sock, parent = parent, None  # held until commit(): our death before it reads as EOF there
            elif err:
                raise InitError("unable to start container process: " + err.decode(errors="replace"))
            return self.pid
        except BaseException:
            _kill_reap(pid_a)
            _kill_reap(self.pid)
            raise
        finally:
            if parent is not None:
                parent.close()
            self._close_fifo()

    def direct(self):
        """Whether the parent forks the container's init itself, without stage A: a create whose namespaces are all
        new, with neither a user nor a time namespace (their set-up needs a process between us and the init: id
        maps and setresuid, the offsets written before the init is born) and no seccomp agent (A writes its
        state once the init's pid is known).  Saves a fork, a Python process and its copy-on-write faults."""
        p, c = self.plan, self.ctx
        return not (c.exec_mode or p.ns_join or p.userns or p.ns_new & (CLONE_NEWUSER | CLONE_NEWTIME)
                    or (c.notify or {}).get("path"))

    def _own_pidns(self, lx):
        """For direct(): an fd of our own pid namespace, to set it back after the fork (-1: no new pid namespace,
        nothing to set back), or None when we may not: joining it needs CAP_SYS_ADMIN over its owner, which a
        root inside another's user namespace lacks (rootless podman runs us as root in its user namespace, in the
        host's pid namespace).  setns to our own pid namespace changes nothing, so it is the test."""
        if not self.plan.ns_new & CLONE_NEWPID:
            return -1
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            lx.setns(own, CLONE_NEWPID, "our own pid namespace")
        except SysError:
            os.close(own)
            return None
        return own

    def _own_join(self):
        """Manager.own_join() for a create's first process, when we are the only thread (the clone3 of
        Linux.fork_into_cgroup must be: a shim serves in others); else None."""
        c = self.ctx
        if c.cgroup is None or c.exec_mode or _thread._count():
            return None
        return c.cgroup.own_join()

    def _fork(self, lx, join):
        """(pid, born): os.fork(), or, when join (Manager.own_join) has a cgroup2 cgroup, a fork born in it (born
        True).  A clone3 that fails (an old kernel, a seccomp filter, a cgroup that refuses) falls back to
        os.fork(): add_pid then writes that cgroup, with the errors it always had."""
        if join is not None and join[1] is not None:
            try:
                return lx.fork_into_cgroup(*join[1]), True
            except SysError:
                pass
        return os.fork(), False

    def _fork_init(self, lx, own, join):
        """_fork() for direct(): with a new pid namespace (own: our own's fd, from _own_pidns),
        unshare(CLONE_NEWPID) first, which only chooses where our next child is born (as pid 1), and setns back to
        our own pid namespace right after the fork, so nothing else we fork (hooks) is born there.  Only the
        calling thread's namespaces change (a shim has others)."""
        if own < 0:
            return self._fork(lx, join)
        try:
            lx.unshare(CLONE_NEWPID)
            pid = -1
            try:
                pid, born = self._fork(lx, join)
            finally:
                if pid != 0:
                    try:
                        lx.setns(own, CLONE_NEWPID, "our own pid namespace")
                    except BaseException:
                        _kill_reap(pid if pid > 0 else 0)
                        raise
            return pid, born
        finally:
            os.close(own)

    def _send_bind_sources(self, sock):
        from .idmap import open_bind_sources, source_binds

        ops = source_binds(self.plan)
        if not ops:
            return
        from .sock import send_fds  # loaded before the fork (load_stage_modules)

        fds = open_bind_sources(self.pid, ops)
        try:
            send_fds(sock, [MOUNTS], fds)
        finally:
            for fd in fds:
                os.close(fd)

    def commit(self):
        """sync 8: the container's state is on disk, so `start` and `delete` can find the init: let it go on to
        wait on the exec fifo.  Until then it waits on the sync socket, and exits if we die first (EOF)."""
        if self.sock is not None:
            try:
                self.sock.send(GO)
            finally:
                self.sock.close()
                self.sock = None

    def _close_fifo(self):
        for fd in (self.ctx.mount_fds or {}).values():
            os.close(fd)
        self.ctx.mount_fds = None
        if self.ctx.fifo_fd is not None:
            os.close(self.ctx.fifo_fd)
            self.ctx.fifo_fd = None
