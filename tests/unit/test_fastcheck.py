"""pyrunc.spec.fastcheck: each keyword, refusal of what it does not know, and agreement with jsonschema."""

import copy
import importlib.util
import json
import os
import random

import pytest

from pyrunc.errors import ConfigError
from pyrunc.spec import explain, fastcheck, validate
from pyrunc.spec.explain import jsonschema_validator
from pyrunc.spec.validate import CONFIG_SCHEMA, STATE_SCHEMA, load_schema

_spec = importlib.util.spec_from_file_location(
    "_pyrunc_test_schema_samples", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_schema.py"))
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)


def _js(schema):
    """A jsonschema validator for an ad-hoc schema with the project's integer rule."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend
    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _c, x: type(x) is int)
    return extend(Draft202012Validator, type_checker=checker)(schema)


# (schema, instance, expected verdict): every case is also run through jsonschema, which must agree.
KEYWORD_CASES = [
    ({"type": "object"}, {}, True),
    ({"type": "object"}, [], False),
    ({"type": "array"}, [], True),
    ({"type": "array"}, {}, False),
    ({"type": "string"}, "", True),
    ({"type": "string"}, b"x".decode(), True),
    ({"type": "string"}, None, False),
    ({"type": "integer"}, 3, True),
    ({"type": "integer"}, 3.0, False),   # the project rule: Go rejects 3.0 for an int field
    ({"type": "integer"}, True, False),
    ({"type": "number"}, 3.5, True),
    ({"type": "number"}, False, False),
    ({"type": "boolean"}, False, True),
    ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True),
    ({"type": ["string", "null"]}, None, True),
    ({"type": ["string", "null"]}, 1, False),
    ({"properties": {"a": {"type": "string"}}}, {"a": 1}, False),
    ({"properties": {"a": {"type": "string"}}}, {"b": 1}, True),
    ({"properties": {"a": {"type": "string"}}}, "not an object", True),
    ({"required": ["a"]}, {"a": None}, True),
    ({"required": ["a"]}, {"b": 1}, False),
    ({"required": ["a"]}, [], True),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1}, True),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}, False),
    ({"additionalProperties": {"type": "string"}}, {"x": "y"}, True),
    ({"additionalProperties": {"type": "string"}}, {"x": 1}, False),
    ({"patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False}, {"xa": "1"}, True),
    ({"patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False}, {"xa": 1}, False),
    ({"patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False}, {"y": "1"}, False),
    ({"items": {"type": "integer"}}, [1, 2], True),
    ({"items": {"type": "integer"}}, [1, "2"], False),
    ({"enum": ["a", "b"]}, "b", True),
    ({"enum": ["a", "b"]}, "c", False),
    ({"enum": [1]}, True, False),
    ({"enum": [1]}, 1.0, True),
    ({"enum": [[1, {"a": False}]]}, [1, {"a": False}], True),
    ({"enum": [[1, {"a": False}]]}, [1, {"a": 0}], False),
    ({"const": False}, 0, False),
    ({"const": "x"}, "x", True),
    ({"pattern": "^/"}, "/a", True),
    ({"pattern": "^/"}, "a", False),
    ({"pattern": "b"}, "abc", True),      # search, not match
    ({"pattern": "^/"}, 5, True),         # pattern ignores non-strings
    ({"minimum": 0, "maximum": 10}, 0, True),
    ({"minimum": 0, "maximum": 10}, -1, False),
    ({"minimum": 0, "maximum": 10}, 11, False),
    ({"minimum": 0}, "x", True),
    ({"maximum": 2 ** 64 - 1}, 2 ** 64, False),
    ({"exclusiveMinimum": 0}, 0, False),
    ({"exclusiveMaximum": 1}, 0.5, True),
    ({"minItems": 1}, [], False),
    ({"maxItems": 1}, [1, 2], False),
    ({"minLength": 2}, "é", False),
    ({"maxLength": 1}, "é", True),
    ({"uniqueItems": True}, [1, 2], True),
    ({"uniqueItems": True}, [1, 1.0], False),
    ({"uniqueItems": True}, [1, True], True),
    ({"$defs": {"u": {"type": "integer"}}, "$ref": "#/$defs/u"}, 1, True),
    ({"$defs": {"u": {"type": "integer"}}, "$ref": "#/$defs/u"}, "1", False),
    ({"$defs": {"u": {"minimum": 5}}, "$ref": "#/$defs/u", "type": "integer"}, 1.0, False),  # siblings count
    ({"definitions": {"a/b": {"type": "string"}}, "$ref": "#/definitions/a~1b"}, "x", True),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 1, False),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "s", True),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, None, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 1, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, -1, True),
    ({"not": {"type": "string"}}, "s", False),
    ({"description": "x", "$comment": "y", "title": "z", "default": 1}, 5, True),
    (True, 5, True),
    (False, 5, False),
]


@pytest.mark.parametrize("schema,instance,expected", KEYWORD_CASES)
def test_keywords_agree_with_jsonschema(schema, instance, expected):
    assert fastcheck.is_valid(schema, instance) is expected
    assert _js(schema).is_valid(instance) is expected


@pytest.mark.parametrize("schema", [
    {"propertyNames": {"pattern": "^a"}},
    {"if": {"type": "string"}, "then": {"minLength": 1}},
    {"prefixItems": [{"type": "string"}]},
    {"items": [{"type": "string"}]},
    {"unevaluatedProperties": False},
    {"$ref": "other.json#/x"},
    {"$ref": "#/$defs/missing"},
    {"properties": {"a": {"$id": "https://elsewhere/a.json", "type": "string"}}},
    {"type": "float"},
    {"format": "ipv4"},
])
def test_unknown_keywords_are_refused_not_accepted(schema):
    instance = {"a": "a"} if "properties" in schema else "a"
    with pytest.raises(fastcheck.Unknown):
        fastcheck.is_valid(schema, instance)
    assert fastcheck.check(schema, instance) is None


def test_validate_falls_back_to_jsonschema_when_fastcheck_cannot_decide():
    # A schema fastcheck cannot read: if it silently ignored "propertyNames" it would accept this document.
    key = ("pyrunc-test-unknown.json", None)
    validate._schemas[key] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                              "propertyNames": {"pattern": "^[a-z]+$"}}
    try:
        validate._validate(key[0], None, {"ok": 1}, "doc")
        with pytest.raises(ConfigError, match=r"^doc: "):
            validate._validate(key[0], None, {"NotOk": 1}, "doc")
    finally:
        validate._schemas.pop(key, None)
        explain._validators.pop(key, None)


# --- agreement on mutated configs --------------------------------------------------------------------------------

ODD_VALUES = ["", "x", "/abs", "relative/path", "pidd", "SCMP_ACT_DENY", "RLIMIT_", "2mb",
              0, 1, -1, 1.0, 1.5, True, False, None, [], {}, ["x"], [1], [{}], {"a": 1},
              2 ** 16, 2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64, -2 ** 63 - 1]


def _paths(doc, prefix=()):
    """Every path to a node in doc (the root excluded)."""
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _mutate_once(doc, rng):
    paths = list(_paths(doc))
    if not paths:
        return copy.deepcopy(rng.choice(ODD_VALUES))
    path = rng.choice(paths)
    doc = copy.deepcopy(doc)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    old = parent[key]
    kind = rng.randrange(8)
    if kind == 0 and isinstance(parent, dict):
        del parent[key]                                   # drop a (maybe required) key
    elif kind == 1 and isinstance(old, str):
        parent[key] = rng.choice([old + "x", old.lower(), old.upper(), "", "/" + old, old.lstrip("/")])
    elif kind == 2 and type(old) is int:
        parent[key] = rng.choice([old + 2 ** 32, -1, old - 2 ** 64, 2 ** 64 - 1, 2 ** 64, 65535, 65536, 0,
                                  float(old)])
    elif kind == 3 and isinstance(old, list):
        parent[key] = rng.choice([[], old + [rng.choice(ODD_VALUES)], old[:1] * 2])
    elif kind == 4 and isinstance(old, dict):
        old[rng.choice(["zz", "type", "path", "limit", "names"])] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif kind == 5 and isinstance(old, bool):
        parent[key] = rng.choice([not old, int(old), str(old).lower()])
    else:
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))   # change the type
    return doc


def _mutants(seed, count):
    rng = random.Random(seed)
    bases = [samples.RUNC_DEFAULT, samples.FULL, samples.MINIMAL_PROCESS]
    for _ in range(count):
        doc = rng.choice(bases)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            doc = _mutate_once(doc, rng)
        yield doc


def test_fastcheck_agrees_with_jsonschema_on_mutated_configs():
    schema, js = load_schema(CONFIG_SCHEMA), jsonschema_validator(CONFIG_SCHEMA)
    verdicts = {True: 0, False: 0}
    for i, doc in enumerate(_mutants(seed=20261127, count=600)):
        expected = js.is_valid(doc)
        got = fastcheck.is_valid(schema, doc)
        assert got is expected, f"mutant {i}: fastcheck {got}, jsonschema {expected}: {json.dumps(doc)[:400]}"
        verdicts[expected] += 1
        if not expected:  # and the slow path always finds something to say
            with pytest.raises(ConfigError):
                validate.validate_config(doc)
    # The mutations must exercise both answers, or the test proves nothing.
    assert verdicts[False] >= 200 and verdicts[True] >= 60, verdicts


def test_fastcheck_agrees_with_jsonschema_on_mutated_states():
    schema, js = load_schema(STATE_SCHEMA), jsonschema_validator(STATE_SCHEMA)
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for _ in range(300):
        doc = samples.RUNC_STATE
        for _ in range(rng.choice([1, 2])):
            doc = _mutate_once(doc, rng)
        expected = js.is_valid(doc)
        assert fastcheck.is_valid(schema, doc) is expected, json.dumps(doc)
        verdicts[expected] += 1
    assert verdicts[False] >= 100 and verdicts[True] >= 30, verdicts


def test_sub_schema_wrappers_resolve_against_the_whole_document():
    proc = load_schema(CONFIG_SCHEMA, "Process")
    assert fastcheck.is_valid(proc, samples.FULL["process"]) is True
    assert fastcheck.is_valid(proc, {"args": ["sh"]}) is False
    with pytest.raises(KeyError):
        load_schema(CONFIG_SCHEMA, "NoSuchDef")


def test_simple_patterns_agree_with_re():
    """The patterns fastcheck checks without `re` (every create meets them) give re.search's verdict."""
    import re

    from pyrunc.spec.fastcheck import _SIMPLE, _search

    samples = ["", "/", "/x", "x/", " /", "RLIMIT_NOFILE", "RLIMIT_", "RLIMIT_nofile", "RLIMIT_NOFILE\n",
               "RLIMIT_NOFILE\n\n", "RLIMIT_NO FILE", "xRLIMIT_CPU", "RLIMIT_CPU1", "c", "b", "u", "p", "c\n", "cc",
               "x", "c\n\n", "\nc", "C", "RLIMIT_É"]
    for pattern in _SIMPLE:
        for s in samples:
            assert _search(pattern, s) == (re.search(pattern, s) is not None), (pattern, s)


