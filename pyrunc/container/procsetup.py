"""What a container process needs prepared in pyrunc's own process before the init protocol starts: the
capability masks and seccomp program for the stub, the seccomp agent's state, socket-activation fds, and the
pidfd handed to --pidfd-socket.  Shared by create and exec."""

from .. import osx as os
from ..errors import ConfigError, PyruncError


def _security(proc, cfg, log):
    """(capability masks or None, seccomp program fd or None, seccomp flags) for the stub."""
    from ..security import caps as capmod

    masks, warnings = capmod.masks(proc.capabilities)
    for w in warnings:
        log.warning(w)
    seccomp = (cfg.get("linux") or {}).get("seccomp")
    if not seccomp:
        return masks, None, None
    from ..security.seccomp import compile as compile_seccomp

    prog = compile_seccomp(seccomp)
    if prog is None:
        return masks, None, None
    if prog.ignored:  # names this libseccomp does not know: skipped, as runc does, and said so under --debug
        log.debug(f"seccomp: ignoring syscalls unknown to libseccomp: {', '.join(prog.ignored)}")
    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    os.write(fd, prog.bpf)
    os.lseek(fd, 0, os.SEEK_SET)
    return masks, fd, prog.flags


def _spec_version():
    from .. import OCI_VERSION

    return OCI_VERSION


def seccomp_notify(cfg, state):
    """What stage A needs to hand the seccomp agent its listener fd (see child.notify_connect), or None when no
    rule is SCMP_ACT_NOTIFY.  runc fails such a container at start ("seccomp listenerPath is not set"); pyrunc
    refuses it before any side effect.  runc forbids NOTIFY on write(2), which its init uses after loading the
    filter; pyrunc-init uses sendmsg(2) there instead (to pass the fd before the agent has it), so NOTIFY on
    sendmsg would block the container forever and is refused the same way."""
    sc = (cfg.get("linux") or {}).get("seccomp") or {}
    notify = False
    for i, call in enumerate(sc.get("syscalls") or ()):
        if isinstance(call, dict) and call.get("action") == "SCMP_ACT_NOTIFY":
            notify = True
            names = call.get("names") or ()
            if "sendmsg" in names:
                raise ConfigError(f"linux.seccomp.syscalls.{i}.names.{list(names).index('sendmsg')}: "
                                  f"SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall")
    if not notify:
        return None
    path = sc.get("listenerPath")
    if not path:
        raise ConfigError("linux.seccomp.listenerPath: seccomp listenerPath is not set (SCMP_ACT_NOTIFY needs an "
                          "agent to send the listener fd to)")
    metadata = sc.get("listenerMetadata") or ""
    if len(metadata.encode(errors="replace")) > 512 * 1024:  # the whole message must fit a pipe (and pyrunc-init)
        raise ConfigError("linux.seccomp.listenerMetadata: longer than 512 KiB")
    return {"path": path, "metadata": metadata, "version": _spec_version(), "state": state}


def listen_fds():
    """systemd socket activation meant for us (LISTEN_PID is our pid): how many fds from 3 on to pass along."""
    if os.getenv("LISTEN_PID") != str(os.getpid()):
        return 0
    try:
        return max(0, int(os.getenv("LISTEN_FDS", "0")))
    except ValueError:
        return 0


def send_pidfd(path, pid):
    """--pidfd-socket: one SCM_RIGHTS message carrying a pidfd of the process (runc 1.2)."""
    import socket

    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
                socket.send_fds(s, [b"pidfd"], [pidfd])
            except OSError as e:
                raise PyruncError(f"send pidfd to {path}: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(pidfd)
