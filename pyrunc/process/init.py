"""The init protocol: how `pyrunc create` (the parent) brings up a container's init process.

  parent (pyrunc create/run)              stage A (fork)                      stage B (init; pid 1 in a new pid ns)
  --------------------------              --------------                      -------------------------------------
  socketpair(SEQPACKET); subreaper
  fork ---------------------------------> non-dumpable; [seccomp agent: connect
                                          to listenerPath, on the host]; setns joined ns
  cgroup: add A                           (user first, mount last)
                                          [new user ns] unshare(NEWUSER)
         <------------- 1. USERNS -------
  [write uid_map/gid_map of A]
         -------------- 2. GO ---------->
                                          unshare(other new namespaces)
                                          fork ---------------------------->  non-dumpable; setsid; keyring; lo up;
         <------------- 3. PID <B> ------ [agent: state JSON with                sysctl; oom_score_adj;
                                          B's pid into B's pipe]; exit(0)
  reap A (B re-parents to us: subreaper)                                       mounts in the rootfs, by fd;
                                                                               devices, /dev symlinks
         <-------------------------------------------------- 4. HOOKS -------
  prestart + createRuntime hooks
         --------------------------------------------------- 5. GO -------->
                                                                               createContainer hooks; hostname;
                                                                               pivot_root; readonly, masked paths;
                                                                               cwd, rlimits, umask; PATH lookup;
                                                                               scheduler, ioprio, personality,
                                                                               cpu affinity (sched.py)
         <-------------------------------------------------- 6. EXEC -------
                                                                               fexecve(sealed pyrunc-init) which sets
                                                                               ids, caps, nnp, seccomp (listener fd
                                                                               to the agent), then closes
         <-------------------------------------------------- 7. EOF --------   the sync fd (ready) or writes an error;
  write state.json, pid file; exit                                             then waits on exec.fifo for `start`

Any stage may instead send ERROR <message>; the parent then kills what it started and reports the message once.
Stage code is in child.py; the numbers above appear as "sync N" comments at both ends.

`pyrunc exec` runs the same ladder without steps 1, 4, 5 and 6: stage A joins every namespace of the container's
init (opened by the parent, user first, mount last), does all the process steps itself (it is not in the
container's pid namespace, so no container process can see it), and forks stage B (child.exec_now), which only
makes its session and fexecve()s the stub.
"""

import os
import signal
import socket

from ..errors import PyruncError
from ..linux import O_PATH, PR_SET_CHILD_SUBREAPER, real
from . import waiter
from .idmap import write_id_maps

USERNS, GO, PID, HOOKS, EXEC, ERROR = b"userns", b"go", b"pid ", b"hooks", b"exec", b"error "


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
    idmap_fds = None  # {mount index: user namespace fd} for id-mapped mounts
    run_hooks = None  # run_hooks(kind, pid): prestart and createRuntime, in the parent
    run_container_hooks = None  # createContainer, in stage B before pivot_root
    exec_args = None  # exec: (stub fd, argv, env) prepared by stage A
    stdio = None  # (stdin, stdout, stderr) fds for the process instead of ours (a shim's pipes); stage A dup2s them


class InitError(PyruncError):
    """The container process failed to come up; the message is the child's."""


def recv(sock):
    data = sock.recv(65536)
    if not data:
        raise InitError("container init process exited before it was set up")
    if data.startswith(ERROR):
        raise InitError("unable to start container process: " + data[len(ERROR):].decode(errors="replace"))
    return data


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
            exec_mode = self.ctx.exec_mode
            if self.plan.ns_new & 0x10000000:  # CLONE_NEWUSER: sync 1.
                if recv(parent) != USERNS:
                    raise InitError("init protocol: expected userns")
                write_id_maps(pid_a, self.plan.uid_mappings, self.plan.gid_mappings)
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
            err = parent.recv(65536)  # sync 7: EOF when the stub is ready
            if err:
                raise InitError("unable to start container process: " + err.decode(errors="replace"))
            return self.pid
        except BaseException:
            _kill_reap(pid_a)
            _kill_reap(self.pid)
            raise
        finally:
            parent.close()
            self._close_fifo()

    def _close_fifo(self):
        if self.ctx.fifo_fd is not None:
            os.close(self.ctx.fifo_fd)
            self.ctx.fifo_fd = None
