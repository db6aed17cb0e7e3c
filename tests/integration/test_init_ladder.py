"""The init protocol's round trips (the ladder in pyrunc/process/init.py), seen from the outside: every message the
container's children send the parent on the sync socket, read from `strace -f -e trace=sendto,write` of a real `run`
(the sync socket is written and read with write and read; the stub sends READY with send).
Each round trip is a wake-up of the parent and of the child; on a loaded machine each costs a scheduler slice.
Only those the setup needs may be there: USERNS (a new user namespace: the parent writes the maps), PID (stage
A's, or the init's when the parent moves net devices or opens bind sources in its namespaces), HOOKS
(prestart/createRuntime hooks, which run in the parent), EXEC (rlimits set from the parent: a user namespace
could not raise them itself) and READY.
"""

import os
import resource
import shutil
import subprocess
import uuid

import pytest

from ..conftest import require
from .test_userns import top, ubundle  # noqa: F401: fixtures, a user namespace bundle under a 0755 dir

RUNC = shutil.which("runc")
# the init protocol's messages (pyrunc/process/init.py): writes and reads of anything else (files) are not theirs
PROTOCOL = ("userns", "go", "pid", "mounts", "hooks", "exec", "ready", "error")


def _message(rest, calls):
    """The sync message of one strace line whose call is one of calls, or None."""
    if not rest.startswith(calls) or '"' not in rest:
        return None
    msg = rest.split('"', 2)[1]
    word = msg.split()[0] if msg.split() else ""
    return None if word not in PROTOCOL else "pid" if msg.startswith("pid ") else msg


def child_messages(pyrunc, b, tmp_path, events=False):
    """(the run's CompletedProcess, [what the children sent on the sync socket, in order]); events: the parent's
    "go" too, and each unshare as "unshare FLAGS", all in order."""
    require(shutil.which("strace"), "strace is not installed")
    out = tmp_path / "strace.txt"
    cid = pyrunc.new_id("l")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=sendto,write,unshare", "-e", "signal=none", "-s", "64",
                        "-o", str(out)]
                       + pyrunc.cmd("run", "--bundle", b, cid), capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    msgs = []
    for line in out.read_text().splitlines():
        if events and "unshare(" in line:
            msgs.append("unshare " + line.split("unshare(", 1)[1].split(")", 1)[0].split(" <", 1)[0])
            continue
        msg = _message(line.partition(" ")[2].strip(), ("sendto(", "write("))
        if msg is not None and (msg != "go" or events):  # "go": the parent's
            msgs.append(msg)
    return p, msgs


