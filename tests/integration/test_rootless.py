"""Rootless pyrunc: a dedicated unprivileged user, made by the fixture with subuid/subgid ranges and removed
afterwards (even on failure), runs `pyrunc spec --rootless && pyrunc run` on a busybox bundle it owns, and every
verb as that user.  The state goes under its $XDG_RUNTIME_DIR/pyrunc; cgroup v1 gives it no cgroup, so the cgroup
steps are skipped; whatever needs real root fails with an error naming it and leaves nothing behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

import pyrunc as pyrunc_pkg

from ..conftest import require


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def _drop_lines(path, name):
    """Remove the user's lines from /etc/subuid or /etc/subgid (userdel may leave them)."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    keep = [ln for ln in lines if ln.split(":")[0] != name]
    if keep != lines:
        with open(path, "w") as f:
            f.writelines(keep)


def _kill_user_processes(uid):
    """SIGKILL every process of the dedicated user (no one else runs as it), by pid."""
    for _ in range(50):
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        pids.append(int(name))
                except OSError:
                    pass
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


class User:
    """The unprivileged user and what it runs pyrunc with."""

    def __init__(self, name, uid, gid, tmp, pyrunc_cmd):
        self.name, self.uid, self.gid, self.tmp = name, uid, gid, tmp
        self.xdg = os.path.join(tmp, "run")
        self.home = os.path.join(tmp, "home")
        self.cmd = pyrunc_cmd
        self.count = 0

    def env(self):
        return ["env", "-i", f"HOME={self.home}", f"USER={self.name}", f"XDG_RUNTIME_DIR={self.xdg}",
                "PATH=/usr/local/bin:/usr/bin:/bin"]

    def sh(self, *argv, cwd=None, timeout=60):
        """argv as the user (setpriv: its uid, gid and groups, nothing else)."""
        full = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *self.env(), *argv]
        # files, not pipes: a created container keeps its stdio, and a pipe would wait for its end
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(full, stdout=out, stderr=err, timeout=timeout, cwd=cwd or self.tmp,
                               stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return p

    def pyrunc(self, *args, cwd=None, timeout=60):
        return self.sh(*self.cmd, *map(str, args), cwd=cwd, timeout=timeout)

    def bundle(self, args, edit=None):
        """`pyrunc spec --rootless` run by the user in a busybox bundle it owns; the process made non-terminal."""
        from pyrunc.demo import make_bundle

        self.count += 1
        path = os.path.join(self.tmp, f"bundle{self.count}")
        make_bundle(path, ["true"])
        os.unlink(os.path.join(path, "config.json"))
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", path], check=True, timeout=60)
        p = self.pyrunc("spec", "--rootless", cwd=path)
        assert p.returncode == 0, p.stderr
        cfg_path = os.path.join(path, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        if edit:
            edit(cfg)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        return path

    def new_id(self):
        return f"pyrunc-rl-{uuid.uuid4().hex[:8]}"

    def state_dir(self):
        return os.path.join(self.xdg, "pyrunc")


def _pyrunc_for(name, uid, gid, tmp):
    """A pyrunc command the user can run: this one when it may execute its Python, else the system python3
    on the package (copied to tmp if the user cannot read it where it is)."""
    here = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    probe = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "env", "-i", "PATH=/usr/bin:/bin"]
    if os.path.exists(here) and _run(probe + [here, "--version"]).returncode == 0:
        return [here]
    python = shutil.which("python3", path="/usr/bin:/bin")
    require(python, "the unprivileged user cannot run this Python, and there is no system python3")
    src = os.path.dirname(os.path.dirname(os.path.abspath(pyrunc_pkg.__file__)))

    def works():
        check = probe + [f"PYTHONPATH={src}", python, "-P", "-c", "import pyrunc._helper, pyrunc.cli.main"]
        return _run(check).returncode == 0

    if not works():  # the package (or cffi's backend) is where the user cannot read it: copy them
        src = os.path.join(tmp, "lib")
        shutil.copytree(os.path.dirname(os.path.abspath(pyrunc_pkg.__file__)), os.path.join(src, "pyrunc"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        if _run(probe + [python, "-c", "import _cffi_backend"]).returncode != 0:
            import _cffi_backend

            shutil.copy2(_cffi_backend.__file__, src)
        subprocess.run(["chmod", "-R", "a+rX", src], check=True, timeout=60)
        require(works(), f"the unprivileged user cannot run pyrunc with {python}")
    launcher = os.path.join(tmp, "pyrunc")
    with open(launcher, "w") as f:
        f.write(f'#!/bin/sh\nPYTHONPATH={src} exec {python} -P -m pyrunc.cli.main "$@"\n')
    os.chmod(launcher, 0o755)
    return [launcher]


@pytest.fixture(scope="module")
def user():
    require(os.geteuid() == 0, "needs root to create the unprivileged test user")
    require(shutil.which("useradd") and shutil.which("userdel") and shutil.which("setpriv"),
            "needs useradd, userdel and setpriv (passwd, util-linux)")
    tmp = tempfile.mkdtemp(prefix="pyrunc-rootless-")
    os.chmod(tmp, 0o755)
    name = f"pyrl{uuid.uuid4().hex[:8]}"
    made = False
    try:
        p = _run(["useradd", "--no-create-home", "--home-dir", os.path.join(tmp, "home"), "--shell", "/bin/sh",
                  "--user-group", name])
        assert p.returncode == 0, p.stderr
        made = True
        import pwd

        pw = pwd.getpwnam(name)
        uid, gid = pw.pw_uid, pw.pw_gid
        for path in ("/etc/subuid", "/etc/subgid"):  # useradd adds them where login.defs says so; else here
            with open(path, "a+") as f:
                f.seek(0)
                if not any(ln.split(":")[0] == name for ln in f):
                    f.write(f"{name}:{200000 + (uid % 1000) * 65536}:65536\n")
        for d, mode in (("home", 0o700), ("run", 0o700)):
            os.mkdir(os.path.join(tmp, d), mode)
            os.chown(os.path.join(tmp, d), uid, gid)
        yield User(name, uid, gid, tmp, _pyrunc_for(name, uid, gid, tmp))
    finally:
        if made:
            _kill_user_processes(pw.pw_uid) if "pw" in locals() else None
            _run(["userdel", name])
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, name)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def rl(user):
    """Per test: afterwards every container of the user is force-deleted, and the test fails if any state dir, or
    any process of the user, is left."""
    yield user
    left = sorted(os.listdir(user.state_dir())) if os.path.isdir(user.state_dir()) else []
    for cid in left:
        user.pyrunc("delete", "--force", cid)
    still = sorted(os.listdir(user.state_dir())) if os.path.isdir(user.state_dir()) else []
    # (a zombie is only waiting for its parent, pid 1 for a detached container's init, to reap it)
    procs = [d for d in (_describe(n) for n in os.listdir("/proc") if n.isdigit() and _uid_of(n) == user.uid)
             if " (Z) " not in d and "(gone)" not in d]
    _kill_user_processes(user.uid)
    for cid in still:
        shutil.rmtree(os.path.join(user.state_dir(), cid), ignore_errors=True)
    assert not left, f"containers left by the test: {left}"
    assert not still and not procs, f"left after delete --force: state {still}, processes {procs}"


def _describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return f"{pid} ({state}) {cmd}"
    except OSError:
        return f"{pid} (gone)"


def _uid_of(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_spec_rootless_and_run(rl):
    b = rl.bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; test -c /dev/null; "
                               "echo x > /dev/null && echo devnull-ok; exit 3"])
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.uid, "size": 1}]
    cid = rl.new_id()
    p = rl.pyrunc("run", cid, cwd=b)
    assert p.returncode == 3, p.stderr
    lines = p.stdout.split("\n")
    assert lines[:2] == ["0", "0"], p.stdout
    assert lines[2].split() == ["0", str(rl.uid), "1"] and lines[3].split() == ["0", str(rl.gid), "1"], p.stdout
    assert "devnull-ok" in p.stdout
    assert not os.path.exists(os.path.join(rl.state_dir(), cid))
    assert os.stat(rl.state_dir()).st_uid == rl.uid and os.stat(rl.state_dir()).st_mode & 0o7777 == 0o1700


