"""pyrunc.container.state without root: ids, the atomic pid file, the store, and status derivation from a fake
state dir whose init is this very process (right start time: alive) or not (wrong start time: a recycled pid)."""

import json
import os
import posix
import subprocess
import sys
import threading

import pytest

from pyrunc.container import state as st
from pyrunc.errors import Exists, NotFound, PyruncError, UsageError


@pytest.mark.parametrize("cid", ["a", "abc-DEF_1.2+3", "x" * 1024, "...", "a..b", "-leading-dash"])
def test_valid_ids(cid):
    assert st.check_id(cid) == cid


@pytest.mark.parametrize("cid,msg", [
    ("", "container id cannot be empty"), (".", "invalid container id format: ."),
    ("..", "invalid container id format: .."), ("a/b", "invalid container id format: a/b"),
    ("../x", "invalid container id format"), ("a b", "invalid container id format"),
    ("x" * 1025, "invalid container id format"), ("é", "invalid container id format"),
    ("a\nb", "invalid container id format"), ("a\0b", "invalid container id format"),
])
def test_invalid_ids(cid, msg):
    with pytest.raises(UsageError) as e:
        st.check_id(cid)
    assert msg in str(e.value)


def test_pid_file_bare_digits_atomic(tmp_path):
    p = tmp_path / "init.pid"
    st.write_pid_file(str(p), 12345)
    assert p.read_bytes() == b"12345"
    st.write_pid_file(str(p), 7)  # replaced whole, never truncated in place
    assert p.read_bytes() == b"7"
    assert sorted(os.listdir(tmp_path)) == ["init.pid"], "no temp file left behind"


def test_pid_file_missing_dir(tmp_path):
    with pytest.raises(PyruncError) as e:
        st.write_pid_file(str(tmp_path / "no" / "init.pid"), 1)
    assert "write pid file" in str(e.value) and "no such file or directory" in str(e.value)


