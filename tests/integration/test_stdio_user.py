"""stdio handed to a container process whose user is not root must be usable by that user (runc's
fixStdioPermissions): images that log to /dev/stdout as a non-root USER reopen it through /proc/self/fd/1, which
the kernel allows only to the owner of the pipe or pty.  A pty slave belongs to the process's uid and keeps the
tty group (5) and mode 620 that the devpts mount gives it.  Compared with runc where it runs here.
"""

import os
import shutil
import subprocess

import pytest

from .test_userns import top, ubundle  # noqa: F401: a new user namespace, 0 -> host 100000

RUNC = shutil.which("runc")
WRITE = "echo out > /dev/stdout && echo err > /dev/stderr && echo done"
TTY = "stat -L -c '%u %g %a' /proc/self/fd/0 /proc/self/fd/1; echo hi > /dev/stdout && echo ok"


def _user(uid=1000, terminal=False):
    def edit(c):
        c["process"]["user"] = {"uid": uid, "gid": uid}
        c["process"]["terminal"] = terminal
    return edit


def _detached(pyrunc, b, cid):
    subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)


def test_run_pipes_usable_by_the_user(pyrunc, bundle):
    b = bundle(["sh", "-c", WRITE], edit=_user())
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("stdio"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    assert p.out == "out\ndone\n" and p.err == "err\n", (p.out, p.err)


def test_runc_does_the_same(tmp_path, bundle):
    if not RUNC:
        pytest.skip("runc is not installed")
    b = bundle(["sh", "-c", WRITE], edit=_user())
    root = str(tmp_path / "runc-state")
    p = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), "pyrunc-it-stdio-runc"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    subprocess.run([RUNC, "--root", root, "delete", "--force", "pyrunc-it-stdio-runc"], capture_output=True)
    assert p.returncode == 0 and p.stdout == b"out\ndone\n" and p.stderr == b"err\n", p.stderr


def test_devnull_stdio_is_left_alone(pyrunc, bundle):
    """/dev/null as stdio is never chowned (runc skips it): it is the host's device node."""
    before = os.stat("/dev/null")
    b = bundle(["sh", "-c", "echo x > /dev/stdout; true"], edit=_user())
    p = subprocess.run(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("null")), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_exec_pipes_usable_by_the_user(pyrunc, bundle):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("stdiox")
    _detached(pyrunc, b, cid)
    p = pyrunc("exec", "--user", "1000:1000", cid, "sh", "-c", WRITE, stdin=subprocess.DEVNULL)
    pyrunc("delete", "--force", cid)
    assert p.returncode == 0, p.err
    assert p.out == "out\ndone\n" and p.err == "err\n", (p.out, p.err)


def test_run_pty_owned_by_the_user(pyrunc, bundle):
    b = bundle(["sh", "-c", TTY], edit=_user(terminal=True))
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("pty"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    lines = p.out.replace("\r", "").splitlines()
    assert lines == ["1000 5 620", "1000 5 620", "hi", "ok"], p.out


def test_exec_pty_owned_by_the_user(pyrunc, bundle):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("ptyx")
    _detached(pyrunc, b, cid)
    p = pyrunc("exec", "-t", "--user", "1000:1000", cid, "sh", "-c", TTY, stdin=subprocess.DEVNULL)
    pyrunc("delete", "--force", cid)
    assert p.returncode == 0, p.err
    lines = p.out.replace("\r", "").splitlines()
    assert lines == ["1000 5 620", "1000 5 620", "hi", "ok"], p.out


def _runc_run(b, tmp_path, **kw):
    root = str(tmp_path / "runc-state")
    try:
        return subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), "pyrunc-it-stdio-runc"],
                              capture_output=True, timeout=60, **kw)
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "--force", "pyrunc-it-stdio-runc"], capture_output=True)


# runc's foreground run gives the container pipes of its own (setupProcessPipes): what the process finds on 0-2
FDS = "for i in 0 1 2; do readlink /proc/self/fd/$i; done | sed 's/:.*//'; stat -L -c '%u %g %a' /proc/self/fd/1"


