"""pyrunc.record: the namedtuple stand-in of the hot paths behaves as namedtuple does where pyrunc relies on it."""

from collections import namedtuple

import pytest

from pyrunc.record import record

FIELDS = "a b c d"


@pytest.mark.parametrize("args, kw", [((1, 2), {}), ((1, 2, 3), {}), ((1,), {"b": 2, "d": 4}), ((1, 2, 3, 4), {})])
def test_record_matches_namedtuple(args, kw):
    R, N = record("R", FIELDS, defaults=(None, False)), namedtuple("R", FIELDS, defaults=(None, False))
    r, n = R(*args, **kw), N(*args, **kw)
    assert tuple(r) == tuple(n) and r == n and hash(r) == hash(n)
    assert (r.a, r.b, r.c, r.d) == (n.a, n.b, n.c, n.d)
    assert r._replace(c=9) == n._replace(c=9) and type(r._replace(c=9)) is R
    assert repr(r) == repr(n)
    assert R._fields == N._fields


@pytest.mark.parametrize("args, kw", [((), {}), ((1,), {}), ((1, 2, 3, 4, 5), {}), ((1, 2), {"a": 1}),
                                      ((1, 2), {"e": 1})])
def test_record_refuses_what_namedtuple_refuses(args, kw):
    R, N = record("R", FIELDS, defaults=(None, False)), namedtuple("R", FIELDS, defaults=(None, False))
    with pytest.raises(TypeError):
        N(*args, **kw)
    with pytest.raises(TypeError):
        R(*args, **kw)
    with pytest.raises(TypeError):
        R(1, 2)._replace(e=1)


def test_record_subclass_keeps_no_dict():
    class W(record("W", "x y", defaults=(0,))):
        __slots__ = ()

        def both(self):
            return (self.x, self.y)

    w = W(1)
    assert w.both() == (1, 0) and not hasattr(w, "__dict__") and isinstance(w, tuple)
    with pytest.raises(AttributeError):
        w.x = 2
