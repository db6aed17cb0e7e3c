"""Small helpers shared by verb modules."""

import os

from ..errors import PyruncError, UsageError


def runtime(g, log, create=False):
    """The library's Runtime for the global flags.  create: the verb makes a container, which pyrunc cannot do in
    rootless mode (runc's --rootless=true changes how cgroup errors are handled; pyrunc has no such mode), so
    --rootless true is refused there instead of being ignored."""
    if create and g.rootless == "true":
        raise UsageError("--rootless true: rootless mode is not supported by pyrunc yet")
    from ..container.lifecycle import Runtime

    return Runtime(g.root, log, systemd_cgroup=g.systemd_cgroup)


def one_id(o, verb, extra_ok=False):
    if not o.args:
        raise UsageError(f'"{verb}" requires a minimum of 1 argument')
    if len(o.args) > 1 and not extra_ok:
        raise UsageError(f'"{verb}" requires exactly 1 argument')
    return o.args[0]


def out(s):
    os.write(1, s.encode())


def dump(obj, indent=None):
    from .. import fastjson

    return fastjson.dumps(obj, indent=indent)


def failed(verb, e):
    """runc's wording for a failed create/run ("runc create failed: ..."), which callers show users."""
    err = PyruncError(f"pyrunc {verb} failed: {e}")
    err.exit_code = e.exit_code
    return err