def test_no_user_namespace_init_sets_its_own_rlimits(pyrunc, bundle, tmp_path):
    """Without a user namespace the init has the parent's privileges: it sets its rlimits itself, right before the
    stub, and the EXEC round trip is gone; the limits are those of the config."""
    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444}]

    p, msgs = child_messages(pyrunc, bundle(["sh", "-c", "ulimit -n; ulimit -Hn"], edit=edit), tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == ["333", "444"]
    assert msgs == ["ready"], msgs


def test_default_config_says_only_ready(pyrunc, bundle, tmp_path):
    """A default config: the init forked by the parent says nothing before READY.  Its PID (sync 3) only tells the
    parent that it is in its namespaces, which the parent needs only to move linux.netDevices there or to open
    bind sources in its mount namespace; otherwise it is a wake-up of the parent for nothing."""
    p, msgs = child_messages(pyrunc, bundle(["true"]), tmp_path)
    assert p.returncode == 0, p.stderr
    assert msgs == ["ready"], msgs


def test_prestart_hook_keeps_its_round_trip(pyrunc, bundle, tmp_path):
    mark = tmp_path / "prestart-ran"

    def edit(c):
        c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {mark}"]}]}

    p, msgs = child_messages(pyrunc, bundle(["true"], edit=edit), tmp_path)
    assert p.returncode == 0, p.stderr
    assert mark.exists()
    assert msgs == ["hooks", "ready"], msgs


def test_user_namespace_rlimits_come_from_the_parent(pyrunc, ubundle, tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}]

    p, msgs = child_messages(pyrunc, ubundle(["sh", "-c", "ulimit -n; ulimit -Hn"], edit=edit), tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == [str(hard), str(hard)]
    assert msgs[:2] == ["userns", "pid"] and msgs[-2:] == ["exec", "ready"], msgs


@pytest.mark.parametrize("runtime", ["pyrunc", "runc"])
def test_hard_rlimit_above_the_callers_is_refused(pyrunc, bundle, tmp_path, runtime):
    """No CAP_SYS_RESOURCE on this host: a hard limit above the caller's is refused, now by the init itself."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    require(hard != resource.RLIM_INFINITY, "the caller's hard RLIMIT_NOFILE is unlimited")

    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]

    p, _, err = run_with(runtime, pyrunc, bundle(["true"], edit=edit), tmp_path)
    if os.geteuid() == 0 and _has_cap_sys_resource():
        pytest.skip("the caller has CAP_SYS_RESOURCE: raising the hard limit is allowed")
    assert p.returncode != 0
    assert "rlimit" in err.lower() and "operation not permitted" in err, err


def run_with(runtime, pyrunc, b, tmp_path):
    """(process, stdout, stderr) of a foreground `run` of bundle b by pyrunc or by runc (the reference)."""
    if runtime == "runc":
        require(RUNC, "runc is not installed: nothing to compare with")
        root, cid = str(tmp_path / "runc-state"), f"pyrunc-it-runc-{uuid.uuid4().hex[:8]}"
        p = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), cid], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        subprocess.run([RUNC, "--root", root, "delete", "-f", cid], capture_output=True, timeout=60)
        return p, p.stdout.decode(), p.stderr.decode()
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("r"))
    return p, p.out, p.err


def _has_cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff >> 24 & 1)


def test_namespaces_are_made_while_the_parent_works(pyrunc, bundle, tmp_path):
    """Without a new user namespace the new namespaces are made before the init waits for the parent's GO (sync 2),
    so they are made while the parent writes cgroup.procs; only a new cgroup namespace waits for GO (its root is
    the cgroup the init is in by then).  The pid namespace is the parent's unshare(CLONE_NEWPID) before it forks
    the init (no stage A here).  Each process's own order is fixed by its code; which of the two goes first is
    the scheduler's, so nothing here compares them."""
    def edit(c):
        c["linux"]["namespaces"].append({"type": "cgroup"})

    p, parent, ev = forks(pyrunc, bundle(["true"], edit=edit), tmp_path)
    assert p.returncode == 0, p.stderr
    init = next(pid for pid, e in ev if e == "ready")
    mine = [e for pid, e in ev if pid == parent]
    assert mine.index("unshare(CLONE_NEWPID)") < mine.index("fork " + init), ev
    theirs = [e for pid, e in ev if pid == init]
    unshares = [e for e in theirs if e.startswith("unshare")]
    assert len(unshares) == 2, ev
    first, second = unshares
    assert "CLONE_NEWNS" in first and "CLONE_NEWNET" in first and "CLONE_NEWCGROUP" not in first, ev
    assert "CLONE_NEWPID" not in first and second == "unshare(CLONE_NEWCGROUP)", ev
    assert theirs.index(first) < theirs.index("recv go") < theirs.index(second) < theirs.index("ready"), ev


def test_user_namespace_first_then_the_rest_after_the_maps(pyrunc, ubundle, tmp_path):
    p, ev = child_messages(pyrunc, ubundle(["true"]), tmp_path, events=True)
    assert p.returncode == 0, p.stderr
    unshares = [e for e in ev if e.startswith("unshare")]
    assert unshares[0] == "unshare CLONE_NEWUSER" and len(unshares) == 2, ev
    assert ev.index(unshares[0]) < ev.index("userns") < ev.index("go") < ev.index(unshares[1]), ev


def forks(pyrunc, b, tmp_path):
    """(run, parent pid, [(pid, event)]) with clone/unshare/setns and the sync messages, from strace -f of a run."""
    require(shutil.which("strace"), "strace is not installed")
    out = tmp_path / "strace-forks.txt"
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=sendto,recvfrom,write,read,unshare,setns,clone,clone3,execve",
                        "-e", "signal=none", "-s", "64", "-o", str(out)]
                       + pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("f")),
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    ev, parent, pending = [], None, {}
    for line in out.read_text().splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if parent is None and rest.startswith("execve("):
            parent = pid
        if rest.startswith(("clone(", "clone3(")) and "CLONE_THREAD" not in rest and "<unfinished" not in rest:
            ev.append((pid, "fork " + rest.rsplit("=", 1)[1].split()[0]))
        elif rest.startswith(("clone(", "clone3(")) and "CLONE_THREAD" not in rest:
            pending[pid] = len(ev)  # strace split the call (another process's line came between): see below
            ev.append((pid, "fork ?"))
        elif rest.startswith(("<... clone resumed>", "<... clone3 resumed>")) and pid in pending:
            ev[pending.pop(pid)] = (pid, "fork " + rest.rsplit("=", 1)[1].split()[0])
        elif rest.startswith(("unshare(", "setns(")):
            ev.append((pid, rest.split(")", 1)[0].split(" <", 1)[0] + ")"))
        elif _message(rest, ("sendto(", "write(")) is not None:
            ev.append((pid, _message(rest, ("sendto(", "write("))))
        elif _message(rest, ("recvfrom(", "<... recvfrom resumed>", "read(", "<... read resumed>")) is not None:
            ev.append((pid, "recv " + _message(rest, ("recvfrom(", "<... recvfrom resumed>", "read(",
                                                      "<... read resumed>"))))
    return p, parent, ev


