"""M7: stage A opens every namespace path before the first setns and joins in nsexec's order: each non-user
namespace its (host) privileges allow, then the user namespace (root there at once), then those that needed it.
exec leaves the user namespace to the stub (keep_user)."""

import errno
import os

import pytest

from pyrunc.errors import SysError
from pyrunc.linux import NAMESPACES
from pyrunc.process import child


class Kernel:
    """setns that refuses (EPERM) the namespaces in `owned_by_user` until the user namespace is joined."""

    def __init__(self, owned_by_user=()):
        self.fds, self.joined, self.owned, self.in_user = {}, [], set(owned_by_user), False

    def ns(self, t):
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.fds[fd] = t
        return fd

    def setns(self, fd, nstype, what=None):
        t = self.fds[fd]
        assert nstype == NAMESPACES[t][0]
        if t in self.owned and not self.in_user:
            raise SysError("setns", what, errno.EPERM)
        self.in_user = self.in_user or t == "user"
        self.joined.append(t)


@pytest.fixture
def ids(monkeypatch):
    calls = []
    monkeypatch.setattr(child.os, "setresuid", lambda *a: calls.append(("uid",) + a))
    monkeypatch.setattr(child.os, "setresgid", lambda *a: calls.append(("gid",) + a))
    return calls


def test_host_owned_first_then_user_then_the_rest(ids):
    k = Kernel(owned_by_user={"ipc"})
    joins = [(t, k.ns(t)) for t in ("user", "pid", "network", "ipc", "mount")]
    assert child.join_namespaces(joins, k) is None
    assert k.joined == ["pid", "network", "mount", "user", "ipc"]
    assert ids == [("gid", 0, 0, 0), ("uid", 0, 0, 0)]


def test_exec_leaves_the_user_namespace_to_the_stub(ids):
    k = Kernel()
    joins = [(t, k.ns(t)) for t in ("user", "network", "mount")]
    fd = child.join_namespaces(joins, k, keep_user=True)
    try:
        assert k.fds[fd] == "user" and k.joined == ["network", "mount"] and not ids
    finally:
        os.close(fd)


def test_eperm_without_a_user_namespace_is_an_error(ids):
    k = Kernel(owned_by_user={"network"})
    with pytest.raises(SysError) as e:
        child.join_namespaces([("network", k.ns("network"))], k)
    assert e.value.errno == errno.EPERM


def test_open_namespaces_names_a_missing_path(tmp_path):
    with pytest.raises(SysError) as e:
        child.open_namespaces([("network", "/dev/null"), ("ipc", str(tmp_path / "missing"))])
    assert "missing" in str(e.value) and e.value.errno == errno.ENOENT
