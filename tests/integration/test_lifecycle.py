"""The container lifecycle through the real CLI: create/start/state/kill/delete/run/list, their error phrases and
exit codes, compared with runc (same bundle, runc with its own private --root) where runc is the reference."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from ..conftest import require
from .runtimes import wait_status

RUNC = shutil.which("runc")


# --- helpers -------------------------------------------------------------------------------------------

def create(pyrunc, b, cid, *extra, stdin=subprocess.DEVNULL, tmp=None, root=True):
    """`pyrunc create`: the container inherits stdio, so stdout/stderr go to files (a pipe would never see EOF)."""
    tag = cid.replace("/", "_").replace(".", "_")
    out = os.path.join(str(b), f"create-{tag}.out")
    err = os.path.join(str(b), f"create-{tag}.err")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.run(pyrunc.cmd("create", "--bundle", b, *extra, cid, root=root), stdin=stdin, stdout=fo,
                           stderr=fe, timeout=60)
    with open(out) as f:
        p.out = f.read()
    with open(err) as f:
        p.err = f.read()
    return p


class Runc:
    def __init__(self, root):
        self.root = root

    def __call__(self, *args, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.run([RUNC, "--root", self.root] + [str(a) for a in args], capture_output=True, timeout=60,
                           **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return p


@pytest.fixture
def runc(tmp_path):
    require(RUNC, "runc is not installed: nothing to compare with")
    r = Runc(str(tmp_path / "runc-state"))
    yield r
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid)


def gone(pid, timeout=10):
    """True once pid no longer exists (or is a zombie, i.e. dead but not reaped yet by its new parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


TRAP_TERM = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]


