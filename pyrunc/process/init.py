"""The init protocol: how `pyrunc create` (the parent) brings up a container's init process.

  parent (pyrunc create/run)              stage A (fork)                      stage B (init; pid 1 in a new pid ns)
  --------------------------              --------------                      -------------------------------------
  socketpair(SEQPACKET); subreaper;
  [id-mapped trees: open_tree + mount_setattr]
  fork ---------------------------------> non-dumpable; [seccomp agent: connect
                                          to listenerPath, on the host]; open every
  cgroup: add A; [resctrl group: add A]   joined ns path, then setns: host-owned
                                          first, then user (+ setresuid 0), rest
                                          [new user ns] unshare(NEWUSER)
         <------------- 1. USERNS -------
  [write uid_map/gid_map of A]
  oom_score_adj of A (B inherits it)
         -------------- 2. GO ---------->
                                          unshare(other new namespaces);
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
  prestart + createRuntime hooks
         --------------------------------------------------- 5. GO -------->
                                                                               createContainer hooks; hostname;
                                                                               no more imports; pivot_root;
                                                                               readonly, masked paths;
                                                                               cwd, umask; PATH lookup;
                                                                               scheduler, ioprio, personality,
                                                                               cpu affinity (sched.py)
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

Any stage may instead send ERROR <message>; the parent then kills what it started and reports the message once.
Stage code is in child.py; the numbers above appear as "sync N" comments at both ends.

oom_score_adj and rlimits are set by the parent, on the host's side, as runc does: in a new user namespace the
init can neither open its own /proc/self/oom_score_adj (it is non-dumpable, so the file belongs to the host's root,
unmapped in the container) nor raise a limit (both need CAP_SYS_RESOURCE in the host's user namespace).

`pyrunc exec` runs the same ladder without steps 1, 3b, 4, 5, 6 and 8 (its 6. GO, after the rlimits, follows 3.; its
stub closes the sync fd at 7): stage A joins every namespace of the container's init but the user namespace
(opened by the parent), does all the process steps itself (it is not in the container's pid namespace, so no
container process can see it), and forks stage B (child.exec_now), which only makes its session and fexecve()s the
stub, still in the host's user namespace; the stub joins the container's user namespace itself (userns=FD), so its
memory stays the host's (see join_userns in csrc/pyrunc_init.c).
"""

import _signal as signal  # the C module: `signal` imports enum
import errno
import os

from ..errors import PyruncError, SysError
from ..linux import O_PATH, PR_SET_CHILD_SUBREAPER, real
from . import sock as socket  # `socket` imports selectors and enum (~3 ms)
from . import waiter
from .idmap import write_id_maps

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
    idmap_fds = None  # {mount index: user namespace fd} for id-mapped mounts
    mount_fds = None  # {mount index: fd} opened by Spawn.run on the host's side: id-mapped trees, bind sources
    run_hooks = None  # run_hooks(kind, pid): prestart and createRuntime, in the parent
    run_container_hooks = None  # createContainer, in stage B before pivot_root
    exec_args = None  # exec: (stub fd, argv, env) prepared by stage A
    userns_fd = None  # exec: the container's user namespace, joined by the stub (set in stage A)
    stdio = None  # (stdin, stdout, stderr) fds for the process instead of ours (a shim's pipes); stage A dup2s them


class InitError(PyruncError):
    """The container process failed to come up; the message is the child's."""


def recv(sock):
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        # The child closed its end with a message of ours unread (it failed before reading a GO we sent): the
        # kernel reports that first, and what the child sent before it went (its ERROR) is still queued.
        data = sock.recv(65536)
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


