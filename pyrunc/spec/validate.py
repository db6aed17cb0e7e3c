"""Check config.json, process.json, resources JSON and state documents against the project's schemas.

    validate_config(cfg)      raises ConfigError("process.args: expected an array of strings, got \"sh\"")
    validate_state(doc)       same message format, rooted at "state"

Two engines, one verdict. fastcheck.py (stdlib, well under a millisecond) decides valid/invalid; only when it
says "invalid" (or cannot decide) is jsonschema imported, here inside the function, to find the exact error.
Importing jsonschema costs about 120 ms, which `pyrunc create`/`run` must not pay for a good config, and
`import pyrunc.spec.validate` must not pull it in either (tests/unit/test_schema.py checks both in a subprocess).

Both engines treat "integer" as a JSON number with no fraction (Python int, not bool, not float): Go's
encoding/json rejects 1.0 for runc's integer fields, and our runtime would otherwise pass a float to setuid().

Message format (one error, the first in document order; callers add their own prefix):
    <dotted path>: expected <what the schema wants>, got <json of the value, cut to about 60 chars>
    <dotted path of the missing key>: required property missing
The path of the document itself is "config.json" / "process.json" / "resources" / "state".
"""

import os

import pyrunc
from pyrunc import fastjson
from pyrunc.errors import ConfigError
from pyrunc.spec import fastcheck

CONFIG_SCHEMA = "config-schema.json"
STATE_SCHEMA = "state-schema.json"

_schemas = {}     # (file, $defs name or None) -> schema dict; filled on first use, never at import
_validators = {}  # same key -> jsonschema validator, built only after fastcheck said "invalid"


def validate_config(cfg):
    """Raise ConfigError unless cfg (parsed config.json) matches schemas/config-schema.json."""
    _validate(CONFIG_SCHEMA, None, cfg, "config.json")


def validate_process(doc):
    """Raise ConfigError unless doc matches the config's "process" object (exec --process FILE)."""
    _validate(CONFIG_SCHEMA, "Process", doc, "process.json")


def validate_resources(doc):
    """Raise ConfigError unless doc matches linux.resources (update --resources)."""
    _validate(CONFIG_SCHEMA, "Resources", doc, "resources")


def validate_state(doc):
    """Raise ConfigError unless doc is an OCI state document (with runc's extra fields and "paused")."""
    _validate(STATE_SCHEMA, None, doc, "state")


def schema_path(name):
    return os.path.join(os.path.dirname(pyrunc.__file__), "schemas", name)


def load_schema(name, sub=None):
    """The schema (cached per process); with sub, a wrapper whose "$ref" points at $defs[sub]."""
    key = (name, sub)
    s = _schemas.get(key)
    if s is None:
        if sub is None:
            with open(schema_path(name), "rb") as f:
                s = fastjson.loads(f.read())  # `json` imports `re`: ~5 ms of every create
        else:
            root = load_schema(name)
            if sub not in root.get("$defs", {}):
                raise KeyError(f"{name} has no $defs/{sub}")
            s = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": "#/$defs/" + sub}
        _schemas[key] = s
    return s


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


def _validate(name, sub, doc, where):
    schema = load_schema(name, sub)
    if fastcheck.check(schema, doc) is True:
        return
    # Invalid, or fastcheck could not decide: jsonschema is the reference and also words the message.
    # If it finds nothing, the document is valid (the agreement test keeps this from hiding a fastcheck bug).
    msg = explain(jsonschema_validator(name, sub), doc, where)
    if msg is not None:
        raise ConfigError(msg)


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
    import json  # here and below: error messages only (the json package imports re)

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
    import json

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
    import json

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