def test_pid_file_replaces_symlink_not_target(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "init.pid"
    os.symlink(target, link)
    st.write_pid_file(str(link), 42)
    assert target.read_text() == "keep"
    assert not os.path.islink(link) and link.read_bytes() == b"42"


def test_proc_start_time_self():
    state, start = st.proc_start_time(os.getpid())
    assert state in ("R", "S") and start > 0
    assert st.proc_start_time(2 ** 22 + 1) is None  # above pid_max's hard limit: never a process


def test_proc_start_time_parses_names_with_parens(tmp_path):
    # a process name may hold spaces and ')': the fields are counted after the LAST ')'
    import shutil

    odd = tmp_path / "a) b (c"  # comm is taken from the file name
    shutil.copy("/bin/sleep", odd)
    p = subprocess.Popen([str(odd), "100"])
    try:
        for _ in range(1000):
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                if b"(a) b (c)" in f.read():
                    break
        else:
            pytest.fail("the odd name never showed in /proc/<pid>/stat")
        s = st.proc_start_time(p.pid)
        assert s is not None and s[0] in ("R", "S") and s[1] >= st.proc_start_time(os.getpid())[1]
    finally:
        p.kill()
        p.wait()


def _doc(cid, pid, start, **kw):
    doc = {"ociVersion": "1.2.0", "id": cid, "bundle": "/b", "rootfs": "/b/rootfs",
           "created": "2026-01-02T03:04:05.000000006Z", "init_pid": pid, "init_start": start}
    doc.update(kw)
    return doc


def _fake(tmp_path, cid, doc, fifo=False):
    d = tmp_path / cid
    d.mkdir(parents=True)
    (d / st.STATE_FILE).write_text(json.dumps(doc))
    if fifo:
        os.mkfifo(d / st.FIFO)
    return st.Store(str(tmp_path))


def test_status_running_created_stopped(tmp_path):
    me, start = os.getpid(), st.proc_start_time(os.getpid())[1]
    store = _fake(tmp_path, "run", _doc("run", me, start))
    c = store.load("run")
    assert c.alive() and c.status() == "running"
    s = c.oci_state()
    assert s["pid"] == me and s["status"] == "running"
    assert list(s) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
    assert s["owner"] == ""

    store = _fake(tmp_path, "crt", _doc("crt", me, start), fifo=True)
    assert store.load("crt").status() == "created"

    # a recycled pid: the pid is alive (it is us) but started at another time
    store = _fake(tmp_path, "old", _doc("old", me, start - 1))
    c = store.load("old")
    assert not c.alive() and c.status() == "stopped"
    assert c.oci_state()["pid"] == 0

    store = _fake(tmp_path, "none", _doc("none", 0, 0))
    assert store.load("none").status() == "stopped"


def test_zombie_is_stopped(tmp_path):
    p = subprocess.Popen(["true"])
    try:
        # Block until the child has exited but leave it unreaped (WNOWAIT): a zombie whatever the scheduler does.
        # (Polling /proc for "Z" a fixed number of times failed on a loaded machine: the child had not run yet.)
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        s = st.proc_start_time(p.pid)
        assert s and s[0] == "Z"
        store = _fake(tmp_path, "z", _doc("z", p.pid, s[1]))
        assert store.load("z").status() == "stopped"
    finally:
        p.wait()


def test_paused_from_freezer(tmp_path):
    me, start = os.getpid(), st.proc_start_time(os.getpid())[1]
    fz = tmp_path / "freezer"
    fz.mkdir()
    (fz / "freezer.state").write_text("FROZEN\n")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.freeze").write_text("0\n")
    root = tmp_path / "root"
    store = _fake(root, "p1", _doc("p1", me, start, cgroup_paths={"freezer": str(fz)}))
    assert store.load("p1").status() == "paused"
    store = _fake(root, "p2", _doc("p2", me, start, cgroup_paths={"": str(v2)}))
    assert store.load("p2").status() == "running"
    (v2 / "cgroup.freeze").write_text("1\n")
    assert store.load("p2").status() == "paused"


def test_annotations_only_when_present(tmp_path):
    store = _fake(tmp_path, "a", _doc("a", 0, 0, annotations={"k": "v"}))
    s = store.load("a").oci_state()
    assert s["annotations"] == {"k": "v"} and list(s)[-2:] == ["annotations", "owner"]
    store = _fake(tmp_path, "b", _doc("b", 0, 0, annotations={}))
    assert "annotations" not in store.load("b").oci_state()


def test_store_load_missing_reserve_remove(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    with pytest.raises(NotFound) as e:
        store.load("nope")
    assert str(e.value) == "container does not exist"
    assert store.ids() == []
    d = store.reserve("c1")
    assert os.path.isdir(d)
    with pytest.raises(Exists) as e:
        store.reserve("c1")
    assert "container with id exists: c1" in str(e.value)
    assert store.ids() == []  # no state.json yet: not a container
    c = st.Container(store.root, "c1", _doc("c1", 0, 0))
    c.save()
    assert store.ids() == ["c1"]
    assert sorted(os.listdir(d)) == [st.STATE_COPY, st.STATE_FILE]  # the temp files were renamed
    assert store.load("c1").doc["init_pid"] == 0
    store.remove("c1")
    assert not os.path.exists(d)
    with pytest.raises(UsageError):
        store.load("../etc")


def test_corrupt_state_is_an_error_not_a_crash(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / st.STATE_FILE).write_text("{not json")
    with pytest.raises(PyruncError) as e:
        st.Store(str(tmp_path)).load("bad")
    assert "state.json" in str(e.value)


def test_lock_refuses_a_directory_replaced_while_waiting(tmp_path, monkeypatch):
    """A verb that waited for the lock while another deleted the container (and a new one took the id) must not
    act on the new container with the old one's document."""
    from pyrunc.errors import NotFound

    d = tmp_path / "c1"
    d.mkdir()
    real_lockf = posix.lockf

    def racing_lockf(fd, cmd, length):
        for name in os.listdir(d):  # the other delete finishes ...
            os.unlink(d / name)
        d.rmdir()
        d.mkdir()  # ... and a create reuses the id
        (d / st.LOCK_FILE).write_text("")
        return real_lockf(fd, cmd, length)

    monkeypatch.setattr(posix, "lockf", racing_lockf)
    with pytest.raises(NotFound):
        with st.Lock(str(d)):
            pass
    monkeypatch.setattr(posix, "lockf", real_lockf)
    with st.Lock(str(d)) as lock:  # an undisturbed lock is taken
        assert lock.dir_id == (d.stat().st_dev, d.stat().st_ino)
    assert not st._mutex(str(d)).locked(), "released with the lock"


def test_lock_excludes_another_process(tmp_path):
    """A record lock: a process holding it makes another's non-blocking lock "does not exist" and its blocking
    one wait, until the holder lets go; `fcntl` is never loaded for it."""
    d = tmp_path / "c1"
    d.mkdir()
    code = ("import sys\nfrom pyrunc.container import state as st\nwith st.Lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\nprint('fcntl' in sys.modules)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        assert p.stdout.readline() == "held\n"
        with pytest.raises(st.errors.NotFound):
            with st.Lock(str(d), blocking=False):
                pass
        got = []
        t = threading.Thread(target=lambda: got.append(st.Lock(str(d)).__enter__()))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got, "a blocking lock waits for the other process"
        p.stdin.write("\n")
        p.stdin.flush()
        t.join(10)
        assert got, "and gets the lock once it let go"
        got[0].__exit__(None, None, None)
        assert p.stdout.readline() == "False\n"
    finally:
        p.kill()
        p.wait()


def test_lock_excludes_another_thread_of_the_process(tmp_path):
    """A record lock belongs to the process, so the shim's threads would all get it at once: Lock's own mutex
    keeps them apart."""
    d = tmp_path / "c1"
    d.mkdir()
    with st.Lock(str(d)):
        with pytest.raises(st.errors.NotFound):
            with st.Lock(str(d), blocking=False):
                pass
        order = []

        def second():
            with st.Lock(str(d)):
                order.append("second")

        t = threading.Thread(target=second)
        t.start()
        t.join(0.3)
        assert t.is_alive(), "a blocking lock in another thread waits"
        order.append("first")
    t.join(10)
    assert order == ["first", "second"]


def test_lock_file_never_followed_as_a_symlink(tmp_path):
    """The lock file is made on first use: never through a symlink planted in its place (a root verb on a
    rootless container's directory would open, and lock, whatever it points at)."""
    d = tmp_path / "c1"
    d.mkdir()
    target = tmp_path / "elsewhere"
    os.symlink(target, d / st.LOCK_FILE)
    with pytest.raises(PyruncError, match=f"^open {d}/{st.LOCK_FILE}: too many levels of symbolic links$"):
        with st.Lock(str(d)):
            pass
    assert not target.exists() and not st._mutex(str(d)).locked()


def test_lock_of_a_missing_container(tmp_path):
    with pytest.raises(st.errors.NotFound):
        with st.Lock(str(tmp_path / "nope")):
            pass
    assert not (tmp_path / "nope").exists()


def test_creation_record_names_the_systemd_unit(tmp_path):
    """A create killed after the systemd driver started the unit: delete reopens the manager from the creation
    record, so the record must name the unit (else a cgroupfs manager with nothing `created` removes nothing and
    the unit's dirs on the hierarchies systemd leaves alone stay behind)."""
    import types

    from pyrunc.container import lifecycle
    from pyrunc.container.state import PROVISIONAL, Container, Store

    store = Store(str(tmp_path))
    store.reserve("c1")
    prov = Container(store.root, "c1", {"id": "c1"})
    mgr = types.SimpleNamespace(paths={"freezer": "/sys/fs/cgroup/freezer/system.slice/pyrunc-c1.scope"},
                                created=[], unit="pyrunc-c1.scope")
    for before in (True, False):
        lifecycle._record_cgroup(prov, mgr, before)
        doc = store.load_provisional("c1").doc
        assert doc["cgroup_unit"] == "pyrunc-c1.scope", (before, doc)
    assert os.path.exists(os.path.join(store.path("c1"), PROVISIONAL))


def test_creation_record_is_never_renamed_over_an_old_one(tmp_path, monkeypatch):
    """create writes the creation record again when its cgroup mkdirs made more than the first record named (a
    parent made on the way: containerd's /<namespace>, whenever no other container of the namespace exists).  On
    ext4 (this VM's /run and /tmp) a rename over an existing file makes the kernel write the new file's data out
    at once (auto_da_alloc), and delete's unlink of such a record cost 0.22-0.26 ms (0.01-0.02 ms for one never
    renamed over; strace -T, cgroupsPath /hot4ns/<id>), up to several ms with that I/O queued.  So the
    record is rewritten by unlink + rename to a free name; state.json, read by `state` without the lock, keeps
    the atomic rename over the old one."""
    store = st.Store(str(tmp_path))
    d = store.reserve("c1")
    real_rename = os.rename
    over = []

    def rename(src, dst):
        over.append((os.path.basename(dst), os.path.exists(dst)))
        return real_rename(src, dst)

    monkeypatch.setattr(st.posix, "rename", rename)
    c = st.Container(store.root, "c1", {"id": "c1", "step": 1})
    c.save(st.PROVISIONAL)
    c.doc["step"] = 2
    c.save(st.PROVISIONAL)
    c.save()
    c.save()
    # state.json's marshal copy is never renamed over an old one either: a rewrite removes the old copy first
    assert over == [(st.PROVISIONAL, False), (st.PROVISIONAL, False), (st.STATE_FILE, False), (st.STATE_COPY, False),
                    (st.STATE_FILE, True), (st.STATE_COPY, False)]
    assert sorted(os.listdir(d)) == [st.STATE_COPY, st.PROVISIONAL, st.STATE_FILE]
    assert store.load_provisional("c1").doc["step"] == 2


def test_creation_record_survives_a_crash_inside_its_rewrite(tmp_path, monkeypatch):
    """pyrunc killed between the unlink of the old record and the rename of the new one: the new record, complete
    in its temp file, is what delete reads (it removes what the record lists: never nothing)."""
    store = st.Store(str(tmp_path))
    d = store.reserve("c1")
    c = st.Container(store.root, "c1", {"id": "c1", "cgroup_created": ["/a"]})
    c.save(st.PROVISIONAL)

    def killed(src, dst):
        raise KeyboardInterrupt("SIGKILL")

    monkeypatch.setattr(st.posix, "rename", killed)
    c.doc["cgroup_created"] = ["/a", "/b"]
    with pytest.raises(KeyboardInterrupt):
        c.save(st.PROVISIONAL)
    monkeypatch.undo()
    assert st.PROVISIONAL not in os.listdir(d)  # only the temp file holds a record now
    assert store.load_provisional("c1").doc["cgroup_created"] == ["/a", "/b"]
    store.remove("c1")
    assert not os.path.exists(d)


def test_remove_unlinks_known_files_without_listing(tmp_path, monkeypatch):
    """delete's last step: the files pyrunc makes in a container's directory are unlinked by name (no listing:
    an open, two getdents and a close less); anything else there is found by listing once rmdir says not empty."""
    store = st.Store(str(tmp_path))
    d = store.reserve("c1")
    c = st.Container(store.root, "c1", {"id": "c1"})
    c.save(st.PROVISIONAL)
    c.save()
    os.mkfifo(os.path.join(d, st.FIFO))
    real_listdir = st.posix.listdir

    def no_listdir(path):
        raise AssertionError(f"listed {path}")

    monkeypatch.setattr(st.posix, "listdir", no_listdir)
    store.remove("c1")
    assert not os.path.exists(d)
    store.remove("c1")  # gone already: nothing to do
    d = store.reserve("c2")
    open(os.path.join(d, ".state.json.12345"), "w").close()  # a save that died before its rename
    monkeypatch.setattr(st.posix, "listdir", real_listdir)
    store.remove("c2")
    assert not os.path.exists(d)


def test_reserve_makes_the_root_with_its_parents_and_names_a_root_that_is_a_file(tmp_path):
    store = st.Store(str(tmp_path / "a" / "b" / "root"))
    d = store.reserve("c1")
    assert os.path.isdir(d) and os.stat(store.root).st_mode & 0o777 == 0o711
    (tmp_path / "file").write_text("")
    with pytest.raises(PyruncError) as e:
        st.Store(str(tmp_path / "file")).reserve("c1")
    assert str(e.value) == f"mkdir {tmp_path / 'file'}: not a directory"  # runc's words
    with pytest.raises(PyruncError) as e:
        st.Store(str(tmp_path / "file" / "sub")).reserve("c1")
    assert str(e.value) == f"mkdir {tmp_path / 'file' / 'sub'}: not a directory"


def test_load_reads_the_marshal_copy_and_never_trusts_a_bad_one(tmp_path, monkeypatch):
    """save() writes state.json and its marshal copy; load() reads the copy (no JSON parser: `_json` stays
    unloaded), and state.json where the copy is missing, unreadable or not a document."""
    import marshal

    from pyrunc import fastjson

    store = st.Store(str(tmp_path))
    store.reserve("c1")
    doc = dict(_doc("c1", 0, 0), annotations={"k": ("a", "b")})  # a tuple: the copy holds what JSON says, a list
    st.Container(store.root, "c1", doc).save()
    copy = tmp_path / "c1" / st.STATE_COPY
    assert marshal.loads(copy.read_bytes()) == json.loads((tmp_path / "c1" / st.STATE_FILE).read_text())
    with monkeypatch.context() as m:
        m.setattr(fastjson, "loads", lambda s: pytest.fail("load() parsed JSON with a copy there"))
        assert store.load("c1").doc["annotations"] == {"k": ["a", "b"]}
    for bad in (None, b"\x00garbage", marshal.dumps(["not", "a", "dict"])):
        if bad is None:
            copy.unlink()
        else:
            copy.write_bytes(bad)
        assert store.load("c1").doc["id"] == "c1"  # from state.json
    store.remove("c1")
    assert not (tmp_path / "c1").exists()


def test_a_rewrite_removes_the_old_copy_before_state_json_changes(tmp_path, monkeypatch):
    """update's save(): the old copy goes, then state.json is replaced, then the new copy comes: whenever it
    stops, no copy disagrees with state.json.  create's first placement has no old copy to remove."""
    store = st.Store(str(tmp_path))
    store.reserve("c1")
    c = st.Container(store.root, "c1", _doc("c1", 0, 0))
    steps = []
    real_unlink, real_rename = st.posix.unlink, st.posix.rename
    monkeypatch.setattr(st.posix, "unlink", lambda p: steps.append(("unlink", os.path.basename(p))) or real_unlink(p))
    monkeypatch.setattr(st.posix, "rename",
                        lambda a, b: steps.append(("rename", os.path.basename(b))) or real_rename(a, b))
    c.place(c.write_temp(), first=True)
    assert steps == [("rename", st.STATE_FILE), ("rename", st.STATE_COPY)]
    steps.clear()
    c.doc["init_pid"] = 7
    c.save()
    assert steps == [("unlink", st.STATE_COPY), ("rename", st.STATE_FILE), ("rename", st.STATE_COPY)]
    assert store.load("c1").doc["init_pid"] == 7