def set_rlimits(pid, rlimits):
    """process.rlimits on pid with prlimit(2), from the parent (runc's setupRlimits at procReady)."""
    if not rlimits:
        return
    import resource

    from ..security.rlimits import RLIMITS, parse

    names = {v: k for k, v in RLIMITS.items()}
    for res, soft, hard in parse(rlimits):
        lim = tuple(resource.RLIM_INFINITY if v >= 1 << 63 else v for v in (soft, hard))
        try:
            resource.prlimit(pid, res, lim)
        except ValueError:  # CPython's word for EPERM: raising a hard limit without CAP_SYS_RESOURCE
            raise SysError("setrlimit", f"{names[res]} (soft {soft}, hard {hard})", errno.EPERM) from None
        except OSError as e:
            raise SysError("setrlimit", f"{names[res]} (soft {soft}, hard {hard})", e.errno) from None


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
        lx.lib  # noqa: B018: load the helper before forking, once
        lx.prctl(PR_SET_CHILD_SUBREAPER, 1)
        # The exec fifo is opened (O_PATH) here, by the host's root, and inherited: in a new user namespace the
        # init is an unprivileged host uid by the time it could open the path itself, and may not be able to
        # search the state directory's ancestors (runc passes it the same way).
        if self.ctx.fifo and self.ctx.fifo_fd is None:
            self.ctx.fifo_fd = os.open(self.ctx.fifo, O_PATH | os.O_CLOEXEC)
        if not self.ctx.exec_mode:
            from .idmap import idmapped_trees

            try:
                self.ctx.mount_fds = idmapped_trees(self.plan.mounts, self.ctx.idmap_fds or {}, lx)
            except BaseException:
                self._close_fifo()
                raise
        parent, kid = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid_a = os.fork()
        except BaseException:
            self._close_fifo()
            raise
        if pid_a == 0:  # stage A: never returns
            parent.close()
            child.run_stage(child.stage_a, self.plan, self.ctx, kid, lx)
        kid.close()
        try:
            if self.ctx.cgroup is not None:
                self.ctx.cgroup.add_pid(pid_a)
            if self.ctx.join_rdt is not None:  # before sync 2: B and all after it are forked inside the group
                self.ctx.join_rdt(pid_a)
            exec_mode = self.ctx.exec_mode
            if self.plan.ns_new & 0x10000000:  # CLONE_NEWUSER: sync 1.
                if recv(parent) != USERNS:
                    raise InitError("init protocol: expected userns")
                write_id_maps(pid_a, self.plan.uid_mappings, self.plan.gid_mappings)
            if self.plan.process.oom_score_adj is not None:
                set_oom_score_adj(pid_a, self.plan.process.oom_score_adj)
            try:
                parent.send(GO)  # sync 2.
            except BrokenPipeError:
                pass  # stage A failed before sync 2 (a setns, the seccomp agent): its ERROR is read next
            msg = recv(parent)  # sync 3.
            if not msg.startswith(PID):
                if exec_mode:  # the exec'd stub may fail (and say why) before stage A has reported its pid
                    raise InitError("unable to start container process: " + msg.decode(errors="replace"))
                raise InitError(f"init protocol: unexpected {msg[:20]!r}")
            self.pid = int(msg[len(PID):])
            waiter.waitpid(pid_a, 0)
            pid_a = 0
            if not exec_mode and self.plan.net_devices:  # B is in its network namespace, which runs nothing
                from .netdev import move

                move(self.plan.net_devices, self.pid)
            if not exec_mode:
                self._send_bind_sources(parent)  # sync 3b.
            if not exec_mode:
                if recv(parent) != HOOKS:  # sync 4.
                    raise InitError("init protocol: expected hooks")
                self.ctx.run_hooks("prestart", self.pid)
                self.ctx.run_hooks("createRuntime", self.pid)
                parent.send(GO)  # sync 5.
            if not exec_mode:  # exec: stage A prepared everything, its child goes straight to the stub
                msg = recv(parent)  # sync 6.
                if msg != EXEC:
                    raise InitError(f"init protocol: unexpected {msg[:20]!r}")
            set_rlimits(self.pid, self.plan.process.rlimits)
            try:
                parent.send(GO)  # sync 6.
            except BrokenPipeError:
                pass  # it failed first: its ERROR is read next
            err = parent.recv(65536)  # sync 7: EOF (exec) or READY (create) when the stub is ready
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

    def _send_bind_sources(self, sock):
        from .idmap import open_bind_sources, source_binds

        ops = source_binds(self.plan)
        if not ops:
            return
        fds = open_bind_sources(self.pid, ops)
        try:
            socket.send_fds(sock, [MOUNTS], fds)
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
