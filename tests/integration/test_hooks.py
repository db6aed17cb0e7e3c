"""OCI hooks as runc runs them: working directory, default environment, error wording, timeouts, large states,
and poststart/poststop hooks that call the runtime on their own container (they run outside its lock)."""

import os
import time

from .runtimes import rt  # noqa: F401: the fixture

SH = "/bin/sh"  # the host's: host hooks run on the host


def _hooks(**kinds):
    def edit(cfg):
        cfg["hooks"] = kinds
    return edit


def test_create_container_hook_runs_in_the_rootfs(rt, bundle, tmp_path):
    """createContainer hooks run in the container's mount namespace with its rootfs as cwd: a hook that
    bind-mounts a host directory onto `./lib` (the NVIDIA toolkit's pattern) gives the container that library."""
    libdir = tmp_path / "hostlib"
    libdir.mkdir()
    (libdir / "libmarker.so").write_text("from the host\n")
    out = tmp_path / f"cc-{rt.name}.cwd"
    hook = {"path": SH, "args": ["sh", "-c", f"pwd > {out}; mkdir -p lib && mount --bind {libdir} ./lib"]}

    def edit(cfg):
        cfg["hooks"] = {"createContainer": [hook]}

    b = bundle(["cat", "/lib/libmarker.so"], edit=edit)
    cid = rt.new_id("hookcc")
    p = rt("run", "--bundle", b, cid, timeout=60)
    assert p.returncode == 0, p.err
    assert p.out == "from the host\n"
    assert out.read_text().strip() == os.path.realpath(os.path.join(b, "rootfs"))


def test_host_hooks_run_in_the_bundle(rt, bundle, tmp_path):
    """prestart and createRuntime hooks run with the bundle as cwd (runc create/run chdir there); pyrunc runs
    poststart and poststop there too (runc 1.1.5 runs poststart at create, and poststop in delete's cwd)."""
    log = tmp_path / f"cwd-{rt.name}.log"
    kinds = ("prestart", "createRuntime", "poststart", "poststop")
    edit = _hooks(**{k: [{"path": SH, "args": ["sh", "-c", f'echo "{k} $(pwd)" >> {log}']}] for k in kinds})
    b = bundle(["true"], edit=edit)
    cid = rt.new_id("hookcwd")
    p = rt("run", "--bundle", b, cid, cwd="/")
    assert p.returncode == 0, p.err
    got = dict(line.split(" ", 1) for line in log.read_text().splitlines())
    want = str(b)
    assert got["prestart"] == got["createRuntime"] == want, got
    if rt.name == "pyrunc":
        assert got["poststart"] == got["poststop"] == want, got


def test_start_container_hook_gets_the_process_env(rt, bundle):
    """A startContainer hook without `env` gets the container process's environment (runc runs it in the init,
    whose environment is the process's: Go's exec.Cmd with a nil Env)."""
    def edit(cfg):
        cfg["root"]["readonly"] = False
        cfg["process"]["env"].append("FROM_CONFIG=yes")
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", 'echo "$FROM_CONFIG" > /hook.env']},
                                           {"path": "/bin/sh", "env": ["ONLY=this"],
                                            "args": ["sh", "-c", 'echo "$FROM_CONFIG|$ONLY" >> /hook.env']}]}

    b = bundle(["cat", "/hook.env"], edit=edit)
    cid = rt.new_id("hookenv")
    p = rt("run", "--bundle", b, cid)
    assert p.returncode == 0, p.err
    assert p.out == "yes\n|this\n"


def test_failing_hook_error_wording(rt, bundle):
    edit = _hooks(prestart=[{"path": "/bin/true"},
                            {"path": SH, "args": ["sh", "-c", "echo out; echo err >&2; exit 3"]}])
    cid = rt.new_id("hookfail")
    p = rt("run", "--bundle", bundle(["true"], edit=edit), cid)
    assert p.returncode == 1
    # runc 1.1.5: "error running hook #1: error running hook: exit status 3, stdout: out\n, stderr: err\n"
    assert r"error running hook: exit status 3, stdout: out\n, stderr: err\n" in p.err, p.err
    if rt.name == "pyrunc":
        assert r"error running prestart hook #1: error running hook: exit status 3" in p.err, p.err
    else:
        assert r"error running hook #1: error running hook: exit status 3" in p.err, p.err
    assert rt("state", cid).returncode == 1


