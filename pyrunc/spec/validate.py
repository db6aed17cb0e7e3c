"""Check config.json, process.json, resources JSON and state documents against the project's schemas.

    validate_config(cfg)      raises ConfigError("process.args: expected an array of strings, got \"sh\"")
    validate_state(doc)       same message format, rooted at "state"

Two engines, one verdict. fastcheck.py (stdlib, well under a millisecond) decides valid/invalid; only when it
says "invalid" (or cannot decide) is jsonschema imported (explain.py, the error path, loaded only then) to find
the exact error and word it.
Importing jsonschema costs about 120 ms, which `pyrunc create`/`run` must not pay for a good config, and
`import pyrunc.spec.validate` must not pull it in either (tests/unit/test_schema.py checks both in a subprocess).

Both engines treat "integer" as a JSON number with no fraction (Python int, not bool, not float): Go's
encoding/json rejects 1.0 for runc's integer fields, and our runtime would otherwise pass a float to setuid().

Message format (one error, the first in document order; callers add their own prefix):
    <dotted path>: expected <what the schema wants>, got <json of the value, cut to about 60 chars>
    <dotted path of the missing key>: required property missing
The path of the document itself is "config.json" / "process.json" / "resources" / "state".
"""

import pyrunc
from pyrunc import fastjson, osx as os
from pyrunc.errors import ConfigError
from pyrunc.spec import fastcheck

CONFIG_SCHEMA = "config-schema.json"
STATE_SCHEMA = "state-schema.json"

_schemas = {}  # (file, $defs name or None) -> schema dict; filled on first use, never at import


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


def _validate(name, sub, doc, where):
    schema = load_schema(name, sub)
    if fastcheck.check(schema, doc) is True:
        return
    # Invalid, or fastcheck could not decide: jsonschema is the reference and also words the message.
    # If it finds nothing, the document is valid (the agreement test keeps this from hiding a fastcheck bug).
    from pyrunc.spec.explain import explain, jsonschema_validator

    msg = explain(jsonschema_validator(name, sub), doc, where)
    if msg is not None:
        raise ConfigError(msg)