@pytest.mark.parametrize("uid", [0, 1000])
def test_userns_root_pipes_usable(pyrunc, ubundle, tmp_path, uid):
    """Root of a user namespace is an unprivileged host uid that cannot take the caller's pipes: the foreground run
    gives the container pipes of pyrunc's own, the process's user's (gid: the namespace root's), as runc does."""
    b = ubundle(["sh", "-c", WRITE + "; " + FDS], edit=_user(uid))
    want_out = f"out\ndone\npipe\npipe\npipe\n{uid} 0 600\n"
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("stdious"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    assert (p.out, p.err) == (want_out, "err\n")
    if RUNC:
        r = _runc_run(b, tmp_path, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (0, want_out, "err\n")


def test_userns_stdin_is_copied_to_eof(pyrunc, ubundle):
    """The caller's stdin reaches the container and its EOF too (cat ends), however much of it there is."""
    data = os.urandom(3 << 20)
    b = ubundle(["sh", "-c", "cat; echo end >&2"])
    p = subprocess.run(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("stdin")), input=data, capture_output=True,
                       timeout=60)
    assert (p.returncode, p.stderr) == (0, b"end\n"), p.stderr
    assert p.stdout == data


def test_userns_run_ends_with_the_container(pyrunc, ubundle):
    """Nothing hangs: the caller's stdin stays open and silent, and the init leaves a child holding stdout; run
    returns with the init (its pid namespace dies with it), with its status and everything it wrote."""
    b = ubundle(["sh", "-c", "sleep 1000 & echo hi; exit 3"])
    r, w = os.pipe()
    try:
        p = subprocess.run(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("ends")), stdin=r, capture_output=True,
                           timeout=60)
    finally:
        os.close(r)
        os.close(w)
    assert (p.returncode, p.stdout) == (3, b"hi\n"), p.stderr


def test_userns_run_streams_and_forwards_signals(pyrunc, ubundle):
    """The copy streams (the first line arrives while the container runs) and signals still reach the container
    (the main thread forwards them; the copy thread blocks them all)."""
    import signal
    import select

    b = ubundle(["sh", "-c", "trap 'echo got; exit 7' TERM; echo ready; while :; do sleep 0.1; done"])
    p = subprocess.Popen(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("sig")), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert select.select([p.stdout], [], [], 60)[0], "no output from the container within 60 s"
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (p.returncode, out) == (7, b"got\n"), err


def test_callers_terminal_is_not_given_away(pyrunc, bundle):
    """A process without terminal: true whose stdio is the caller's own terminal (pyrunc run from an interactive
    shell): that terminal stays the caller's.  Handing it to the container user would take it from its owner (runc
    never reaches this case in the foreground: it gives the container pipes of its own)."""
    master, slave = os.openpty()
    try:
        os.fchown(slave, 4242, 5)  # the terminal of some user of the host
        b = bundle(["sh", "-c", "echo hi"], edit=_user())
        p = subprocess.run(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("callertty")), stdin=slave, stdout=slave,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr
        st = os.fstat(slave)
        assert (st.st_uid, st.st_gid) == (4242, 5), f"the caller's terminal now belongs to {st.st_uid}:{st.st_gid}"
    finally:
        os.close(master)
        os.close(slave)


def test_callers_file_is_not_given_away(pyrunc, bundle, tmp_path):
    """stdout redirected to a host file: the file keeps its owner (the container still writes through the fd)."""
    log = tmp_path / "log"
    log.write_text("")
    os.chown(log, 4242, 4242)
    b = bundle(["sh", "-c", "echo hi"], edit=_user())
    with open(log, "ab") as f:
        p = subprocess.run(pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("callerfile")), stdin=subprocess.DEVNULL,
                           stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert log.read_text() == "hi\n"
    st = os.stat(log)
    assert (st.st_uid, st.st_gid) == (4242, 4242), f"the caller's file now belongs to {st.st_uid}:{st.st_gid}"