def test_hook_timeout_wording(rt, bundle):
    edit = _hooks(createRuntime=[{"path": SH, "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}])
    cid = rt.new_id("hooktimeout")
    t0 = time.monotonic()
    p = rt("run", "--bundle", bundle(["true"], edit=edit), cid, timeout=30)
    assert p.returncode == 1
    assert "hook ran past specified timeout of 1.0s" in p.err, p.err
    assert time.monotonic() - t0 < 15


def test_large_state_never_blocks_on_a_hook_that_does_not_read(pyrunc, bundle):
    """A state document larger than a pipe holds, and hooks that never read stdin: each still ends at its
    timeout (host hook and in-container startContainer hook alike), and a hook that exits unread is fine."""
    def edit(cfg):
        cfg["annotations"] = {"big": "x" * (256 << 10)}
        cfg["hooks"] = {"prestart": [{"path": SH, "args": ["sh", "-c", "exit 0"]}],
                        "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]}

    cid = pyrunc.new_id("hookbig")
    t0 = time.monotonic()
    p = pyrunc("run", "--bundle", bundle(["true"], edit=edit), cid, timeout=40)
    assert p.returncode == 1, p.err
    assert "error running startContainer hook #0: hook ran past specified timeout of 1.0s" in p.err, p.err
    assert time.monotonic() - t0 < 20


def test_poststart_and_poststop_hooks_may_call_pyrunc_on_their_container(pyrunc, bundle, tmp_path):
    """poststart and poststop run outside the container's lock: a poststart hook that execs into, pauses,
    resumes and reads the state of its own container works (it deadlocked while start held the lock)."""
    out = tmp_path / "hook.out"
    me = " ".join(pyrunc.argv + ["--root", pyrunc.root])
    post = (f'id=$(sed -n \'s/.*"id":"\\([^"]*\\)".*/\\1/p\'); {me} exec "$id" echo exec-ok >> {out} && '
            f'{me} pause "$id" && {me} state "$id" | grep -q paused && {me} resume "$id" && echo pause-ok >> {out}')
    stop = f'id=$(sed -n \'s/.*"id":"\\([^"]*\\)".*/\\1/p\'); {me} state "$id" >> {out} 2>&1; echo stop-ok >> {out}'
    edit = _hooks(poststart=[{"path": SH, "args": ["sh", "-c", post], "timeout": 20}],
                  poststop=[{"path": SH, "args": ["sh", "-c", stop], "timeout": 20}])
    cid = pyrunc.new_id("hooklock")
    p = pyrunc("run", "--bundle", bundle(["sleep", "2"], edit=edit), cid, timeout=60)
    assert p.returncode == 0, p.err
    lines = out.read_text().splitlines()
    assert lines[:2] == ["exec-ok", "pause-ok"], lines
    assert lines[-1] == "stop-ok" and "timeout" not in p.err, (lines, p.err)
    assert "container does not exist" in "\n".join(lines[2:]), lines  # poststop: the state is gone by then


def test_create_hooks_calling_pyrunc_never_wait_on_the_container(pyrunc, bundle, tmp_path):
    """While create runs its hooks the container does not exist yet for other verbs: a prestart hook that calls
    state, exec, pause or delete on it gets "container does not exist" at once (delete used to wait for
    create's lock, which waited for the hook)."""
    out = tmp_path / "prestart.out"
    me = " ".join(pyrunc.argv + ["--root", pyrunc.root])
    script = (f'id=$(sed -n \'s/.*"id":"\\([^"]*\\)".*/\\1/p\'); '
              f'{me} state "$id" >/dev/null 2>> {out}; echo "state $?" >> {out}; '
              f'{me} delete "$id" 2>> {out}; echo "delete $?" >> {out}; '
              f'{me} pause "$id" 2>> {out}; echo "pause $?" >> {out}; '
              f'{me} exec "$id" true 2>> {out}; echo "exec $?" >> {out}')
    edit = _hooks(prestart=[{"path": SH, "args": ["sh", "-c", script], "timeout": 20}])
    cid = pyrunc.new_id("hookcreate")
    t0 = time.monotonic()
    p = pyrunc("run", "--bundle", bundle(["true"], edit=edit), cid, timeout=60)
    assert p.returncode == 0, p.err
    assert time.monotonic() - t0 < 15
    text = out.read_text()
    assert [line for line in text.splitlines() if not line.startswith("time=")] == [
        "state 1", "delete 1", "pause 1", "exec 255"], text
    assert text.count("container does not exist") == 4, text
