"""Small helpers shared by the verb modules that need the library (one_id, out and dump live in main.py, which
every verb has loaded)."""

from ..errors import PyruncError, UsageError


def runtime(g, log, create=False):
    """The library's Runtime for the global flags.  create: the verb makes a container, so --rootless is
    resolved (runc's shouldUseRootlessCgroupManager): in rootless mode a cgroup the caller may not create is
    skipped when the config sets no limits."""
    from ..container.lifecycle import Runtime

    return Runtime(g.root, log, systemd_cgroup=g.systemd_cgroup, rootless=create and rootless_mode(g.rootless))


def rootless_mode(flag):
    """--rootless true|false|auto; auto: not root, or root of a user namespace that is not the initial one."""
    if flag in ("true", "false"):
        return flag == "true"
    if flag != "auto":
        raise UsageError(f"invalid --rootless value {flag!r}: want true, false or auto")
    from .. import osx as os, procfs

    return os.geteuid() != 0 or procfs.in_user_namespace()


def default_root():
    """--root's default, as runc's: $XDG_RUNTIME_DIR/pyrunc for a caller that is not root (or root of a user
    namespace that is not USER=root's), else /run/pyrunc."""
    from .. import osx as os, procfs

    xdg = os.getenv("XDG_RUNTIME_DIR")
    if xdg and (os.geteuid() != 0 or procfs.in_user_namespace() and os.getenv("USER") != "root"):
        return os.path.join(xdg, "pyrunc")
    return "/run/pyrunc"


def make_xdg_root(path):
    """The default root under $XDG_RUNTIME_DIR: 0700 and sticky (the XDG spec prunes files without it), as runc."""
    import os

    try:
        os.makedirs(path, 0o700, exist_ok=True)
        os.chmod(path, 0o1700)
    except OSError as e:
        raise PyruncError(f"mkdir {path}: {os.strerror(e.errno).lower()} (the path in $XDG_RUNTIME_DIR must be "
                          f"writable by the user)") from None


def failed(verb, e):
    """runc's wording for a failed create/run ("runc create failed: ..."), which callers show users."""
    err = PyruncError(f"pyrunc {verb} failed: {e}")
    err.exit_code = e.exit_code
    return err
