"""What a container sees, checked from inside with busybox: namespaces, identity, filesystem, devices, security
settings and cgroups.  Where runc is the reference (capabilities, ids) the same bundle is run under runc too."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from ..conftest import require

RUNC = shutil.which("runc")


def sh(pyrunc, bundle, script, edit=None, extra=(), rc=0):
    """Run `sh -c script` in a fresh container (foreground) and return its stdout."""
    b = bundle(["sh", "-c", script], edit=edit)
    p = pyrunc("run", *extra, "--bundle", b, pyrunc.new_id("c"))
    assert p.returncode == rc, (p.returncode, p.out, p.err)
    return p.out


def runc_sh(b, tmp_path, name):
    """Run the same bundle under runc (own --root) and return stdout."""
    require(RUNC, "runc is not installed: nothing to compare with")
    p = subprocess.run([RUNC, "--root", str(tmp_path / "runc-state"), "run", "--bundle", str(b), name],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def detached(pyrunc, b, cid):
    p = subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    return pyrunc.state(cid)["pid"]


def test_pid_namespace(pyrunc, bundle):
    # the shell lists /proc with its own glob (no `ls | grep -c` pipeline, whose count depends on whether grep was
    # forked yet when ls read /proc): in a new pid namespace it is alone, as pid 1
    assert sh(pyrunc, bundle, "echo $$; for p in /proc/[0-9]*; do echo $p; done") == "1\n/proc/1\n"


def test_hostname_domainname(pyrunc, bundle):
    def edit(c):
        c["hostname"] = "box-one"
        c["domainname"] = "dom.example"

    out = sh(pyrunc, bundle, "hostname; cat /proc/sys/kernel/domainname", edit=edit)
    assert out == "box-one\ndom.example\n"
    assert os.uname().nodename != "box-one"


def test_loopback_up_in_new_netns(pyrunc, bundle):
    out = sh(pyrunc, bundle, "cat /sys/class/net/lo/flags; ls /sys/class/net")
    flags, ifaces = out.split("\n", 1)
    assert int(flags, 16) & 0x1, f"lo is not UP: {flags}"
    assert ifaces.split() == ["lo"]


def test_env_and_home(pyrunc, bundle, tmp_path):
    def edit(c):
        c["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY="]

    b = bundle(["sh", "-c", 'echo "$FOO|$EMPTY|$HOME|$PATH"; env | sort'], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("env"))
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0] == "bar baz||/root|/bin"
    assert lines[1:] == ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin", "PWD=/", "SHLVL=1"]
    assert p.out == runc_sh(b, tmp_path, "runc-env")


def test_cwd_created_if_missing(pyrunc, bundle):
    out = sh(pyrunc, bundle, "pwd", edit=lambda c: c["process"].__setitem__("cwd", "/work/deep/dir"))
    assert out == "/work/deep/dir\n"


def test_user_ids_same_as_runc(pyrunc, bundle, tmp_path):
    def edit(c):
        c["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [5, 7, 65534]}

    b = bundle(["sh", "-c", "id; id -u; id -G"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("id"))
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[1] == "65534"
    assert sorted(lines[2].split()) == ["5", "65534", "7"]
    assert p.out == runc_sh(b, tmp_path, "runc-id")


def test_umask(pyrunc, bundle):
    assert sh(pyrunc, bundle, "umask") == "0022\n"
    out = sh(pyrunc, bundle, "umask", edit=lambda c: c["process"]["user"].__setitem__("umask", 0o027))
    assert out == "0027\n"


def test_readonly_root(pyrunc, bundle):
    out = sh(pyrunc, bundle, "touch /x 2>/dev/null && echo W || echo RO; touch /tmp/y 2>/dev/null && echo W || echo RO")
    assert out == "RO\nRO\n"
    out = sh(pyrunc, bundle, "touch /x && echo W; rm /x", edit=lambda c: c["root"].__setitem__("readonly", False))
    assert out == "W\n"


def test_tmpfs_options(pyrunc, bundle):
    def edit(c):
        c["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]})

    out = sh(pyrunc, bundle, "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; touch /scratch/ok && echo W",
             edit=edit)
    line, mode, w = out.splitlines()
    dev, mp, fstype, opts = line.split()[:4]
    opts = opts.split(",")
    assert (mp, fstype) == ("/scratch", "tmpfs")
    assert {"rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=700"} <= set(opts), opts
    assert mode == "700" and w == "W"


def test_bind_mounts_ro_and_rw(pyrunc, bundle, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "f").write_text("from host\n")

    def edit(c):
        c["mounts"] += [{"destination": "/ro", "type": "bind", "source": str(host), "options": ["rbind", "ro"]},
                        {"destination": "/rw", "type": "bind", "source": str(host), "options": ["bind", "rw"]}]

    out = sh(pyrunc, bundle, "cat /ro/f; touch /ro/x 2>/dev/null && echo W || echo RO; echo made > /rw/y && echo W",
             edit=edit)
    assert out == "from host\nRO\nW\n"
    assert (host / "y").read_text() == "made\n"
    assert not (host / "x").exists()


def test_mount_propagation_flags_accepted(pyrunc, bundle, tmp_path):
    """Accepted, and the same propagation as runc gives (mountpoint, options, optional fields of mountinfo)."""
    host = tmp_path / "prop"
    host.mkdir()

    def edit(c):
        c["linux"]["rootfsPropagation"] = "rslave"
        c["mounts"] += [{"destination": "/p1", "type": "bind", "source": str(host), "options": ["rbind", "rprivate"]},
                        {"destination": "/p2", "type": "bind", "source": str(host), "options": ["rbind", "rslave"]},
                        {"destination": "/p3", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}]

    script = "grep -E ' /p[123] ' /proc/self/mountinfo | while read a b c d rest; do echo \"${rest%% - *}\"; done"
    b = bundle(["sh", "-c", script], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("prop"))
    assert p.returncode == 0, p.err
    assert [line.split()[0] for line in p.out.splitlines()] == ["/p1", "/p2", "/p3"]
    assert p.out == runc_sh(b, tmp_path, "runc-prop")


def test_default_devices(pyrunc, bundle):
    out = sh(pyrunc, bundle, "stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/tty /dev/urandom /dev/random")
    assert out.splitlines() == [
        "/dev/null character special file 1:3 666", "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666", "/dev/tty character special file 5:0 666",
        "/dev/urandom character special file 1:9 666", "/dev/random character special file 1:8 666"]


def test_dev_symlinks(pyrunc, bundle):
    out = sh(pyrunc, bundle, "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done")
    assert out.splitlines() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]


def test_linux_devices(pyrunc, bundle):
    def edit(c):
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
                                  "uid": 0, "gid": 5},
                                 {"path": "/dev/sub/mine", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}]

    out = sh(pyrunc, bundle, "stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/sub/mine", edit=edit)
    assert out.splitlines() == ["character special file a:e5 640 0:5", "character special file 1:3 600 0:0"]


def test_masked_and_readonly_paths(pyrunc, bundle):
    # /proc/keys: a masked file that exists on every kernel (this one has no /proc/kcore)
    out = sh(pyrunc, bundle, "stat -c %t:%T /proc/keys; wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                             "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo W || echo RO; "
                             "grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1")
    assert out.split() == ["1:3", "0", "0", "RO", "ro"]
    # the control: without maskedPaths/readonlyPaths the same checks see the real files
    def edit(c):
        c["linux"]["maskedPaths"] = []
        c["linux"]["readonlyPaths"] = []

    out = sh(pyrunc, bundle, "stat -c %t:%T /proc/keys; wc -c < /proc/keys; grep -c ' /proc/sys ' /proc/mounts",
             edit=edit, rc=1)
    lines = out.split()
    assert lines[0] == "0:0" and int(lines[1]) > 0 and lines[2] == "0"


def test_no_pivot(pyrunc, bundle):
    out = sh(pyrunc, bundle, "echo $$; touch /x 2>/dev/null || echo RO; cat /etc/passwd | head -1",
             extra=("--no-pivot",))
    assert out.splitlines() == ["1", "RO", "root:x:0:0:root:/root:/bin/sh"]


def test_join_uts_namespace_by_path(pyrunc, bundle):
    a = bundle(["sleep", "1000"], edit=lambda c: c.__setitem__("hostname", "first-box"))
    aid = pyrunc.new_id("nsa")
    pid = detached(pyrunc, a, aid)
    try:
        def edit(c):
            c.pop("hostname", None)
            for n in c["linux"]["namespaces"]:
                if n["type"] == "uts":
                    n["path"] = f"/proc/{pid}/ns/uts"

        out = sh(pyrunc, bundle, "hostname", edit=edit)
        assert out == "first-box\n"
    finally:
        pyrunc("delete", "--force", aid, check=True)


_CAP_LINES = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"


def test_capabilities_same_as_runc(pyrunc, bundle, tmp_path):
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"]

    def edit(c):
        c["process"]["capabilities"] = {"bounding": caps, "effective": caps[:3], "permitted": caps,
                                        "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}

    b = bundle(["sh", "-c", _CAP_LINES], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("caps"))
    assert p.returncode == 0, p.err
    got = dict(line.split(":\t") for line in p.out.splitlines())
    # CHOWN=0 KILL=5 NET_RAW=13 SYS_ADMIN=21
    assert int(got["CapBnd"], 16) == (1 << 0) | (1 << 5) | (1 << 13) | (1 << 21)
    assert int(got["CapAmb"], 16) == 1 << 5
    assert p.out == runc_sh(b, tmp_path, "runc-caps")
    # and runc spec's default set
    b = bundle(["sh", "-c", _CAP_LINES])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("caps"))
    assert p.out == runc_sh(b, tmp_path, "runc-caps2")


def test_signals_start_default_like_runc(pyrunc, bundle, tmp_path):
    """An ignored signal disposition survives execve: pyrunc (Python ignores SIGPIPE) must not pass it on."""
    b = bundle(["sh", "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("sig"))
    assert p.returncode == 0, p.err
    # Compared with runc on the standard signals 1-31.  Signals 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID):
    # no Python or Go code can set their disposition, so whatever the test runner's caller left there (a
    # backgrounded shell ignores some) reaches both runtimes' containers unchanged and says nothing about them.
    assert _std_signals(p.out) == _std_signals(runc_sh(b, tmp_path, "runc-sig"))
    ignored = int(p.out.split("SigIgn:\t")[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE ignored in the container (Python's startup default leaked)"
    assert not ignored & (1 << (25 - 1)), "SIGXFSZ ignored in the container (Python's startup default leaked)"
    # create + start: no foreground signal forwarding involved
    cid = pyrunc.new_id("sig2")
    out = os.path.join(str(b), "out")
    with open(out, "wb") as f:
        assert subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL, stdout=f,
                              stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    pyrunc("start", cid, check=True)
    deadline = time.monotonic() + 10
    while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    pyrunc("delete", cid, check=True)
    with open(out) as f:
        assert f.read() == p.out


def _std_signals(status_lines):
    return {line.split(":")[0]: int(line.split()[1], 16) & 0x7FFFFFFF for line in status_lines.splitlines()}


def test_rlimits(pyrunc, bundle):
    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444},
                                   {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 1000}]

    assert sh(pyrunc, bundle, "ulimit -n; ulimit -Hn; ulimit -u", edit=edit) == "333\n444\n1000\n"


def test_no_new_privileges(pyrunc, bundle):
    assert sh(pyrunc, bundle, "grep NoNewPrivs /proc/self/status") == "NoNewPrivs:\t1\n"
    out = sh(pyrunc, bundle, "grep NoNewPrivs /proc/self/status",
             edit=lambda c: c["process"].__setitem__("noNewPrivileges", False))
    assert out == "NoNewPrivs:\t0\n"


def test_user_namespace_mappings(pyrunc, busybox):
    from pyrunc.demo import make_bundle

    # the bundle must be reachable by the mapped root (uid 100000): not under pytest's 0700 tmp dir
    top = tempfile.mkdtemp(prefix="pyrunc-it-userns-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        b = os.path.join(top, "bundle")
        os.mkdir(b)
        cfg = make_bundle(b, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                          "stat -c %u /bin/busybox"], busybox=busybox)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        p = pyrunc("run", "--bundle", b, pyrunc.new_id("userns"))
        assert p.returncode == 0, p.err
        lines = [line.split() for line in p.out.splitlines()]
        assert lines[0] == ["0", "100000", "65536"] and lines[1] == ["0", "100000", "65536"]
        assert lines[2] == ["0"]
        assert lines[3] == ["65534"]  # the host's root is unmapped inside: the overflow uid
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_cgroup_placement_readonly_and_memory_limit(pyrunc, bundle):
    cid = pyrunc.new_id("cg")
    limit = 64 * 1024 * 1024

    def edit(c):
        c["linux"]["cgroupsPath"] = "/" + cid
        c["linux"]["resources"]["memory"] = {"limit": limit}

    b = bundle(["sh", "-c", "touch /sys/fs/cgroup/memory/x 2>/dev/null && echo W || echo RO; "
                            "grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "
                            "while :; do sleep 1; done"], edit=edit)
    out = tmp = os.path.join(str(b), "out")
    with open(tmp, "wb") as f:
        p = subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL, stdout=f,
                           stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    pid = pyrunc.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    by_sub = {subs: path for _, subs, path in lines}
    assert by_sub["memory"] == "/" + cid, lines
    assert by_sub["pids"] == "/" + cid
    mem = f"/sys/fs/cgroup/memory/{cid}"
    with open(os.path.join(mem, "memory.limit_in_bytes")) as f:
        assert int(f.read()) == limit
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(out) as f:
            text = f.read()
        if text.count("\n") >= 2:
            break
        time.sleep(0.05)
    assert text == "RO\nro\n"
    pyrunc("delete", "--force", cid, check=True)
    assert not os.path.exists(mem), "the container's cgroup must go with the container"


def test_cgroup_dir_is_private_subtree(pyrunc, bundle, tmp_path):
    """Without a cgroup namespace the container sees its own cgroup directory, not the host's tree.

    cgroup.procs is read by the shell itself (`read` is a builtin; no pipeline whose members may or may not have
    been forked yet when cat reads the file), so the only process in it is the shell, pid 1.  The same bundle under
    runc sees the same."""
    script = ("while read p; do echo pid=$p; done < /sys/fs/cgroup/memory/cgroup.procs; "
              "for d in /sys/fs/cgroup/memory/*.slice; do echo host-slice=$d; done")
    b = bundle(["sh", "-c", script])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("c"))
    assert p.returncode == 0, p.err
    # pid 1 only; no system.slice/user.slice of the host (an unmatched glob stays literal)
    assert p.out.split() == ["pid=1", "host-slice=/sys/fs/cgroup/memory/*.slice"], p.out
    assert runc_sh(b, tmp_path, "runc-cgsub") == p.out
    assert stat.S_ISDIR(os.stat("/sys/fs/cgroup/memory").st_mode)
