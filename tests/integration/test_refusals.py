"""Bundles and flags that must be refused, for real: a clear error naming the field, a non-zero exit, and nothing
left behind (the `pyrunc` fixture fails the test on a leftover state dir, cgroup or mount).

Nothing asked for may be silently dropped: an AppArmor profile or SELinux label that is not applied would run
the container unconfined (docker sends `apparmorProfile: docker-default` on every AppArmor host), so pyrunc
refuses every field it accepts but does not apply, on every host, with or without the LSM.
"""

import json
import os
import shutil
import subprocess

import pytest

RUNC = shutil.which("runc")


def run(pyrunc, b, cid, *extra):
    return pyrunc("run", *extra, "--bundle", b, cid, stdin=subprocess.DEVNULL)


def runc_run(tmp_path, b, cid):
    root = str(tmp_path / "runc-state")
    p = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), cid], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    subprocess.run([RUNC, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


def detached(pyrunc, b, cid):
    """`run -d` of a long sleeper; its stdio must not be our pipes (it would hold them open for 30 s)."""
    subprocess.run(pyrunc.cmd("run", "-d", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True)


def _set(path, value):
    def edit(c):
        node = c
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return edit


# (edit, the field the error must name): each is accepted by the schema and was silently ignored before
UNAPPLIED = {
    "apparmor": (_set(("process", "apparmorProfile"), "docker-default"), "process.apparmorProfile"),
    "selinux": (_set(("process", "selinuxLabel"), "system_u:system_r:container_t:s0"), "process.selinuxLabel"),
    "mountlabel": (_set(("linux", "mountLabel"), "system_u:object_r:container_file_t:s0"), "linux.mountLabel"),
    "intelrdt": (_set(("linux", "intelRdt"), {"closID": "pyrunc"}), "linux.intelRdt"),
}


@pytest.mark.parametrize("name", sorted(UNAPPLIED))
def test_unapplied_field_is_refused(pyrunc, bundle, name):
    edit, field = UNAPPLIED[name]
    b = bundle(["echo", "ran"], edit=edit)
    cid = pyrunc.new_id(name)
    p = run(pyrunc, b, cid)
    assert p.returncode != 0, f"{field} was accepted and not applied: {p.out!r}"
    assert "ran" not in p.out
    assert field in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_empty_lsm_fields_mean_none(pyrunc, bundle):
    """An empty profile or label asks for nothing (runc: the default): accepted."""
    def edit(c):
        c["process"]["apparmorProfile"] = ""
        c["process"]["selinuxLabel"] = ""
        c["linux"]["mountLabel"] = ""

    p = run(pyrunc, bundle(["echo", "ran"], edit=edit), pyrunc.new_id("nolsm"))
    assert p.returncode == 0 and p.out == "ran\n", p.err


@pytest.mark.parametrize("flags", [("--apparmor", "docker-default"), ("--process-label", "system_u:system_r:x:s0")])
def test_exec_lsm_flags_are_refused(pyrunc, bundle, flags):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("execlsm")
    detached(pyrunc, b, cid)
    try:
        p = pyrunc("exec", *flags, cid, "echo", "ran")
        assert p.returncode != 0 and "ran" not in p.out
        assert flags[0] in p.err, p.err
    finally:
        pyrunc("delete", "--force", cid)


def test_exec_process_json_lsm_fields_are_refused(pyrunc, bundle, tmp_path):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("execlsmj")
    detached(pyrunc, b, cid)
    try:
        proc = tmp_path / "process.json"
        proc.write_text(json.dumps({"args": ["echo", "ran"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                    "apparmorProfile": "docker-default"}))
        p = pyrunc("exec", "--process", proc, cid)
        assert p.returncode != 0 and "ran" not in p.out
        assert "process.apparmorProfile" in p.err, p.err
    finally:
        pyrunc("delete", "--force", cid)


def test_run_no_subreaper_is_refused_in_the_foreground(pyrunc, bundle):
    """pyrunc reaps its init as a child subreaper (the init protocol needs it): --no-subreaper cannot be honoured
    by a foreground run, so it is refused rather than ignored.  With --detach runc does not become a subreaper
    either, so there the flag changes nothing and is accepted."""
    b = bundle(["echo", "ran"])
    p = run(pyrunc, b, pyrunc.new_id("nosub"), "--no-subreaper")
    assert p.returncode != 0 and "ran" not in p.out
    assert "--no-subreaper" in p.err, p.err
    p = run(pyrunc, b, pyrunc.new_id("nosubd"), "--no-subreaper", "--detach")
    assert p.returncode == 0, p.err


def test_rootless_flag_values(pyrunc, bundle):
    """--rootless true|false|auto as runc (true: a cgroup the caller may not create is skipped when there are no
    limits; as root every cgroup can be created, so all three run); anything else is a usage error."""
    b = bundle(["echo", "ran"])
    for value in ("true", "false", "auto"):
        p = pyrunc("--rootless", value, "run", "--bundle", b, pyrunc.new_id("rootless"), stdin=subprocess.DEVNULL)
        assert p.returncode == 0 and p.out == "ran\n", p.err
    p = pyrunc("--rootless", "maybe", "run", "--bundle", b, pyrunc.new_id("rootless"), stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "ran" not in p.out
    assert "--rootless" in p.err and "maybe" in p.err, p.err


# --- ids (M1) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [("uid", 4294967295), ("gid", 4294967295)])
def test_config_id_minus_one_is_refused(pyrunc, bundle, key, value):
    """(uid_t)-1 means "leave unchanged" to setresuid: it must never be taken as a request, or the process would
    run as root."""
    b = bundle(["id"], edit=_set(("process", "user", key), value))
    cid = pyrunc.new_id("idmax")
    p = run(pyrunc, b, cid)
    assert p.returncode != 0, f"ran with {key}={value}: {p.out!r}"
    assert "uid=0" not in p.out
    assert f"process.user.{key}" in p.err, p.err


def test_additional_gid_minus_one_is_refused(pyrunc, bundle):
    b = bundle(["id"], edit=_set(("process", "user", "additionalGids"), [10, 4294967295]))
    p = run(pyrunc, b, pyrunc.new_id("gidsmax"))
    assert p.returncode != 0, p.out
    assert "process.user.additionalGids" in p.err, p.err


@pytest.mark.parametrize("user", ["-1", "4294967295:0", "0:-1", "1000:4294967295"])
def test_exec_user_minus_one_is_refused(pyrunc, bundle, user):
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("execid")
    detached(pyrunc, b, cid)
    try:
        p = pyrunc("exec", "--user", user, cid, "id")
        assert p.returncode != 0, f"exec --user {user} ran: {p.out!r}"
        assert "uid=0" not in p.out
        assert "--user" in p.err or "process.user" in p.err, p.err
    finally:
        pyrunc("delete", "--force", cid)


def test_many_additional_gids_are_all_set(pyrunc, bundle):
    """L9: the stub used to cut additionalGids at 256 without a word.  Now every one is set (the kernel's own
    limit, NGROUPS_MAX = 65536, is the only one)."""
    gids = list(range(1000, 1300))
    b = bundle(["sh", "-c", "id -G | wc -w; id -G | tr ' ' '\\n' | tail -1"],
               edit=_set(("process", "user", "additionalGids"), gids))
    p = run(pyrunc, b, pyrunc.new_id("gids300"))
    assert p.returncode == 0, p.err
    count, last = p.out.split()
    assert int(count) == 301 and last == "1299", p.out  # the primary gid 0 plus 300


# --- bundles that must be refused (item 6) ---------------------------------------------------------------

def _no_root(c):
    del c["root"]


def test_config_without_root_is_refused(pyrunc, bundle, tmp_path):
    b = bundle(["echo", "ran"], edit=_no_root)
    cid = pyrunc.new_id("noroot")
    p = run(pyrunc, b, cid)
    assert p.returncode != 0 and "ran" not in p.out
    assert "root must be specified" in p.err, p.err
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    if RUNC:
        rc, err = runc_run(tmp_path, b, "pyrunc-it-noroot-runc")
        assert rc != 0 and "root must be specified" in err, err


def _bind_over_proc(source, dest="/proc"):
    def edit(c):
        c["mounts"].append({"destination": dest, "type": "bind", "source": str(source), "options": ["rbind"]})
    return edit


def test_bind_of_host_dir_over_proc_is_refused(pyrunc, bundle, tmp_path):
    """CVE-2019-16884 class: a directory the caller controls over /proc (a fake attr/current, a fake
    self/...) is refused as runc refuses it: /proc may only be procfs."""
    host = tmp_path / "fakeproc"
    host.mkdir()
    (host / "marker").write_text("fake\n")
    b = bundle(["sh", "-c", "ls /proc"], edit=_bind_over_proc(host))
    cid = pyrunc.new_id("procbind")
    p = run(pyrunc, b, cid)
    assert p.returncode != 0, f"ran with a host directory over /proc: {p.out!r}"
    assert "marker" not in p.out
    assert "/proc" in p.err and "not of type proc" in p.err, p.err
    if RUNC:
        rc, err = runc_run(tmp_path, b, "pyrunc-it-procbind-runc")
        assert rc != 0 and "not of type proc" in err, err


def test_mount_inside_proc_is_refused(pyrunc, bundle, tmp_path):
    host = tmp_path / "fakesys"
    host.mkdir()
    b = bundle(["true"], edit=_bind_over_proc(host, "/proc/sys"))
    p = run(pyrunc, b, pyrunc.new_id("procsub"))
    assert p.returncode != 0
    assert "/proc/sys" in p.err and "inside /proc" in p.err, p.err


@pytest.mark.parametrize("name", ["cpuinfo", "meminfo", "uptime", "loadavg"])
def test_lxcfs_style_file_over_proc_is_allowed(pyrunc, bundle, tmp_path, name):
    fake = tmp_path / f"fake-{name}"
    fake.write_text(f"fake {name}\n")

    def edit(c):
        c["mounts"].append({"destination": f"/proc/{name}", "type": "bind", "source": str(fake),
                            "options": ["bind", "ro"]})

    p = run(pyrunc, bundle(["cat", f"/proc/{name}"], edit=edit), pyrunc.new_id("lxcfs"))
    assert p.returncode == 0, p.err
    assert p.out == f"fake {name}\n"


def test_host_procfs_over_proc_is_allowed(pyrunc, bundle):
    """runc lets a procfs (here the host's) be bound over /proc: the source is of type proc."""
    p = run(pyrunc, bundle(["sh", "-c", "test -e /proc/self/status && echo ok"], edit=_bind_over_proc("/proc")),
            pyrunc.new_id("hostproc"))
    assert p.returncode == 0 and p.out == "ok\n", p.err


def test_unknown_seccomp_names_are_logged_at_debug(pyrunc, bundle):
    """L13: a syscall name libseccomp does not know is skipped (as runc does), and --debug says which."""
    def edit(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["no_such_syscall_pyrunc", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    b = bundle(["echo", "ran"], edit=edit)
    p = pyrunc("--debug", "run", "--bundle", b, pyrunc.new_id("scdebug"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.out == "ran\n", p.err
    assert "no_such_syscall_pyrunc" in p.err and "level=debug" in p.err, p.err
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("scdebug"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "no_such_syscall_pyrunc" not in p.err, p.err


def test_bind_over_proc_through_an_image_symlink_is_refused(pyrunc, bundle, tmp_path):
    """The same attack with the destination spelled /evil, a symlink to /proc in the image: the mount would land
    on the procfs all the same (it is resolved inside the rootfs), so it is judged there."""
    host = tmp_path / "fakeproc"
    host.mkdir()
    (host / "marker").write_text("fake\n")
    b = bundle(["sh", "-c", "ls /proc"], edit=_bind_over_proc(host, "/evil"))
    os.symlink("/proc", b / "rootfs" / "evil")
    p = run(pyrunc, b, pyrunc.new_id("proclink"))
    assert p.returncode != 0, f"ran with a host directory over /proc: {p.out!r}"
    assert "marker" not in p.out
    assert "/evil is /proc in the rootfs" in p.err and "not of type proc" in p.err, p.err


def test_a_memory_limit_below_what_the_init_uses_fails_create_as_under_runc(pyrunc, bundle, tmp_path):
    """The limits of linux.resources are written once the init is in its cgroups, before it mounts anything
    (process/init.py), as runc writes them.  A cgroup v1 memory limit below what the init already uses is then
    refused by the kernel (EBUSY), and create says so; written before the fork, it was accepted and the init was
    killed by the OOM killer mid-setup ("container init process exited before it was set up").  runc refuses it
    too.  Nothing is left behind."""
    b = bundle(["echo", "ran"], edit=_set(("linux", "resources", "memory"), {"limit": 4096}))
    cid = pyrunc.new_id("memlow")
    p = run(pyrunc, b, cid)
    assert p.returncode == 1 and "ran" not in p.out, (p.out, p.err)
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    if os.path.isfile("/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # v1 memory, as on the development VM
        assert '/memory.limit_in_bytes \\"4096\\": device or resource busy (EBUSY)' in p.err, p.err  # logfmt
        rc, err = runc_run(tmp_path, b, pyrunc.new_id("memlow-runc"))
        assert rc == 1 and "unable to set memory limit to 4096" in err, err
