"""M2 for the container's init: a process that holds CAP_SYS_PTRACE in the init's user namespace and sees its pid
must not reach the init before it runs the user's program.  The Kubernetes userns pod case: container A (the
pod's sandbox) has the user namespace and the pid namespace, container B joins both and stays `created`.

__ptrace_may_access lets a tracer through a non-dumpable target only if it has CAP_SYS_PTRACE in the target
mm's user_ns, which execve fixes.  Reading /proc/<pid>/environ takes the same check as PTRACE_ATTACH (busybox has
no ptrace tool; the target is the same, /proc/<pid>/mem is the same check again).  runc's init was exec'd on the
host, so its mm belongs to the host's user namespace until it runs the user's program: the same bundle under
runc 1.1.5 is the reference.
"""

import os
import socket
import subprocess
import uuid

import pytest

from .test_userns import MAPS, RUNC, SENDMSG, HoldingAgent, _wait, detached, release, top, ubundle  # noqa: F401

SECRET = "SECRET=b-init-env"


def _sandbox(pyrunc, ubundle):
    """Container A: a new user namespace and pid namespace, CAP_SYS_PTRACE in its capability sets."""
    def edit(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYS_PTRACE")

    cid = pyrunc.new_id("pod")
    pid = detached(pyrunc, ubundle(["sleep", "100"], edit=edit), cid)
    return cid, pid


def _joiner(ubundle, pid, edit=None, maps=False):
    """Container B's bundle: joins A's user and pid namespaces (no id maps of its own: the namespace has them;
    runc 1.1.5 wants them anyway: maps=True)."""
    def join(c):
        if not maps:
            del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] not in ("user", "pid")]
        c["linux"]["namespaces"] += [{"type": "user", "path": f"/proc/{pid}/ns/user"},
                                     {"type": "pid", "path": f"/proc/{pid}/ns/pid"}]
        c["process"]["env"].append(SECRET)
        if edit:
            edit(c)

    return ubundle(["sleep", "100"], edit=join)


