"""containerd (1.6/1.7, config version 2): a CRI runtime entry running pyrunc, in one of two ways.

* runc-v2 + BinaryName (default): containerd's Go shim (containerd-shim-runc-v2) execs `options.BinaryName`
  instead of runc with runc's argv, which is the contract pyrunc meets; one pyrunc process per lifecycle step.
* our shim (`--shim`): `runtime_type = "io.containerd.pyrunc.v1"`, no options. containerd maps the type to the
  binary `containerd-shim-pyrunc-v1` and looks it up on its own PATH (CRI in 1.6 ignores `runtime_path`), and the
  shim runs the lifecycle in-process through pyrunc's library.

The runtime's name under plugins."io.containerd.grpc.v1.cri".containerd.runtimes is the CRI runtime handler
that a Kubernetes RuntimeClass names.

Python can read TOML (tomllib) but not write it, and re-serialising a user's file would drop its comments and
layout.  So the entry is a block of text between two marker comments: appended the first time, replaced in place
later.  Every edit is verified by parsing the result: the entry must read back as intended and every other key
must be unchanged, or nothing is written.
"""

import copy
import json
import re
import tomllib

from . import GlueError

CRI = "io.containerd.grpc.v1.cri"
SHIM = "io.containerd.runc.v2"
PYRUNC_SHIM = "io.containerd.pyrunc.v1"
PYRUNC_SHIM_BINARY = "containerd-shim-pyrunc-v1"  # containerd's name mangling of PYRUNC_SHIM
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # also what keeps the marker comments unambiguous


def _key(name):
    return name if _BARE.match(name) else json.dumps(name)


def _str(s):
    # TOML basic strings take JSON's escapes (\" \\ \n \t \uXXXX ...)
    return json.dumps(s, ensure_ascii=False)


def _markers(name):
    return f"# BEGIN pyrunc-config runtime {name}", f"# END pyrunc-config runtime {name}"


def table(name):
    return f'plugins."{CRI}".containerd.runtimes.{_key(name)}'


def snippet(name, binary=None, shim=False, systemd_cgroup=False):
    """The runtime tables (no markers), as a user would paste them into a version 2 config.toml.
    systemd_cgroup: the shim then runs pyrunc with --systemd-cgroup (for a kubelet with cgroupDriver: systemd)."""
    t = table(name)
    if shim:
        return f"[{t}]\n  runtime_type = {_str(PYRUNC_SHIM)}\n"
    return (f"[{t}]\n"
            f"  runtime_type = {_str(SHIM)}\n\n"
            f"  [{t}.options]\n"
            f"    BinaryName = {_str(binary)}\n" + ("    SystemdCgroup = true\n" if systemd_cgroup else ""))


def commented_snippet(name, binary=None, shim=False, systemd_cgroup=False):
    how = (f"{PYRUNC_SHIM_BINARY} on containerd's PATH" if shim else "containerd-shim-runc-v2 running BinaryName")
    return (f"# containerd config.toml (needs `version = 2` at its top): CRI runtime handler {_str(name)}, {how}\n"
            + snippet(name, binary, shim, systemd_cgroup))


def block(name, binary=None, shim=False, systemd_cgroup=False):
    begin, end = _markers(name)
    return f"{begin} (written by pyrunc-config; replaced when it runs again)\n{snippet(name, binary, shim, systemd_cgroup)}{end}\n"


def expected(binary=None, shim=False, systemd_cgroup=False):
    if shim:
        return {"runtime_type": PYRUNC_SHIM}
    return {"runtime_type": SHIM, "options": {"BinaryName": binary, **({"SystemdCgroup": True} if systemd_cgroup
                                                                       else {})}}


def _path(name):
    return ("plugins", CRI, "containerd", "runtimes", name)


def _get(d, keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _without(doc, name, old_doc):
    """doc minus the runtime entry, and minus the empty parent tables the entry alone brought in."""
    doc = copy.deepcopy(doc)
    keys = _path(name)
    parent = _get(doc, keys[:-1])
    if isinstance(parent, dict):
        parent.pop(name, None)
    for depth in range(len(keys) - 1, 0, -1):
        node = _get(doc, keys[:depth])
        if node == {} and _get(old_doc, keys[:depth]) is None:
            _get(doc, keys[:depth - 1]).pop(keys[depth - 1])
    return doc


def _parse(text, what):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GlueError(f"parse {what}: {e}") from None


def edit(text, name, binary=None, path="config.toml", *, shim=False, systemd_cgroup=False):
    """Return text with the runtime entry added or updated (text itself when it is already right); shim=True
    writes the entry for pyrunc's own shim instead of runc-v2 + BinaryName."""
    if not _NAME.match(name):
        raise GlueError(f"runtime name {name!r}: use letters, digits, '-', '_' and '.' (a RuntimeClass handler "
                        f"must even be a lowercase DNS label)")
    text = text or ""
    old = _parse(text, path)
    version = old.get("version")
    if version == 3:
        raise GlueError(f"{path}: containerd config version 3 (containerd 2.x) is not supported by pyrunc-config yet; "
                        f'add [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{_key(name)}] by hand')
    if version not in (None, 2):
        raise GlueError(f"{path}: unsupported containerd config version {version!r}, expected 2")
    if version is None and old:
        raise GlueError(f"{path}: no `version = 2`: containerd reads this as a version 1 config "
                        f'(plugins.cri, not plugins."{CRI}"); convert it to version 2 first')
    begin, end = _markers(name)
    # the name ends at a space or the line's end, so that "pyrunc" never matches the block of "pyrunc-debug"
    managed = re.compile(rf"^{re.escape(begin)}(?: [^\n]*)?\n.*?^{re.escape(end)}[ \t]*(?:\n|\Z)", re.M | re.S)
    found = managed.findall(text)
    if len(found) > 1:
        raise GlueError(f"{path}: more than one pyrunc-config block for runtime {name}; remove all but one")
    if found:
        new = managed.sub(lambda m: block(name, binary, shim, systemd_cgroup), text, count=1)
    else:
        current = _get(old, _path(name))
        if current == expected(binary, shim, systemd_cgroup):
            return text  # the same entry, written by hand: nothing to do
        if current is not None:
            raise GlueError(f"{path}: runtime {name} is already defined outside a pyrunc-config block; "
                            f"edit [{table(name)}] by hand or choose another --name")
        new = text
        if version is None:
            new = "version = 2\n" + new
        if new and not new.endswith("\n"):
            new += "\n"
        new += ("\n" if new.strip() else "") + block(name, binary, shim, systemd_cgroup)
    check(text, new, name, binary, path, shim=shim, systemd_cgroup=systemd_cgroup)
    return new


def check(old_text, new_text, name, binary=None, path="config.toml", *, shim=False, systemd_cgroup=False):
    """Raise GlueError unless new_text parses, holds exactly the intended entry and leaves all else as it was."""
    old = _parse(old_text or "", path)
    new = _parse(new_text, f"{path} as edited (not written)")
    if _get(new, _path(name)) != expected(binary, shim, systemd_cgroup):
        raise GlueError(f"{path}: edited file would not hold the intended [{table(name)}] (not written)")
    if not old:
        old = {"version": 2}
    if _without(new, name, old) != _without(old, name, old):
        raise GlueError(f"{path}: edit would change other settings (not written)")
