"""SCMP_ACT_NOTIFY with linux.seccomp.listenerPath: a seccomp agent (here, a thread of the test) gets the
listener fd and runc's ContainerProcessState over its unix socket, and answers the container's syscalls.

The agent listens in the test's temp dir; for every connection it reads the JSON message and the SCM_RIGHTS fd,
checks that the fd is a seccomp listener, and answers each notification with EROFS through
SECCOMP_IOCTL_NOTIF_RECV / SECCOMP_IOCTL_NOTIF_SEND.  Every pyrunc call has a timeout, so a broken hand-over fails
the test instead of hanging it; the fixture's delete --force then kills what is left.
"""

import errno
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import threading

import pytest

# <linux/seccomp.h>: _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
NOTIF_SIZE, RESP_SIZE = 80, 24
SECCOMP_IOCTL_NOTIF_RECV = 0xC0000000 | NOTIF_SIZE << 16 | ord("!") << 8 | 0
SECCOMP_IOCTL_NOTIF_SEND = 0xC0000000 | RESP_SIZE << 16 | ord("!") << 8 | 1


class Agent:
    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.received = []  # (message dict, readlink of the fd, NSpid line of the sender)
        self.answered = []  # syscall numbers
        self.errors = []
        self.stop = threading.Event()
        self.fds = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                self._accept()
                self._serve(0.05)
        except Exception as e:  # noqa: BLE001: reported by the test
            self.errors.append(repr(e))

    def _accept(self):
        try:
            conn, _ = self.srv.accept()
        except socket.timeout:
            return
        with conn:
            conn.settimeout(10)
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
            while True:
                more = conn.recv(1 << 20)
                if not more:
                    break
                data += more
        msg = json.loads(data)
        assert len(fds) == 1, fds
        link = os.readlink(f"/proc/self/fd/{fds[0]}")
        nspid = ""
        try:
            with open(f"/proc/{msg['pid']}/status") as f:
                nspid = next((line.split(":", 1)[1].split() for line in f if line.startswith("NSpid:")), "")
        except OSError:
            pass
        self.received.append((msg, link, nspid))
        self.fds.append(fds[0])

    def _serve(self, timeout):
        if not self.fds:
            return
        poll = select.poll()
        for fd in self.fds:
            poll.register(fd, select.POLLIN)
        for fd, ev in poll.poll(timeout * 1000):
            if ev & select.POLLIN:
                req = bytearray(NOTIF_SIZE)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req)
                except OSError as e:
                    if e.errno == errno.ENOENT:  # the task died meanwhile
                        continue
                    raise
                nid, _pid, _flags, nr = struct.unpack_from("QIIi", req)
                resp = bytearray(struct.pack("QqiI", nid, 0, -errno.EROFS, 0))
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise
                self.answered.append(nr)
            elif ev & (select.POLLHUP | select.POLLERR):
                self.fds.remove(fd)
                os.close(fd)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.srv.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def agent(tmp_path):
    a = Agent(str(tmp_path / "agent.sock"))
    yield a
    a.close()


def notify_config(agent_path, metadata="hello agent"):
    def edit(cfg):
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent_path, "listenerMetadata": metadata,
            "architectures": ["SCMP_ARCH_X86_64"] if os.uname().machine == "x86_64" else [],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        cfg["annotations"] = {"org.example.test": "notify"}
    return edit


def test_init_listener_fd_and_state_reach_agent(pyrunc, bundle, agent):
    b = bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?; test -d /tmp/x || echo absent"], edit=notify_config(agent.path))
    cid = pyrunc.new_id("sn")
    p = pyrunc("run", "--bundle", b, cid, timeout=30)
    assert not agent.errors, agent.errors
    assert p.returncode == 0, p.err
    assert "Read-only file system" in p.err or "read-only" in p.err.lower(), p.err
    assert "rc=1" in p.out and "absent" in p.out, p.out
    assert agent.answered, "the agent answered no notification"
    assert len(agent.received) == 1
    msg, link, nspid = agent.received[0]
    assert link == "anon_inode:seccomp notify"
    assert msg["fds"] == ["seccompFd"]
    assert msg["metadata"] == "hello agent"
    assert isinstance(msg["ociVersion"], str) and msg["ociVersion"]
    st = msg["state"]
    assert (st["id"], st["status"], st["bundle"]) == (cid, "creating", str(b))
    assert st["annotations"] == {"org.example.test": "notify"}
    assert st["pid"] == msg["pid"]  # the init's own state
    # the host's pid of the container's init, which is pid 1 in its own pid namespace
    assert nspid and nspid[0] == str(msg["pid"]) and nspid[-1] == "1", nspid


def test_exec_gets_its_own_listener(pyrunc, bundle, agent):
    b = bundle(["sleep", "300"], edit=notify_config(agent.path, metadata=""))
    cid = pyrunc.new_id("sn")
    r = subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    try:
        assert r.returncode == 0
        init_pid = pyrunc.state(cid)["pid"]
        p = pyrunc("exec", cid, "sh", "-c", "mkdir /tmp/y; echo rc=$?", timeout=30)
        assert not agent.errors, agent.errors
        assert p.returncode == 0, p.err
        assert "rc=1" in p.out, (p.out, p.err)
        assert len(agent.received) == 2
        msg, link, _ = agent.received[1]
        assert link == "anon_inode:seccomp notify"
        assert "metadata" not in msg  # omitted when empty, as runc's omitempty
        assert msg["state"]["status"] == "running"
        assert msg["state"]["pid"] == init_pid
        assert msg["pid"] != init_pid
    finally:
        pyrunc("delete", "--force", cid)


def test_agent_not_listening_fails_create_cleanly(pyrunc, bundle, tmp_path):
    b = bundle(["true"], edit=notify_config(str(tmp_path / "nobody-listens.sock")))
    cid = pyrunc.new_id("sn")
    p = pyrunc("create", "--bundle", b, cid, timeout=30)
    assert p.returncode != 0
    assert "connect to seccomp agent" in p.err and "nobody-listens.sock" in p.err, p.err
    assert pyrunc("state", cid).returncode != 0


def test_notify_without_listener_path_is_a_config_error(pyrunc, bundle, tmp_path):
    def edit(cfg):
        notify_config("x")(cfg)
        del cfg["linux"]["seccomp"]["listenerPath"]
    b = bundle(["true"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("sn"), timeout=30)
    assert p.returncode != 0
    assert "linux.seccomp.listenerPath" in p.err, p.err