def _nspid(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return status["NSpid"].split()[-1], int(status["CapEff"], 16)


def _probe(pyrunc, pod, nspid):
    """From a process `exec`'d into A (root of the user namespace, CAP_SYS_PTRACE): read B's init's environ."""
    p = pyrunc("exec", pod, "sh", "-c", f"cat /proc/{nspid}/environ; echo \" rc=$?\"", timeout=30)
    assert p.returncode == 0, p.err
    return p.out + p.err


def _assert_denied(probe):
    assert SECRET not in probe, f"a process of the pod read the created init's memory: {probe!r}"
    assert "rc=1" in probe and "ermission denied" in probe, probe


def _create(argv, b):
    """create with stdio that is not a pipe we would wait on: the created init inherits it."""
    err = os.path.join(b, "create.err")
    with open(err, "wb") as f:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    assert p.returncode == 0, open(err).read()


def _read(f):
    f.seek(0)
    return f.read().decode(errors="replace")


def _runc_created(b, root):
    cid = f"pyrunc-it-runc-{uuid.uuid4().hex[:8]}"
    _create([RUNC, "--root", root, "create", "--bundle", b, cid], b)
    return cid


def test_created_init_in_a_joined_userns_cannot_be_read_by_a_pod_peer(pyrunc, ubundle, top):
    """B waits on its exec fifo (created): a peer in A must not read or trace it (runc: Permission denied)."""
    pod, pid = _sandbox(pyrunc, ubundle)
    b = _joiner(ubundle, pid)
    cid = pyrunc.new_id("joiner")
    _create(pyrunc.cmd("create", "--bundle", b, cid), b)
    init = pyrunc.state(cid)["pid"]
    nspid, _ = _nspid(init)
    _assert_denied(_probe(pyrunc, pod, nspid))
    # a non-dumpable task's /proc files belong to the root of its mm's user namespace: 0 is the host's, 100000
    # would be the container's (the mm the kernel gave the stub, not just this one check)
    assert os.stat(f"/proc/{init}/environ").st_uid == 0
    if RUNC:
        root = os.path.join(top, "runc-state")
        rcid = _runc_created(_joiner(ubundle, pid, maps=True), root)
        try:
            rpid = int(subprocess.run([RUNC, "--root", root, "state", rcid], capture_output=True,
                                      timeout=60).stdout.decode().split('"pid": ')[1].split(",")[0])
            _assert_denied(_probe(pyrunc, pod, _nspid(rpid)[0]))
        finally:
            subprocess.run([RUNC, "--root", root, "delete", "-f", rcid], capture_output=True, timeout=60)


@pytest.mark.skipif(SENDMSG is None, reason="sendmsg syscall number not known for this architecture")
def test_created_init_before_its_drop_cannot_be_read_by_a_pod_peer(pyrunc, ubundle, top):
    """The window itself: B's init holds every capability (its seccomp agent holds it in sendmsg, after the filter
    and before the drop, as in test_userns.test_exec_stub_cannot_be_ptraced_before_it_drops)."""
    pod, pid = _sandbox(pyrunc, ubundle)
    agent = HoldingAgent(os.path.join(top, "agent.sock"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # the agent drains its first connection
            s.connect(agent.path)
        _wait(lambda: agent.conns == 1, "the agent to take the first connection")

        def edit(c):
            c["process"]["noNewPrivileges"] = False
            c["linux"]["seccomp"] = {
                "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path, "listenerMetadata": "x" * 500_000,
                "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}

        b = _joiner(ubundle, pid, edit)
        cid = pyrunc.new_id("joiner")
        errf = open(os.path.join(b, "create.err"), "w+b")
        create = subprocess.Popen(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=errf)
        try:
            def held():
                if create.poll() is not None:
                    raise AssertionError(f"create exited {create.returncode} early: {_read(errf)}")
                for d in os.listdir("/proc"):
                    if not d.isdigit():
                        continue
                    try:
                        if os.readlink(f"/proc/{d}/exe").startswith("/memfd:pyrunc-init") and \
                                os.readlink(f"/proc/{d}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid") and \
                                open(f"/proc/{d}/syscall").read().split()[0] == str(SENDMSG):
                            return int(d)
                    except (OSError, IndexError):
                        pass
                return None

            init = _wait(held, "B's init to block in sendmsg")
            nspid, caps = _nspid(init)
            probe = _probe(pyrunc, pod, nspid)
        finally:
            release(agent, create)
        assert create.returncode == 0, _read(errf)
        errf.close()
        assert caps & (1 << 19) and caps & (1 << 21), f"the probe must hit the window: CapEff {caps:x}"
        _assert_denied(probe)
    finally:
        agent.close()


def test_created_init_in_a_new_userns_cannot_be_read_by_an_exec(pyrunc, ubundle, top):
    """B has its own user namespace; a process `exec`'d into it while it is created, with CAP_SYS_PTRACE, reads
    /proc/1/environ (runc 1.1.5 allows exec into a created container as well, and denies the read)."""
    def edit(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYS_PTRACE")
        c["process"]["env"].append(SECRET)

    b = ubundle(["sleep", "100"], edit=edit)
    cid = pyrunc.new_id("created")
    _create(pyrunc.cmd("create", "--bundle", b, cid), b)
    _assert_denied(_probe(pyrunc, cid, 1))
    if RUNC:
        root = os.path.join(top, "runc-state")
        rcid = _runc_created(b, root)
        try:
            p = subprocess.run([RUNC, "--root", root, "exec", rcid, "sh", "-c", "cat /proc/1/environ; echo \" rc=$?\""],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr
            _assert_denied((p.stdout + p.stderr).decode(errors="replace"))
        finally:
            subprocess.run([RUNC, "--root", root, "delete", "-f", rcid], capture_output=True, timeout=60)


def test_created_init_cannot_be_read_when_the_maps_contain_host_root(pyrunc, ubundle):
    """The user namespace maps the host's root (0 -> 0): its root could read a memfd of host root's through
    CAP_DAC_OVERRIDE, so the stub's owner must be an id that no map holds."""
    def edit(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYS_PTRACE")
        c["process"]["env"].append(SECRET)
        c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

    b = ubundle(["sleep", "100"], edit=edit)
    cid = pyrunc.new_id("hostroot")
    _create(pyrunc.cmd("create", "--bundle", b, cid), b)
    _assert_denied(_probe(pyrunc, cid, 1))