def test_lifecycle_verbs(rl):
    b = rl.bundle(["sleep", "300"])
    cid = rl.new_id()
    p = rl.pyrunc("create", cid, cwd=b)
    assert p.returncode == 0, p.stderr
    st = json.loads(rl.pyrunc("state", cid).stdout)
    assert st["status"] == "created" and st["pid"] > 0
    assert rl.pyrunc("start", cid).returncode == 0
    st = json.loads(rl.pyrunc("state", cid).stdout)
    assert st["status"] == "running"
    assert os.stat(f"/proc/{st['pid']}").st_uid == rl.uid  # the container's root is the user on the host
    listed = rl.pyrunc("list", "--format", "json")
    assert listed.returncode == 0 and [c["id"] for c in json.loads(listed.stdout)] == [cid], listed.stderr
    p = rl.pyrunc("exec", cid, "sh", "-c", "echo from-exec $(id -u)")
    assert p.returncode == 0 and p.stdout == "from-exec 0\n", p.stderr
    ex = subprocess.Popen(["setpriv", f"--reuid={rl.uid}", f"--regid={rl.gid}", "--init-groups", *rl.env(),
                           *rl.cmd, "exec", cid, "sleep", "301"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            ps = rl.pyrunc("ps", "--format", "json", cid)
            assert ps.returncode == 0, ps.stderr
            pids = json.loads(ps.stdout)
            if len(pids) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert st["pid"] in pids and len(pids) == 2, pids
        p = rl.pyrunc("pause", cid)
        assert p.returncode != 0 and "no cgroup" in p.stderr, p.stderr
        assert rl.pyrunc("kill", cid, "KILL").returncode == 0
        ex.wait(timeout=20)
    finally:
        if ex.poll() is None:
            ex.kill()
            ex.wait(timeout=20)
    deadline = time.monotonic() + 20
    while json.loads(rl.pyrunc("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop after SIGKILL"
        time.sleep(0.05)
    p = rl.pyrunc("delete", cid)
    assert p.returncode == 0, p.stderr
    assert rl.pyrunc("state", cid).returncode != 0


def _refused(rl, edit, *words):
    b = rl.bundle(["echo", "ran"], edit=edit)
    cid = rl.new_id()
    p = rl.pyrunc("run", cid, cwd=b)
    assert p.returncode != 0 and "ran" not in p.stdout, p.stdout
    for w in words:
        assert w in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(rl.state_dir(), cid)), "state left behind"
    return p.stderr


def test_limits_without_cgroup_access_are_refused(rl):
    _refused(rl, lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": 64 << 20}}),
             "linux.resources.memory")


def test_needs_root_refused(rl, tmp_path):
    # a device made with mknod (a user namespace cannot)
    _refused(rl, lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/fuse0", "type": "c", "major": 10,
                                                                "minor": 229, "fileMode": 0o666}]), "/dev/fuse0")
    # a sysctl of a namespace the container does not own (no network namespace)
    _refused(rl, lambda c: c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": "1"}), "net.ipv4.ip_forward")
    # oomScoreAdj below the caller's
    cur = int(open("/proc/self/oom_score_adj").read())
    _refused(rl, lambda c: c["process"].__setitem__("oomScoreAdj", max(cur - 100, -1000)), "oom_score_adj")
    # a bind mount of a path the user cannot reach (below a directory it may not search)
    secret = tempfile.mkdtemp(prefix="pyrunc-rootless-secret-")
    try:
        os.chmod(secret, 0o700)
        os.mkdir(os.path.join(secret, "inner"))
        _refused(rl, lambda c: c["mounts"].append({"destination": "/mnt", "type": "bind",
                                                   "source": os.path.join(secret, "inner"),
                                                   "options": ["rbind", "ro"]}), os.path.join(secret, "inner"))
    finally:
        shutil.rmtree(secret)


def _subrange(path, name):
    with open(path) as f:
        for ln in f:
            parts = ln.strip().split(":")
            if parts[0] == name:
                return int(parts[1]), int(parts[2])
    raise AssertionError(f"no {path} entry for {name}")


def test_subid_mappings_through_newuidmap(rl):
    """More than the caller's own id: the ranges of /etc/subuid and /etc/subgid, written by newuidmap/newgidmap
    (uidmap).  The container's root is the user; 1..N are its subordinate ids, and a file made by container uid
    1000 belongs on the host to the subuid range."""
    require(shutil.which("newuidmap") and shutil.which("newgidmap"), "needs newuidmap/newgidmap (apt-get install uidmap)")
    sub_u, sub_g = _subrange("/etc/subuid", rl.name), _subrange("/etc/subgid", rl.name)

    def edit(c):
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": rl.uid, "size": 1},
                                     {"containerID": 1, "hostID": sub_u[0], "size": sub_u[1]}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": rl.gid, "size": 1},
                                     {"containerID": 1, "hostID": sub_g[0], "size": sub_g[1]}]
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
        c["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind"]})

    out = os.path.join(rl.tmp, f"out{uuid.uuid4().hex[:6]}")
    os.mkdir(out)
    os.chmod(out, 0o777)  # writable by container uid 1000, a subordinate id on the host
    try:
        b = rl.bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; touch /out/f; id -G"], edit=edit)
        cid = rl.new_id()
        p = rl.pyrunc("run", cid, cwd=b)
        assert p.returncode == 0, p.stderr
        lines = [ln.split() for ln in p.stdout.strip().split("\n")]
        assert lines[0] == ["0", str(rl.uid), "1"] and lines[1] == ["1", str(sub_u[0]), str(sub_u[1])], p.stdout
        assert lines[2] == ["0", str(rl.gid), "1"] and lines[3] == ["1", str(sub_g[0]), str(sub_g[1])], p.stdout
        assert lines[4] == ["1000"], p.stdout  # setgroups allowed (newgidmap): the caller's groups are dropped
        st = os.stat(os.path.join(out, "f"))
        assert (st.st_uid, st.st_gid) == (sub_u[0] + 999, sub_g[0] + 999)
    finally:
        shutil.rmtree(out)