def test_a_default_config_is_checked_in_few_interpreter_steps(monkeypatch):
    """The common case is cheap: `$ref`s resolve once per schema, and an array whose items only have a type (env,
    args, the capability sets, maskedPaths, ...) is checked in one loop, not one interpreter step per item: 195
    steps before, 50 after; the verdicts stay jsonschema's (the agreement tests above)."""
    from pyrunc.spec.default import default_config

    cfg = default_config()
    schema = load_schema(CONFIG_SCHEMA)
    steps = []
    real = fastcheck._valid

    def counted(s, v, root):
        steps.append(1)
        return real(s, v, root)

    monkeypatch.setattr(fastcheck, "_valid", counted)
    assert fastcheck.check(schema, cfg) is True
    assert len(steps) <= 60, f"{len(steps)} steps"
    bad = copy.deepcopy(cfg)
    bad["process"]["env"].append(7)
    assert fastcheck.check(schema, bad) is False
    bad = copy.deepcopy(cfg)
    bad["linux"]["maskedPaths"] = "x"
    assert fastcheck.check(schema, bad) is False


def test_references_of_two_schemas_never_mix():
    """The resolved-$ref cache belongs to one root at a time: checks against another schema (the shim validates
    configs and states in several threads) resolve against their own."""
    a = {"$defs": {"X": {"type": "string"}}, "type": "object", "properties": {"k": {"$ref": "#/$defs/X"}}}
    b = {"$defs": {"X": {"type": "integer"}}, "type": "object", "properties": {"k": {"$ref": "#/$defs/X"}}}
    for _ in range(3):
        assert fastcheck.check(a, {"k": "s"}) is True and fastcheck.check(a, {"k": 1}) is False
        assert fastcheck.check(b, {"k": 1}) is True and fastcheck.check(b, {"k": "s"}) is False
    cache = fastcheck._refs[0]
    fastcheck._refs[0] = (a, {"#/$defs/X": {"type": "integer"}})  # another thread's pair lands meanwhile
    try:
        assert fastcheck.check(b, {"k": 1}) is True, "b's refs come from b, whatever the slot held"
    finally:
        fastcheck._refs[0] = cache
