"""pyrunc.security.caps: capability masks for pyrunc-init, runc 1.1.5's rules for unknown and absent caps."""

import pytest

from pyrunc.security import caps

RUNC_SPEC = {  # `runc spec` 1.1.5
    "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
}


def test_table_is_the_kernel_numbering():
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))


def test_runc_spec_default():
    m, warnings = caps.masks(RUNC_SPEC, last=40)
    want = (1 << 29) | (1 << 5) | (1 << 10)
    assert (m["bnd"], m["eff"], m["prm"], m["inh"]) == (want, want, want, 0)
    # ambient needs permitted AND inheritable; runc ignores the kernel's refusal, so CapAmb is 0 under runc
    assert m["amb"] == 0
    assert warnings == []
    assert hex(want) == "0x20000420"  # CapBnd that runc 1.1.5 shows for this spec


def test_ambient_kept_when_inheritable_and_permitted():
    m, _ = caps.masks({"permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]},
                      last=40)
    assert m["amb"] == 1 << 5


@pytest.mark.parametrize("capabilities", [None, {}, {"bounding": None, "effective": []}])
def test_absent_or_empty_means_all_sets_empty(capabilities):
    # runc 1.1.5 with no process.capabilities: CapInh/Prm/Eff/Bnd/Amb all 0 (verified with the real runc)
    m, warnings = caps.masks(capabilities, last=40)
    assert m == {"bnd": 0, "eff": 0, "prm": 0, "inh": 0, "amb": 0}
    assert warnings == []


def test_unknown_and_unavailable_are_ignored_with_one_warning():
    m, warnings = caps.masks({"bounding": ["CAP_KILL", "CAP_BOGUS", "CAP_PERFMON", "CAP_BOGUS"],
                              "effective": ["CAP_ALSO_BOGUS", "CAP_CHOWN"]}, last=37)
    assert m["bnd"] == 1 << 5  # CAP_PERFMON (38) is above the kernel's last cap (37)
    assert m["eff"] == 1 << 0
    assert warnings == ["ignoring unknown or unavailable capabilities: [CAP_ALSO_BOGUS CAP_BOGUS CAP_PERFMON]"]


def test_last_cap_is_read_at_call_time(tmp_path, monkeypatch):
    f = tmp_path / "cap_last_cap"
    f.write_text("38\n")
    monkeypatch.setattr(caps, "CAP_LAST_CAP_FILE", str(f))
    assert caps.last_cap(str(f)) == 38
    assert caps.last_cap(str(tmp_path / "missing")) == 40
    m, warnings = caps.masks({"bounding": ["CAP_BPF"]}, last=caps.last_cap(str(f)))
    assert m["bnd"] == 0 and warnings


def test_default_last_cap_comes_from_proc():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        kernel_last = int(f.read())
    m, _ = caps.masks({"bounding": list(caps.CAPABILITIES)})
    assert m["bnd"] == (1 << (min(kernel_last, 40) + 1)) - 1


def test_control_string():
    m, _ = caps.masks(RUNC_SPEC, last=40)
    assert caps.control(m) == "bnd=20000420,eff=20000420,prm=20000420,inh=0,amb=0"
