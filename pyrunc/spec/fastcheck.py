"""A tiny JSON Schema interpreter that only answers "valid or not", for the hot path of create/run.

Importing jsonschema and validating one config.json costs about 120 ms; walking the same schema here costs well
under a millisecond. The price is that this module knows only the keywords our own schemas use (listed in
KEYWORDS below). It never guesses: a keyword it does not know, a non-local $ref or a schema of an unexpected
shape raises Unknown, and the caller (validate.py) then falls back to jsonschema. It gives no error message;
when it says "invalid", validate.py asks jsonschema for the precise one.

Semantics follow draft 2020-12 as jsonschema implements it, with one deliberate difference shared by
validate.py's jsonschema validator: "integer" means a Python int that is not a bool (JSON 1.0 is rejected, as
Go's encoding/json rejects it for runc's integer fields). tests/unit/test_fastcheck.py checks that the verdict
agrees with jsonschema on hundreds of mutated configs.
"""

# Keywords that only annotate: they never change the verdict.
_ANNOTATIONS = frozenset(("$schema", "$comment", "title", "description", "default", "examples",
                          "$defs", "definitions", "deprecated", "readOnly", "writeOnly"))

KEYWORDS = frozenset(("type", "properties", "required", "additionalProperties", "patternProperties", "items",
                    "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                    "minItems", "maxItems", "minLength", "maxLength", "uniqueItems", "$ref", "allOf", "anyOf",
                    "oneOf", "not", "$id")) | _ANNOTATIONS


class Unknown(Exception):
    """The schema uses something this interpreter does not implement: ask jsonschema instead."""


def _is_int(v):
    return type(v) is int


def _is_number(v):
    return (type(v) is int) or (type(v) is float)


_TYPES = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "integer": _is_int,
    "number": _is_number,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}

_regex_cache = {}


def _chars_then_end(s, start, allowed, empty_ok):
    """s[start:] is made of allowed characters, as `[...]+$` (or `*$`) matches it from start: `$` also matches
    before a final newline, as in re."""
    rest = s[start:-1] if s.endswith("\n") else s[start:]
    return (empty_ok or rest != "") and all(c in allowed for c in rest)


_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# The patterns a plain config.json meets on every create (mounts.*.destination, process.rlimits.*.type,
# linux.devices.*.type), checked without `re`: importing it costs ~2 ms of every create.  Same verdict as
# re.search (tests/unit/test_fastcheck.py compares them); every other pattern goes to re.
_SIMPLE = {
    "^/": lambda s: s.startswith("/"),
    "^RLIMIT_[A-Z]+$": lambda s: s.startswith("RLIMIT_") and _chars_then_end(s, 7, _UPPER, False),
    "^[cbup]$": lambda s: s[:1] in ("c", "b", "u", "p") and s[1:] in ("", "\n"),
}


def _search(pattern, s):
    simple = _SIMPLE.get(pattern)
    if simple is not None:
        return simple(s)
    rx = _regex_cache.get(pattern)
    if rx is None:
        import re

        rx = _regex_cache[pattern] = re.compile(pattern)
    return rx.search(s) is not None