def test_plain_init_is_forked_by_the_parent_itself(pyrunc, bundle, tmp_path):
    """New namespaces only (none joined, no user or time namespace, no seccomp agent): no stage A.  The parent
    unshares CLONE_NEWPID for its next child, forks the init (pid 1 there), and sets its own pid namespace back
    for its later children at once; the init makes its other namespaces itself, and says nothing before READY.
    (Inside another's user namespace, where that way back is closed, stage A does it: tests/e2e/
    test_podman_rootless.py, rootless podman runs us as root in its user namespace.)"""
    p, parent, ev = forks(pyrunc, bundle(["true"]), tmp_path)
    assert p.returncode == 0, p.stderr
    init = next(pid for pid, e in ev if e == "ready")
    assert init != parent and not any(e == "pid" for _, e in ev), ev
    mine = [e for pid, e in ev if pid == parent and not e.startswith("go")]
    # setns to our own pid namespace first (a no-op: may we come back?), then unshare, fork, and come back
    assert [m.split("(")[0] for m in mine[:4]] == ["setns", "unshare", "fork " + init, "setns"], ev
    assert mine[0] == mine[3] and mine[0].endswith("CLONE_NEWPID)") and mine[1] == "unshare(CLONE_NEWPID)", ev
    theirs = [e for pid, e in ev if pid == init]
    assert not any(e.startswith("fork") for e in theirs[:theirs.index("ready")]), ev  # no stage A, no 2nd fork
    assert theirs[0].startswith("unshare(") and "CLONE_NEWNET" in theirs[0] and "CLONE_NEWPID" not in theirs[0], ev


def test_user_namespace_keeps_stage_a(pyrunc, ubundle, tmp_path):
    p, parent, ev = forks(pyrunc, ubundle(["true"]), tmp_path)
    assert p.returncode == 0, p.stderr
    senders = {e: pid for pid, e in ev if e in ("pid", "ready")}
    assert senders["pid"] != senders["ready"], ev  # stage A reports the init's pid
    assert not any(pid == parent and e.startswith("unshare") for pid, e in ev), ev


def init_syscalls(pyrunc, b, tmp_path):
    """(run, {syscall name: count}) of what the container's init calls from its fork to its execveat of the stub,
    from strace -f of a real `run`."""
    require(shutil.which("strace"), "strace is not installed")
    out = tmp_path / "strace-all.txt"
    p = subprocess.run(["strace", "-f", "-qq", "-e", "signal=none", "-s", "16", "-o", str(out)]
                       + pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("s")), capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    lines = out.read_text().splitlines()
    init = next(line.split()[0] for line in lines if "execveat(" in line)
    counts = {}
    for line in lines:
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if pid != init or rest.startswith(("<...", "+++", "---")):
            continue
        name = rest.split("(", 1)[0]
        if name == "execveat":
            break
        counts[name] = counts.get(name, 0) + 1
    return p, counts


