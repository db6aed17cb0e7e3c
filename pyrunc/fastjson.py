"""JSON for the hot verbs without the `json` package.

`import json` costs ~6 ms here (json.decoder and json.encoder import `re`, which imports `enum`): more than half
of what `pyrunc state` may spend on top of Python's start-up.  The C accelerator `_json` that `json` itself uses
has a scanner and string encoders that need none of that, so the state store and the state output use them.
Output matches json.dumps (compact, or indented with `indent`, no sort), with ensure_ascii=False.
"""

import _json

from . import Namespace


def _constant(name):
    raise ValueError(f"invalid JSON constant {name}")


# What json.decoder.JSONDecoder gives the C scanner, as attributes: strict, no hooks, no NaN/Infinity
_CONTEXT = Namespace(
    strict=True, object_hook=None, object_pairs_hook=None, parse_float=float, parse_int=int, memo={},
    parse_constant=_constant)
_scan = _json.make_scanner(_CONTEXT)
_WS = " \t\n\r"
_str = _json.encode_basestring


def loads(s):
    if isinstance(s, (bytes, bytearray)):
        s = s.decode()
    i = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, i)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at offset {e.value}") from None
    if s[end:].strip(_WS):
        raise ValueError(f"extra data at offset {end}")
    return obj


def _default(o):
    raise TypeError(f"cannot encode {type(o).__name__} as JSON")


# json.dumps's own C encoder (what json uses without indent), built once: no cycle markers (a dict kept across
# calls would keep the ids of an encode that failed half-way; a cyclic document ends in RecursionError instead),
# no NaN/Infinity (not JSON)
_encode = _json.make_encoder(None, _default, _str, None, ":", ",", False, False, False)


def dumps(obj, indent=None):
    if not indent:
        return "".join(_encode(obj, 0))
    out = []
    _emit(obj, out, indent, 0)
    return "".join(out)


def _emit(o, out, indent, level):
    if isinstance(o, str):
        out.append(_str(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        if o != o or o in (float("inf"), float("-inf")):
            raise ValueError(f"cannot encode {o!r} as JSON")
        out.append(float.__repr__(o))
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        pad = "\n" + " " * (indent * (level + 1)) if indent else ""
        out.append("{")
        for i, (k, v) in enumerate(o.items()):
            out.append(("," if i else "") + pad + _str(str(k)) + (": " if indent else ":"))
            _emit(v, out, indent, level + 1)
        out.append(("\n" + " " * (indent * level) if indent else "") + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        pad = "\n" + " " * (indent * (level + 1)) if indent else ""
        out.append("[")
        for i, v in enumerate(o):
            out.append(("," if i else "") + pad)
            _emit(v, out, indent, level + 1)
        out.append(("\n" + " " * (indent * level) if indent else "") + "]")
    else:
        _default(o)
