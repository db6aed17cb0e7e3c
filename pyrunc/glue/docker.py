"""docker: a daemon.json "runtimes" entry, so that `docker run --runtime <name>` runs pyrunc.

dockerd runs `<path> features` for each configured runtime when it starts and `<path> --version` for
`docker info`; the containers themselves go through containerd's runc v2 shim with the path as its binary.
daemon.json is JSON, so the edit is load, merge, dump: other keys keep their values and order; the file's
indentation is kept, its comments cannot exist (dockerd rejects them).
"""

import copy
import json
import re

from . import GlueError

RESERVED = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")  # dockerd refuses these names


def entry(binary):
    return {"path": binary}


def snippet(name, binary):
    return json.dumps({"runtimes": {name: entry(binary)}}, indent=2) + "\n"


def _indent(text):
    m = re.search(r"^[{\[][^\n]*\n([ \t]+)\S", text, re.M)
    return m.group(1) if m else 2


def edit(text, name, binary, path="daemon.json"):
    """Return text with runtimes.<name>.path set (text itself when it already is)."""
    if name in RESERVED:
        raise GlueError(f"{path}: runtime name {name} is reserved by dockerd; choose another --name")
    src = text if text and text.strip() else "{}"
    try:
        doc = json.loads(src)
    except json.JSONDecodeError as e:
        raise GlueError(f"parse {path}: {e}") from None
    if not isinstance(doc, dict):
        raise GlueError(f"{path}: top level must be a JSON object")
    old = copy.deepcopy(doc)
    runtimes = doc.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise GlueError(f"{path}: runtimes must be a JSON object")
    current = runtimes.get(name)
    if current is not None and not isinstance(current, dict):
        raise GlueError(f"{path}: runtimes.{name} must be a JSON object")
    if current is not None and current.get("path") == binary:
        return text
    if current is not None and ("runtimeType" in current or "options" in current):
        raise GlueError(f"{path}: runtimes.{name} uses runtimeType/options; set its BinaryName by hand "
                        f"or choose another --name")
    runtimes[name] = dict(current or {}, path=binary)
    new = json.dumps(doc, indent=_indent(text or ""), ensure_ascii=False) + "\n"
    back = json.loads(new)
    back_rt = back["runtimes"].pop(name)
    if not back["runtimes"] and "runtimes" not in old:
        back.pop("runtimes")
    old.get("runtimes", {}).pop(name, None)
    if back != old or back_rt.get("path") != binary:
        raise GlueError(f"{path}: edit would change other settings (not written)")
    return new