def test_default_init_syscall_budget(pyrunc, bundle, tmp_path):
    """The init's work between its fork and the stub is Python between syscalls, on the critical path of every
    create: the default config's must stay within a budget.  Per cgroup v1 hierarchy it makes its directory in the
    fresh tmpfs and bind-mounts it, and one recursive mount_setattr makes them all read-only (no remount of each);
    /dev and /dev/null are opened once for the device nodes and the masked paths, not once per node."""
    p, counts = init_syscalls(pyrunc, bundle(["true"]), tmp_path)
    assert p.returncode == 0, p.stderr
    with open("/proc/self/mountinfo") as f:
        hier = sum(1 for line in f if " - cgroup " in line or " - cgroup2 " in line)
    total = sum(counts.values())
    # 324 (44 mounts) on this VM's ten hierarchies before (9 a hierarchy, /dev opened per node), 213 (33) after
    assert total <= 180 + 4 * hier, (total, hier, counts)
    # one mount_setattr makes the cgroup tmpfs and its hierarchies read-only (not one each), and one each of the
    # default config's four read-only /proc paths (instead of a statfs and a remount each)
    ro_paths = 4
    assert counts.get("mount", 0) + counts.get("mount_setattr", 0) <= 25 + hier, counts
    assert counts.get("mount_setattr", 0) <= 1 + ro_paths, counts


def test_default_init_skips_redundant_syscalls(pyrunc, bundle, tmp_path):
    """What the default config's init no longer calls: statfs before each read-only path's remount (one
    mount_setattr(MOUNT_ATTR_RDONLY) on the new bind keeps its other flags itself), and the two extra calls of
    os.set_inheritable on an O_PATH fd (ioctl FIONCLEX fails there with EBADF, then F_GETFD, F_SETFD)."""
    p, counts = init_syscalls(pyrunc, bundle(["true"]), tmp_path)
    assert p.returncode == 0, p.stderr
    # statfs: the read-only root's (finish_rootfs: after pivot_root) only when root.readonly; default: true
    assert counts.get("statfs", 0) <= 1, counts
    assert counts.get("ioctl", 0) <= 2 and counts.get("fcntl", 0) <= 2, counts  # ioctl: lo's flags; fcntl: F_SETFD


@pytest.mark.parametrize("runtime", ["pyrunc", "runc"])
def test_readonly_paths_and_devices_keep_their_flags_and_owners(pyrunc, bundle, tmp_path, runtime):
    """The control for the test above, against runc: a read-only path is a read-only bind that keeps the other
    flags of the mount it is in (here /proc's; made nosuid,nodev,noexec for this test); device nodes belong to the uid and gid the config gives them (root's by default,
    a device's own uid/gid when set)."""
    def edit(c):
        for m in c["mounts"]:
            if m["destination"] == "/proc":
                m["options"] = ["nosuid", "noexec", "nodev"]
        c["linux"]["devices"] = [{"path": "/dev/fuse0", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600,
                                  "uid": 1234, "gid": 5678}]
        c["linux"].setdefault("resources", {}).setdefault("devices", []).append(
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})

    script = ("grep -E ' /proc(/sys)? ' /proc/mounts | cut -d' ' -f4; stat -c %u:%g /dev/null /dev/zero /dev/fuse0; "
              "touch /proc/sys/x 2>/dev/null || echo RO")
    p, out, err = run_with(runtime, pyrunc, bundle(["sh", "-c", script], edit=edit), tmp_path)
    assert p.returncode == 0, err
    lines = out.split()
    proc, sys_ = lines[0].split(","), lines[1].split(",")
    assert proc[0] == "rw" and {"nosuid", "nodev", "noexec"} <= set(proc), out
    assert sys_ == ["ro"] + proc[1:], out
    assert lines[2:] == ["0:0", "0:0", "1234:5678", "RO"], out
