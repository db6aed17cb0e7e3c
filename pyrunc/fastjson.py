"""JSON for the hot verbs without the `json` package.

`import json` costs ~6 ms here (json.decoder and json.encoder import `re`, which imports `enum`): more than half
of what `pyrunc state` may spend on top of Python's start-up.  The C accelerator `_json` that `json` itself uses
has a scanner and an encoder that need none of that: loads() and the compact dumps() use them, loading `_json`
on first use (a shared object: ~0.2 ms to dlopen here).  The indented dumps() that `state` prints needs nothing
but the interpreter, so the hot verbs, which read the state's marshal copy (container/state.py), never load it.
Output matches json.dumps (compact, or indented with `indent`, no sort), with ensure_ascii=False.
"""

from . import Namespace


def _constant(name):
    raise ValueError(f"invalid JSON constant {name}")


_WS = " \t\n\r"
_c = []  # [scanner, compact encoder], made on first use (_accelerated)


def _accelerated():
    if not _c:
        import _json

        # What json.decoder.JSONDecoder gives the C scanner, as attributes: strict, no hooks, no NaN/Infinity
        context = Namespace(strict=True, object_hook=None, object_pairs_hook=None, parse_float=float,
                            parse_int=int, memo={}, parse_constant=_constant)
        # json.dumps's own C encoder (what json uses without indent): no cycle markers (a dict kept across calls
        # would keep the ids of an encode that failed half-way; a cyclic document ends in RecursionError
        # instead), no NaN/Infinity (not JSON)
        _c[:] = (_json.make_scanner(context),
                 _json.make_encoder(None, _default, _json.encode_basestring, None, ":", ",", False, False, False))
    return _c


def loads(s):
    if isinstance(s, (bytes, bytearray)):
        s = s.decode()
    i = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _accelerated()[0](s, i)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at offset {e.value}") from None
    if s[end:].strip(_WS):
        raise ValueError(f"extra data at offset {end}")
    return obj


def _default(o):
    raise TypeError(f"cannot encode {type(o).__name__} as JSON")


# json.encoder's ESCAPE_DCT (ensure_ascii=False): quote, backslash, the five short escapes, other controls as \u00XX
_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', ord("\b"): "\\b", ord("\f"): "\\f", ord("\n"): "\\n",
                 ord("\r"): "\\r", ord("\t"): "\\t"})


def _str(s):
    """_json.encode_basestring's result, by str.translate."""
    return '"' + s.translate(_ESCAPES) + '"'


def dumps(obj, indent=None):
    if not indent:
        return "".join(_accelerated()[1](obj, 0))
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
