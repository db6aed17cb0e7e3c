"""The creation record (state.PROVISIONAL) that create writes around its cgroup steps (lifecycle._record_cgroup):
written before the first mkdir with the leaf dirs about to be made, and again afterwards only when what was made
differs from that (a parent made on the way, a leaf that existed): one write less on a plain create.  Temp dirs
stand in for cgroup dirs; no root needed."""

from pyrunc.container import lifecycle
from pyrunc.container.state import PROVISIONAL, Container, Store
from pyrunc.record import record


class FakeManager(record("FakeManager", "paths created unit")):
    __slots__ = ()


def _prov(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "root"))
    store.reserve("c1")
    prov = Container(store.root, "c1", {"id": "c1"})
    saves = []
    real = Container.save

    def counted(self, name="state.json"):
        saves.append((name, dict(self.doc)))
        return real(self, name)

    monkeypatch.setattr(Container, "save", counted)
    return store, prov, saves


def _load(store):
    from pyrunc import fastjson

    with open(f"{store.path('c1')}/{PROVISIONAL}", "rb") as f:
        return fastjson.loads(f.read())


def test_second_record_is_skipped_when_create_made_exactly_the_leaves(tmp_path, monkeypatch):
    store, prov, saves = _prov(tmp_path, monkeypatch)
    leaf_a, leaf_b = str(tmp_path / "cpu" / "c1"), str(tmp_path / "memory" / "c1")
    before = FakeManager({"cpu": leaf_a, "cpuacct": leaf_a, "memory": leaf_b}, [], None)
    lifecycle._record_cgroup(prov, before, True)
    assert len(saves) == 1 and _load(store)["cgroup_created"] == [leaf_a, leaf_b]
    after = FakeManager(before.paths, [leaf_a, leaf_b], None)
    lifecycle._record_cgroup(prov, after, False)
    assert len(saves) == 1, "nothing changed: the record on disk already says it"
    assert _load(store)["cgroup_created"] == [leaf_a, leaf_b]


def test_second_record_is_written_when_create_made_a_parent_too(tmp_path, monkeypatch):
    store, prov, saves = _prov(tmp_path, monkeypatch)
    parent = str(tmp_path / "memory" / "k8s.io")
    leaf = parent + "/c1"
    lifecycle._record_cgroup(prov, FakeManager({"memory": leaf}, [], None), True)
    lifecycle._record_cgroup(prov, FakeManager({"memory": leaf}, [parent, leaf], None), False)
    assert len(saves) == 2
    assert _load(store)["cgroup_created"] == [parent, leaf]


def test_second_record_is_written_when_a_leaf_existed(tmp_path, monkeypatch):
    store, prov, saves = _prov(tmp_path, monkeypatch)
    leaf = tmp_path / "memory" / "c1"
    leaf.mkdir(parents=True)  # a pre-existing cgroup: not recorded as made, before or after
    other = str(tmp_path / "pids" / "c1")
    lifecycle._record_cgroup(prov, FakeManager({"memory": str(leaf), "pids": other}, [], None), True)
    assert _load(store)["cgroup_created"] == [other]
    lifecycle._record_cgroup(prov, FakeManager({"memory": str(leaf), "pids": other}, [other], None), False)
    assert len(saves) == 1
    lifecycle._record_cgroup(prov, None, False)  # rootless without cgroup access: none made, recorded
    assert len(saves) == 2 and _load(store)["cgroup_paths"] == {}