def test_mapping_outside_subuid_ranges_refused(rl):
    require(shutil.which("newuidmap"), "needs newuidmap (apt-get install uidmap)")
    _refused(rl, lambda c: c["linux"]["uidMappings"].append({"containerID": 1, "hostID": 5000, "size": 10}),
             "newuidmap", "/etc/subuid")


def test_config_without_user_namespace_refused(rl):
    """The root default config (no user namespace) is refused up front, as runc's rootlessEUIDCheck, instead of
    failing on the first unshare."""
    def rootful(c):
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "user"]
        del c["linux"]["uidMappings"], c["linux"]["gidMappings"]

    _refused(rl, rootful, "requires user namespaces")


def test_protections_stay_on(rl):
    """Rootless keeps the fd closing: an fd the caller leaks is not in the container; and the container's pid 1
    is its own binary, with nothing of the host's python left behind it."""
    b = rl.bundle(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '; echo; readlink /proc/1/exe"])
    cid = rl.new_id()
    p = rl.sh("sh", "-c", f"exec 7</etc/hostname; exec {' '.join(rl.cmd)} run {cid}", cwd=b)
    assert p.returncode == 0, p.stderr
    fds, exe = p.stdout.split("\n")[:2]
    assert fds.split() == ["0", "1", "2", "3"], p.stdout  # 3: ls's own directory
    assert exe == "/bin/busybox", p.stdout
