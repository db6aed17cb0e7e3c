"""The error path of validate.py: jsonschema (the reference engine) finds the first error of a document that
fastcheck called invalid, and this module words it (the message format is in validate.py's docstring).  Loaded
only then: a good config never reads this module, nor jsonschema (~120 ms)."""

import json

from pyrunc.spec import fastcheck
from pyrunc.spec.validate import load_schema

_validators = {}  # (file, $defs name or None) -> jsonschema validator, built only after fastcheck said "invalid"


def jsonschema_validator(name, sub=None):
    """The jsonschema validator for a schema, with our "integer" rule. Imports jsonschema: slow path only."""
    key = (name, sub)
    v = _validators.get(key)
    if v is None:
        from jsonschema import Draft202012Validator
        from jsonschema.validators import extend

        checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _checker, x: type(x) is int)
        cls = extend(Draft202012Validator, type_checker=checker)
        v = _validators[key] = cls(load_schema(name, sub))
    return v


# --- turning jsonschema errors into one message ---------------------------------------------------------------

_RANK = {"type": 0, "required": 1, "enum": 2, "const": 2}


def explain(validator, doc, where):
    """The message for the first error in document order, or None if doc is valid."""
    leaves, stack = [], list(validator.iter_errors(doc))
    while stack:
        e = stack.pop()
        if e.context:  # anyOf/oneOf: the branches' own errors say more than "not valid under any"
            stack.extend(e.context)
        else:
            leaves.append(e)
    if not leaves:
        return None
    found = []
    root = validator.schema
    for e in leaves:
        path = list(e.absolute_path)
        if e.validator == "required" and isinstance(e.instance, dict):
            for k in e.validator_value:
                if k not in e.instance:
                    found.append((path + [k], "required property missing", 1))
        elif e.validator == "additionalProperties" and e.validator_value is False and isinstance(e.instance, dict):
            known = e.schema.get("properties", {})
            for k in e.instance:
                if k not in known:
                    found.append((path + [k], "unknown property", 1))
        elif e.validator in ("type", "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum",
                             "exclusiveMaximum", "minItems", "maxItems", "minLength", "maxLength"):
            found.append((path, f"expected {describe(e.schema, root)}, got {show(e.instance)}",
                          _RANK.get(e.validator, 3)))
        else:
            found.append((path, f"{e.message}", 4))
    found.sort(key=lambda f: (_doc_order(doc, f[0]), f[2]))
    path, text, _rank = found[0]
    return f"{dotted(path, where)}: {text}"


def _doc_order(doc, path):
    """Sort key: position of each path step in the document; keys that are missing sort after present ones."""
    key, node = [], doc
    for p in path:
        if type(node) is dict and p in node:
            key.append((0, list(node).index(p), ""))
            node = node[p]
        elif type(node) is list and type(p) is int and p < len(node):
            key.append((0, p, ""))
            node = node[p]
        else:
            key.append((1, 0, str(p)))
            node = None
    return key


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def dotted(path, where):
    """["linux", "namespaces", 0, "type"] -> linux.namespaces.0.type; keys with dots etc. as ["io.k8s.x"]."""
    if not path:
        return where
    out = ""
    for p in path:
        if type(p) is int or p and _PLAIN.issuperset(p):
            out += ("." if out else "") + str(p)
        else:
            out += "[" + json.dumps(p) + "]"
    return out


def show(value, limit=60):
    try:
        s = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not from json.loads: still say something useful
        s = repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _deref(s, root):
    # Follow a schema that is only a $ref (plus annotations) to the schema that says something.
    seen = 0
    while isinstance(s, dict) and "$ref" in s and "type" not in s and "enum" not in s and seen < 20:
        s = fastcheck.resolve(root, s["$ref"])
        seen += 1
    return s


_NOUNS = {"object": ("an object", "objects"), "array": ("an array", "arrays"), "string": ("a string", "strings"),
          "integer": ("an integer", "integers"), "number": ("a number", "numbers"),
          "boolean": ("a boolean", "booleans"), "null": ("null", "nulls")}


def describe(s, root, plural=False):
    """What a schema accepts, in words: "an array of strings", "an integer between 0 and 4294967295"."""
    s = _deref(s, root)
    if not isinstance(s, dict):
        return "nothing" if s is False else "anything"
    if "enum" in s:
        return "one of " + ", ".join(json.dumps(x) for x in s["enum"])
    if "const" in s:
        return json.dumps(s["const"])
    t = s.get("type")
    if isinstance(t, list):
        return " or ".join(_NOUNS.get(x, (x, x))[plural] for x in t)
    if t not in _NOUNS:
        return "a valid value"
    text = _NOUNS[t][plural]
    if t in ("integer", "number"):
        lo, hi = s.get("minimum"), s.get("maximum")
        if lo is not None and hi is not None:
            text += f" between {lo} and {hi}"
        elif lo is not None:
            text += f" of at least {lo}"
        elif hi is not None:
            text += f" of at most {hi}"
    elif t == "string":
        if "pattern" in s:
            text += f" matching {s['pattern']}"
        if "minLength" in s:
            text += f" of at least {s['minLength']} characters"
    elif t == "array":
        n = s.get("minItems")
        if n == 1:
            text = "non-empty " + text if plural else "a non-empty array"
        elif n:
            text += f" of at least {n} items"
        if "items" in s:
            text += " of " + describe(s["items"], root, plural=True)
    elif t == "object":
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and not s.get("properties"):
            text += " with " + describe(extra, root).split(" ", 1)[-1] + " values"
    return text