def _equal(a, b):
    """JSON equality as jsonschema sees it: true/false are not 1/0; 1 == 1.0."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def resolve(root, ref):
    """The schema a local reference ("#/$defs/Name", JSON-pointer escapes allowed) points at in root."""
    if not ref.startswith("#"):
        raise Unknown(f"non-local $ref {ref}")
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if type(node) is not dict or part not in node:
            raise Unknown(f"unresolvable $ref {ref}")
        node = node[part]
    return node


# resolve() of the last root's references, kept with that root (held, so its id cannot be reused meanwhile): a
# config walks the same few $defs dozens of times.  One slot holding the (root, refs) pair, read and replaced
# whole: threads checking against different roots (the shim's) never see one root's refs under another's.
_refs = [(None, {})]


def _ref(root, ref):
    cache = _refs[0]
    if cache[0] is not root:
        cache = _refs[0] = (root, {})
    node = cache[1].get(ref)
    if node is None:
        node = cache[1][ref] = resolve(root, ref)
    return node


def _plain(sub, root):
    """(sub with the $ref-only nodes on top followed, the type check when that schema is nothing but one
    known type, else None): what a property or an array item most often meets, checked without a step of its
    own (a config's env, args, capability sets and path lists are arrays of strings)."""
    while type(sub) is dict and len(sub) == 1 and "$ref" in sub:
        sub = _ref(root, sub["$ref"])
    if type(sub) is dict and len(sub) == 1:
        t = sub.get("type")
        if type(t) is str:
            return sub, _TYPES.get(t)
    return sub, None


def _valid(schema, v, root):
    if schema is True:
        return True
    if schema is False:
        return False
    if type(schema) is not dict:
        raise Unknown("schema is not an object")
    for kw, arg in schema.items():
        if kw in _ANNOTATIONS:
            continue
        if kw == "type":
            if type(arg) is str:
                check = _TYPES.get(arg)
                if check is None:
                    raise Unknown(f"type {arg}")
                if not check(v):
                    return False
            else:
                if not any(_TYPES[t](v) if t in _TYPES else _raise(f"type {t}") for t in arg):
                    return False
        elif kw == "properties":
            if type(v) is dict:
                for name, sub in arg.items():
                    if name in v:
                        sub, check = _plain(sub, root)
                        if not (check(v[name]) if check is not None else _valid(sub, v[name], root)):
                            return False
        elif kw == "required":
            if type(v) is dict:
                for name in arg:
                    if name not in v:
                        return False
        elif kw == "additionalProperties":
            if type(v) is dict:
                props = schema.get("properties", ())
                pats = schema.get("patternProperties", ())
                for name, item in v.items():
                    if name in props or any(_search(p, name) for p in pats):
                        continue
                    if not _valid(arg, item, root):
                        return False
        elif kw == "patternProperties":
            if type(v) is dict:
                for pat, sub in arg.items():
                    for name, item in v.items():
                        if _search(pat, name) and not _valid(sub, item, root):
                            return False
        elif kw == "items":
            if type(arg) is not dict and type(arg) is not bool:
                raise Unknown("items as an array (use prefixItems)")
            if type(v) is list and v:
                sub, check = _plain(arg, root)
                if check is not None:
                    if not all(map(check, v)):
                        return False
                else:
                    for item in v:
                        if not _valid(sub, item, root):
                            return False
        elif kw == "enum":
            if not any(_equal(v, e) for e in arg):
                return False
        elif kw == "const":
            if not _equal(v, arg):
                return False
        elif kw == "pattern":
            if type(v) is str and not _search(arg, v):
                return False
        elif kw == "minimum":
            if _is_number(v) and v < arg:
                return False
        elif kw == "maximum":
            if _is_number(v) and v > arg:
                return False
        elif kw == "exclusiveMinimum":
            if _is_number(v) and v <= arg:
                return False
        elif kw == "exclusiveMaximum":
            if _is_number(v) and v >= arg:
                return False
        elif kw == "minItems":
            if type(v) is list and len(v) < arg:
                return False
        elif kw == "maxItems":
            if type(v) is list and len(v) > arg:
                return False
        elif kw == "minLength":
            # jsonschema counts code points, as len() does.
            if type(v) is str and len(v) < arg:
                return False
        elif kw == "maxLength":
            if type(v) is str and len(v) > arg:
                return False
        elif kw == "uniqueItems":
            if arg and type(v) is list:
                for i in range(len(v)):
                    for j in range(i):
                        if _equal(v[i], v[j]):
                            return False
        elif kw == "$id":
            # An $id below the root would change what "#/..." means for the references under it.
            if schema is not root:
                raise Unknown("$id below the root")
        elif kw == "$ref":
            if not _valid(_ref(root, arg), v, root):
                return False
        elif kw == "allOf":
            if not all(_valid(sub, v, root) for sub in arg):
                return False
        elif kw == "anyOf":
            if not any(_valid(sub, v, root) for sub in arg):
                return False
        elif kw == "oneOf":
            if sum(1 for sub in arg if _valid(sub, v, root)) != 1:
                return False
        elif kw == "not":
            if _valid(arg, v, root):
                return False
        else:
            raise Unknown(f"keyword {kw}")
    return True


def _raise(msg):
    raise Unknown(msg)


def is_valid(schema, instance, root=None):
    """True or False with the schema's full strictness; raises Unknown if the schema goes beyond this module.

    root is the document that "#/..." references resolve against (default: schema itself), so a caller can
    check against a sub-schema such as {"$ref": "#/$defs/Process"} of a larger document.
    """
    return _valid(schema, instance, schema if root is None else root)


def check(schema, instance, root=None):
    """True / False, or None when this module cannot decide (the caller must use jsonschema)."""
    try:
        return is_valid(schema, instance, root)
    except Unknown:
        return None
