"""pyrunc.fastjson must agree with the json package, byte for byte, on everything the state store writes."""

import json
import subprocess
import sys

import pytest

from pyrunc import fastjson

SAMPLES = [
    {}, [], {"a": 1}, {"id": "c1", "pid": 123, "status": "running", "annotations": {"k": "v é \"q\" \\ \n"}},
    [1, -2, 3.5, True, False, None, "x"], {"nested": {"list": [{"a": []}, {}], "n": 10**20}},
    {"ociVersion": "1.2.0", "cgroup_paths": {"": "/sys/fs/cgroup/unified/x", "memory": "/m"}, "hooks": {}},
    "\u2028\u0001\t", 0, -0.0,
]


@pytest.mark.parametrize("obj", SAMPLES)
def test_dumps_matches_json(obj):
    assert fastjson.dumps(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    assert fastjson.dumps(obj, indent=2) == json.dumps(obj, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("obj", SAMPLES)
def test_roundtrip(obj):
    text = json.dumps(obj)
    assert fastjson.loads(text) == obj
    assert fastjson.loads(("  " + text + "\n").encode()) == obj


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "[1 2]", "{'a': 1}", "01"])
def test_rejects_what_json_rejects(bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_import_is_cheap():
    """Neither the import nor an indented dumps (what `state` prints) loads `json` or even `_json`, a shared object
    (~0.2 ms to load); loads() does."""
    code = ("import sys, pyrunc.fastjson as f; a = sorted(m for m in ('re', 'json', 'enum', '_json') if m in "
            "sys.modules); f.dumps({'a': ['\\n', 1.5, None]}, indent=2); b = '_json' in sys.modules; f.loads('[]'); "
            "print(a, b, '_json' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)}).stdout
    assert out.strip() == "[] False True"


def test_string_escapes_are_the_c_encoders():
    """The indented output's strings, escaped in Python (str.translate), as _json.encode_basestring escapes them:
    every code point alone (lone surrogates included), and in mixed strings."""
    import _json

    for c in range(0x110000):
        ch = chr(c)
        assert fastjson._str(ch) == _json.encode_basestring(ch), hex(c)
    mixed = 'a"b\\c\x00\x1f\x7f\u2028 é\ud800\U0001f600\t\r\n\b\f'
    assert fastjson._str(mixed) == _json.encode_basestring(mixed)


def test_compact_dumps_is_the_c_encoder(monkeypatch):
    """Compact output (every state.json and creation record a create writes) is _json's C encoder, not a walk
    of the document in Python (~0.15 ms a state document); only indented output, which it lacks here, is."""

    def walked(*a):
        raise AssertionError("compact dumps walked the document in Python")

    monkeypatch.setattr(fastjson, "_emit", walked)
    for obj in SAMPLES:
        assert fastjson.dumps(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("indent", [None, 2])
def test_what_json_cannot_hold_is_refused(indent):
    with pytest.raises(TypeError, match="cannot encode set as JSON"):
        fastjson.dumps({"a": {1}}, indent=indent)
    with pytest.raises(ValueError):
        fastjson.dumps([float("nan")], indent=indent)