def _sigmask(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


def wait_caught(pid, sig, timeout=10):
    """True once pid has a handler for sig (SigCgt): a shell's trap is installed, no sleep needed to hope so."""
    deadline = time.monotonic() + timeout
    while not _sigmask(pid, "SigCgt") & (1 << (sig - 1)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def signalled(pid, sig):
    """True if sig is pending for pid, or pid is already dead or a zombie: right after a kill() returned, there is
    no third possibility, so this needs no sleep."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        return bool((_sigmask(pid, "SigPnd") | _sigmask(pid, "ShdPnd")) & (1 << (sig - 1)))
    except FileNotFoundError:
        return True


# --- create / start / state / delete --------------------------------------------------------------------

def test_full_lifecycle(pyrunc, bundle, tmp_path):
    b = bundle(["cat"])  # ends when its stdin (a pipe we hold) is closed
    cid = pyrunc.new_id("life")
    pidfile = tmp_path / "init.pid"
    r, w = os.pipe()
    try:
        p = create(pyrunc, b, cid, "--pid-file", pidfile, stdin=r)
    finally:
        os.close(r)
    try:
        assert p.returncode == 0, p.err
        assert p.err == "", "a successful non-tty create prints nothing on stderr"
        raw = pidfile.read_bytes()
        assert raw.isdigit(), f"pid file must be bare digits without newline: {raw!r}"
        pid = int(raw)
        s = pyrunc.state(cid)
        assert s["status"] == "created" and s["pid"] == pid > 0
        assert s["id"] == cid and s["bundle"] == str(b) and s["rootfs"] == str(b / "rootfs")
        assert list(s)[:7] == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created"]
        assert s["created"].endswith("Z")
        # the waiting init is the sealed stub, not the host's python3
        exe = os.readlink(f"/proc/{pid}/exe")
        assert exe.startswith("/memfd:pyrunc-init"), exe
        raw_state = pyrunc("state", cid, check=True).out
        assert not raw_state.endswith("\n") and raw_state.startswith('{\n  "ociVersion"')

        pyrunc("start", cid, check=True)
        s = pyrunc.state(cid)
        assert s["status"] == "running" and s["pid"] == pid
        assert os.readlink(f"/proc/{pid}/exe").endswith("/busybox")
    finally:
        os.close(w)  # cat sees EOF and exits
    s = wait_status(pyrunc, cid, "stopped")
    assert s["status"] == "stopped" and s["pid"] == 0
    p = pyrunc("delete", cid)
    assert p.returncode == 0, p.err
    p = pyrunc("state", cid)
    assert p.returncode == 1 and "container does not exist" in p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_start_twice_and_start_stopped(pyrunc, bundle):
    b = bundle(TRAP_TERM)
    cid = pyrunc.new_id("start2")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    p = pyrunc("start", cid)
    assert p.returncode == 1 and "cannot start an already running container" in p.err, p.err
    pyrunc("kill", cid, "KILL", check=True)
    assert wait_status(pyrunc, cid, "stopped")["status"] == "stopped"
    p = pyrunc("start", cid)
    assert p.returncode == 1 and "cannot start a container that has stopped" in p.err, p.err
    pyrunc("delete", cid, check=True)


def test_delete_running_needs_force(pyrunc, bundle):
    b = bundle(TRAP_TERM)
    cid = pyrunc.new_id("delrun")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    pid = pyrunc.state(cid)["pid"]
    p = pyrunc("delete", cid)
    assert p.returncode == 1
    assert f"cannot delete container {cid} that is not stopped: running" in p.err, p.err
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc("delete", "--force", cid, check=True)
    assert gone(pid)
    assert pyrunc("state", cid).returncode == 1


def test_delete_created_without_force_kills_init(pyrunc, bundle):
    b = bundle(["true"])
    cid = pyrunc.new_id("delcreated")
    assert create(pyrunc, b, cid).returncode == 0
    pid = pyrunc.state(cid)["pid"]
    assert not gone(pid, timeout=0.1)
    p = pyrunc("delete", cid)
    assert p.returncode == 0, p.err
    assert gone(pid), "delete of a created container must kill its init"
    assert "does not exist" in pyrunc("state", cid).err


# --- kill --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["9", "KILL", "sigkill"])
def test_kill_forms_sigkill(pyrunc, bundle, sig):
    # pid 1 of a pid namespace ignores signals it has no handler for, except SIGKILL: stopping `sleep` proves
    # that the signal really was SIGKILL
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("kill")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    pyrunc("kill", cid, sig, check=True)
    assert wait_status(pyrunc, cid, "stopped")["status"] == "stopped"
    pyrunc("delete", cid, check=True)


@pytest.mark.parametrize("sig", [None, "term"])
def test_kill_term_and_default(pyrunc, bundle, sig):
    # only TERM is trapped: any other catchable signal would be ignored by the pid-1 shell
    b = bundle(TRAP_TERM)
    cid = pyrunc.new_id("term")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    # a TERM sent before the trap is in place would be ignored by the pid-1 shell: wait for the trap, not a sleep
    assert wait_caught(pyrunc.state(cid)["pid"], signal.SIGTERM), "the shell never installed its TERM trap"
    pyrunc("kill", cid, *([sig] if sig else []), check=True)
    assert wait_status(pyrunc, cid, "stopped")["status"] == "stopped"
    pyrunc("delete", cid, check=True)


def test_kill_hup_is_not_term(pyrunc, bundle):
    """The negative control for the test above: a signal that is not TERM does not stop the TERM-trapping init.

    No sleep to "give HUP time": TERM is sent right after it, and a process handles its pending signals lowest
    number first, so the TERM trap's output appears only if HUP (1) did not end the shell before TERM (15) ran."""
    b = bundle(["sh", "-c", "trap 'echo got-term; exit 0' TERM; while :; do sleep 0.05; done"])
    cid = pyrunc.new_id("hup")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    pid = pyrunc.state(cid)["pid"]
    assert wait_caught(pid, signal.SIGTERM), "the shell never installed its TERM trap"
    pyrunc("kill", cid, "HUP", check=True)
    p = pyrunc("kill", cid, "NOSUCHSIG")
    assert p.returncode == 1
    pyrunc("kill", cid, "TERM", check=True)
    assert wait_status(pyrunc, cid, "stopped")["status"] == "stopped"
    assert (b / f"create-{cid}.out").read_text() == "got-term\n", "HUP stopped the shell before its TERM trap ran"
    pyrunc("delete", cid, check=True)


def test_kill_stopped_and_kill_all(pyrunc, bundle, runc):
    b = bundle(["true"])
    cid = pyrunc.new_id("killstopped")
    assert create(pyrunc, b, cid).returncode == 0
    pyrunc("start", cid, check=True)
    assert wait_status(pyrunc, cid, "stopped")["status"] == "stopped"
    p = pyrunc("kill", cid, "9")
    assert p.returncode == 1 and "container not running" in p.err, p.err
    p = pyrunc("kill", "--all", cid, "9")
    assert p.returncode == 0, p.err
    # runc, same bundle
    rid = "runc-" + cid
    r = subprocess.run([RUNC, "--root", runc.root, "create", "--bundle", str(b), rid], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0
    assert runc("start", rid).returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(runc("state", rid).out)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    rk = runc("kill", rid, "9")
    assert rk.returncode == 1 and "container not running" in rk.err, rk.err
    assert runc("kill", "--all", rid, "9").returncode == 0
    runc("delete", rid)
    pyrunc("delete", cid, check=True)


def test_missing_ids(pyrunc, runc):
    cid = pyrunc.new_id("missing")
    for args in (("delete", cid), ("state", cid), ("kill", cid, "9"), ("start", cid)):
        p, r = pyrunc(*args), runc(*args)
        assert p.returncode == r.returncode == 1, (args, p.err, r.err)
        assert "container does not exist" in p.err and "container does not exist" in r.err, (args, p.err)
    p, r = pyrunc("delete", "--force", cid), runc("delete", "--force", cid)
    assert p.returncode == r.returncode == 0, p.err


# --- ids ---------------------------------------------------------------------------------------------

def test_duplicate_id_keeps_first(pyrunc, bundle):
    b = bundle(["true"])
    cid = pyrunc.new_id("dup")
    assert create(pyrunc, b, cid).returncode == 0
    before = pyrunc.state(cid)
    p = create(pyrunc, bundle(["true"]), cid)
    assert p.returncode == 1 and f"container with id exists: {cid}" in p.err, p.err
    after = pyrunc.state(cid)
    assert after == before and after["status"] == "created"
    assert not gone(after["pid"], timeout=0.1)
    pyrunc("delete", cid, check=True)


@pytest.mark.parametrize("bad", ["a/b", "..", "", "."])
def test_invalid_ids_rejected(pyrunc, bundle, tmp_path, bad):
    b = bundle(["true"])
    p = create(pyrunc, b, bad)
    assert p.returncode == 1, p.err
    assert "container id" in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, "a")), "a/b must not create a directory"
    assert not os.path.isdir(pyrunc.root) or os.listdir(pyrunc.root) == []
    assert not os.path.exists(tmp_path / "b"), "'..' must not escape the root"


# --- run ---------------------------------------------------------------------------------------------

def test_run_stdio_passthrough(pyrunc, bundle):
    b = bundle(["cat"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("cat"), input=b"hello through stdin\n")
    assert p.returncode == 0, p.err
    assert p.out == "hello through stdin\n"


def test_run_exit_code(pyrunc, bundle, runc):
    b = bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("exit"))
    r = runc("run", "--bundle", b, "runc-exit")
    assert p.returncode == r.returncode == 3, p.err
    assert (p.out, p.err) == (r.out, r.err) == ("out\n", "err\n")


def test_run_killed_by_signal(pyrunc, bundle, runc):
    # no pid namespace: pid 1 of a namespace cannot SIGKILL itself, an ordinary process can
    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    b = bundle(["sh", "-c", "kill -9 $$"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("sig"))
    r = runc("run", "--bundle", b, "runc-sig")
    assert p.returncode == r.returncode == 128 + 9, (p.returncode, p.err, r.returncode, r.err)


def test_run_forwards_signals(pyrunc, bundle):
    b = bundle(["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
    proc = subprocess.Popen(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("fwd")), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        # (never read stderr here: a container left behind would hold the pipe open)
        assert proc.wait(timeout=20) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_run_detached(pyrunc, bundle):
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("detach")
    p = subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    s = pyrunc.state(cid)
    assert s["status"] == "running" and s["pid"] > 0
    pyrunc("delete", "--force", cid, check=True)
    assert gone(s["pid"])
    assert pyrunc("state", cid).returncode == 1


def test_run_keep(pyrunc, bundle):
    b = bundle(["true"])
    cid = pyrunc.new_id("keep")
    p = pyrunc("run", "--keep", "--bundle", b, cid)
    assert p.returncode == 0, p.err
    s = pyrunc.state(cid)
    assert s["status"] == "stopped" and s["pid"] == 0
    pyrunc("delete", cid, check=True)
    # without --keep the container is gone after a foreground run
    cid2 = pyrunc.new_id("nokeep")
    assert pyrunc("run", "--bundle", b, cid2).returncode == 0
    assert "does not exist" in pyrunc("state", cid2).err


# --- list --------------------------------------------------------------------------------------------

def test_list(pyrunc, bundle, runc):
    p = pyrunc("list", "--format", "json")
    r = runc("list", "--format", "json")
    assert p.returncode == 0 and p.out == r.out == "null\n"
    assert pyrunc("list").out.split() == runc("list").out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED",
                                                                       "OWNER"]
    b = bundle(["true"])
    cid = pyrunc.new_id("list")
    assert create(pyrunc, b, cid).returncode == 0
    s = pyrunc.state(cid)
    items = json.loads(pyrunc("list", "--format", "json", check=True).out)
    assert len(items) == 1
    assert items[0]["id"] == cid and items[0]["status"] == "created" and items[0]["pid"] == s["pid"]
    assert items[0]["owner"] == "root"
    lines = pyrunc("list", check=True).out.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert lines[1].split() == [cid, str(s["pid"]), "created", str(b), s["created"], "root"]
    assert pyrunc("list", "-q", check=True).out == cid + "\n"
    pyrunc("delete", cid, check=True)


# --- failures leave nothing behind ---------------------------------------------------------------------

def _nothing_left(pyrunc, cid):
    assert not os.path.exists(os.path.join(pyrunc.root, cid)), "state dir left after a failed create"
    for base in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        assert not os.path.exists(os.path.join(base, cid)), f"cgroup {base}/{cid} left after a failed create"


def test_bad_config_field(pyrunc, bundle):
    b = bundle(["true"], edit=lambda c: c["process"]["user"].__setitem__("uid", "x"))
    cid = pyrunc.new_id("badcfg")
    p = create(pyrunc, b, cid)
    assert p.returncode == 1
    assert "process.user.uid" in p.err, p.err
    _nothing_left(pyrunc, cid)


@pytest.mark.parametrize("prog,phrase", [("no-such-binary", "executable file not found in $PATH"),
                                         ("/no/such/binary", "no such file or directory")])
def test_missing_binary(pyrunc, bundle, runc, prog, phrase):
    b = bundle([prog])
    cid = pyrunc.new_id("nobin")
    p = create(pyrunc, b, cid)
    assert p.returncode == 1
    assert phrase in p.err, p.err
    _nothing_left(pyrunc, cid)
    r = runc("create", "--bundle", b, "runc-nobin")
    assert r.returncode == 1 and phrase in r.err
    # the same text as runc from the binary name on (the text log format escapes the quotes)
    mine = p.err.replace('\\"', '"')
    assert f'exec: "{prog}"' in mine, mine
    theirs = r.err.replace('\\"', '"')
    assert mine.split(f'exec: "{prog}"')[1].rstrip('"\n') == theirs.split(f'exec: "{prog}"')[1].rstrip('"\n')


def test_log_json_last_line_is_the_error(pyrunc, bundle, tmp_path):
    b = bundle(["no-such-binary"])
    cid = pyrunc.new_id("log")
    log = tmp_path / "log.json"
    p = subprocess.run(pyrunc.argv + ["--root", pyrunc.root, "--log", str(log), "--log-format", "json", "create",
                                      "--bundle", str(b), cid], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    assert p.returncode == 1
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and set(last) >= {"level", "msg", "time"}
    assert "executable file not found in $PATH" in last["msg"]
    assert "executable file not found in $PATH" in p.stderr.decode(), "fatal errors also go to stderr"
    _nothing_left(pyrunc, cid)


def test_global_flags_go_forms(pyrunc, bundle):
    b = bundle(["true"])
    cid = pyrunc.new_id("goflags")
    p = subprocess.run(pyrunc.argv + [f"--root={pyrunc.root}", "create", "-bundle", str(b), cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    p = pyrunc("-root", pyrunc.root, "state", cid, root=False)
    assert p.returncode == 0, p.err
    assert json.loads(p.out)["status"] == "created"
    p = pyrunc("--root", pyrunc.root, "--log-format=text", "delete", cid, "--force=false", root=False)
    assert p.returncode == 0, p.err
    assert pyrunc("state", cid).returncode == 1


# --- a recycled pid ----------------------------------------------------------------------------------

def test_recycled_pid_is_not_the_container(pyrunc, bundle):
    from pyrunc.container.state import proc_start_time

    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        cid = pyrunc.new_id("recycled")
        d = os.path.join(pyrunc.root, cid)
        os.makedirs(d)
        real_start = proc_start_time(sleeper.pid)[1]
        doc = {"ociVersion": "1.2.0", "id": cid, "bundle": str(bundle(["true"])), "rootfs": "/nonexistent",
               "created": "2026-01-01T00:00:00.000000000Z", "init_pid": sleeper.pid, "init_start": real_start + 1,
               "cgroup_paths": {}, "cgroup_created": [], "hooks": {}, "annotations": {}}
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump(doc, f)
        s = pyrunc.state(cid)
        assert s["status"] == "stopped" and s["pid"] == 0
        p = pyrunc("kill", cid, "9")
        assert p.returncode == 1 and "container not running" in p.err
        pyrunc("delete", cid, check=True)
        assert not signalled(sleeper.pid, signal.SIGKILL), "an unrelated process with the recorded pid was signalled"
        # the control: with the right start time the same pid IS the container's init
        os.makedirs(d)
        doc["init_start"] = real_start
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump(doc, f)
        assert pyrunc.state(cid)["status"] == "running"
        pyrunc("kill", cid, "9", check=True)
        assert sleeper.wait(timeout=10) == -9
        pyrunc("delete", cid, check=True)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()


def test_stderr_with_log_file_is_the_bare_message_like_runc(pyrunc, tmp_path):
    """With --log FILE, runc prints only the message on stderr; the log gets the structured line."""
    log = tmp_path / "err.json"
    p = pyrunc("--root", pyrunc.root, "--log", str(log), "--log-format", "json", "state", "nope", root=False)
    r = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "--log", str(tmp_path / "runc.json"),
                        "--log-format", "json", "state", "nope"], capture_output=True, timeout=30)
    assert p.returncode == r.returncode == 1
    assert p.err == r.stderr.decode() == "container does not exist\n"
    assert json.loads(log.read_text().splitlines()[-1])["msg"] == "container does not exist"


def test_run_whose_start_fails_leaves_nothing(pyrunc, bundle):
    """A failing startContainer hook fails `run`; the created container is removed (the fixture checks for state
    dirs, cgroups and mounts), and the caller is not left waiting on a blocked init holding its stdout."""
    def edit(c):
        c["hooks"] = {"startContainer": [{"path": "/bin/false"}]}

    b = bundle(["true"], edit=edit)
    cid = pyrunc.new_id("startfail")
    p = pyrunc("run", "--bundle", b, cid, timeout=30)
    assert p.returncode == 1
    assert "startContainer" in p.err
    assert pyrunc("state", cid).returncode == 1


# --- kill with signal 0 --------------------------------------------------------------------------------

def _signal_zero_walk(tool, b, cid, create_cmd, state):
    """kill ID 0 / kill --all ID 0 through created, running, stopped and missing; returns [(step, rc, error)]."""
    out = []

    def step(name, *args):
        p = tool(*args)
        out.append((name, p.returncode, p.err.strip().rpartition("msg=")[2].strip('"') if p.returncode else ""))

    assert create_cmd().returncode == 0
    for flags in ((), ("--all",)):
        step(f"created {flags}", "kill", *flags, cid, "0")
    assert tool("start", cid).returncode == 0
    for flags in ((), ("--all",), ("-a",)):
        step(f"running {flags}", "kill", *flags, cid, "0")
    assert state(cid)["status"] == "running", "signal 0 must not disturb the container"
    assert tool("kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 10
    while state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop after SIGKILL"
        time.sleep(0.02)
    for flags in ((), ("--all",)):
        step(f"stopped {flags}", "kill", *flags, cid, "0")
    assert tool("delete", cid).returncode == 0
    for flags in ((), ("--all",)):
        step(f"missing {flags}", "kill", *flags, cid, "0")
    return out


def test_kill_signal_zero_checks_the_container_like_runc(pyrunc, bundle, runc):
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("sig0")
    ours = _signal_zero_walk(pyrunc, b, cid, lambda: create(pyrunc, b, cid), pyrunc.state)
    rid = "runc-" + cid
    theirs = _signal_zero_walk(
        runc, b, rid,
        lambda: subprocess.run([RUNC, "--root", runc.root, "create", "--bundle", str(b), rid], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60),
        lambda i: json.loads(runc("state", i).out))
    assert ours == theirs
    assert [rc for _, rc, _ in ours] == [0, 0, 0, 0, 0, 1, 0, 1, 1], ours
    assert ours[5][2] == "container not running" and ours[7][2] == "container does not exist", ours


# --- the init protocol under scheduling pressure ---------------------------------------------------------

SLOW_STAGE_A = """
import os, sys, time
from pyrunc.container.lifecycle import Runtime
from pyrunc.errors import Logger

top = os.getpid()
real_fork = os.fork


def fork():
    pid = real_fork()
    if pid and os.getpid() != top:  # stage A, just after forking stage B: descheduled, as on a loaded machine
        time.sleep(1)
    return pid


os.fork = fork
Runtime(sys.argv[1], Logger()).create(sys.argv[2], sys.argv[3])
print("created")
"""


def test_create_when_stage_a_is_slow_after_forking_stage_b(pyrunc, bundle):
    """Stage A reports B's pid (sync 3) after the fork; B says "hooks" (sync 4) once its rootfs is prepared.  Both
    write the same socket, so B must not speak before A has: a stage A descheduled right after the fork (seen on
    a busy machine: `init protocol: unexpected b'hooks'`) must not break create.  The delay is injected."""
    import sys

    b = bundle(["sleep", "30"])
    cid = "slow-a"
    out, err = b / "create.out", b / "create.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:  # files: the init inherits them, a pipe would never see EOF
        p = subprocess.run([sys.executable, "-c", SLOW_STAGE_A, pyrunc.root, cid, str(b)],
                           stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=60)
    assert p.returncode == 0 and out.read_text() == "created\n", (p.returncode, out.read_text(), err.read_text())
    assert pyrunc.state(cid)["status"] == "created"
    assert pyrunc("delete", "--force", cid).returncode == 0


RACING_DELETE = """
import subprocess, sys
from pyrunc.container import lifecycle
from pyrunc.errors import Logger

root, cid, bundle, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
real_wait = lifecycle._wait_empty


def wait_empty(mgr, *a, **k):
    # while this delete waits without the lock: another delete finishes the container, and a new one of the
    # same id is created (containerd reusing an id)
    for verb in (["delete", "--force", cid], ["create", "--bundle", bundle, cid]):
        subprocess.run(argv + ["--root", root] + verb, check=True, timeout=60, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
    return real_wait(mgr, *a, **k)


lifecycle._wait_empty = wait_empty
lifecycle.Runtime(root, Logger()).delete(cid, force=True)
print("deleted")
"""


def test_delete_never_acts_on_a_new_container_of_the_same_id(pyrunc, bundle):
    """delete waits for the processes without the lock and then locks the container again: by then another delete
    may have removed it and a create made a new one under the same id.  The second lock must be on the
    directory the first one held, or this delete removes (part of) the new container's cgroups and state."""
    import sys

    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("race")
    assert create(pyrunc, b, cid).returncode == 0
    with open(b / "d.out", "wb") as fo, open(b / "d.err", "wb") as fe:  # files: the new init inherits them
        p = subprocess.run([sys.executable, "-c", RACING_DELETE, pyrunc.root, cid, str(b)] + pyrunc.argv,
                           stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0 and (b / "d.out").read_text() == "deleted\n", (b / "d.err").read_text()
    assert pyrunc.state(cid)["status"] == "created"
    with open(os.path.join(pyrunc.root, cid, "state.json")) as f:
        paths = json.load(f)["cgroup_paths"]
    assert paths and all(os.path.isdir(d) for d in paths.values()), paths
