"""Entry point of the `pyrunc` command: parse, run one verb, report its error once.

Imports stay lazy: a verb module is imported only when that verb runs, click only when help or a usage error has
to be shown.  tests/unit/test_imports.py holds the budget.
"""

import sys

from .. import errors
from ..log import Logger


def version_text():
    from .. import OCI_VERSION, __version__

    return f"pyrunc version {__version__}\ncommit: v{__version__}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"


def dispatch(g, name, o):
    """Run verb `name` with global options g and verb options o; return the exit code."""
    from .registry import VERBS

    log = Logger(g.log, g.log_format, g.debug)
    if g.log_format not in ("text", "json"):
        log.error(f"invalid log-format: {g.log_format}")
        return 1
    try:
        log.touch()
    except OSError as e:  # runc: `open FILE: no such file or directory` on stderr, exit 1
        Logger(None, g.log_format).error(f"open {g.log}: {e.strerror.lower()}")
        return 1
    try:
        if g.root is None:  # not given: runc's default, under $XDG_RUNTIME_DIR when not root
            from .common import default_root, make_xdg_root

            g.root = default_root()
            if g.root != "/run/pyrunc":
                make_xdg_root(g.root)
        if g.debug:
            log.debug(f"pyrunc {name}: args {o.args}, root {g.root}")
        module = __import__("pyrunc.cli." + VERBS[name].module, fromlist=["run"])
        return module.run(g, o, log) or 0
    except errors.PyruncError as e:
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: still one clear error line for the shim, the traceback under --debug
        if g.debug:
            import traceback

            log.debug(traceback.format_exc())
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0] in ("--version", "-version", "-v"):  # click's text, without loading click
        sys.stdout.write(version_text())
        return 0
    from . import args

    try:
        g, name, o = args.parse(argv)
    except args.NeedClick:
        from .clickapp import run_click

        return run_click(argv)
    sys.exit(dispatch(g, name, o))


def program():
    """Run as the `pyrunc` program (bin/pyrunc): main(), then leave with os._exit once stdout and stderr are
    flushed.  The interpreter's finalization (~2 ms: module teardown, GC) would stand between every verb and its
    caller.  Nothing else is left to finalize: the logger writes with os.write, files are closed by `with`, and the
    only threads (the run's stdio copy, cgroups.warm) are _thread ones that the verbs join themselves."""
    import os

    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # as Python does for sys.exit("text")
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # Python's own exit code when flushing stdout fails at exit
    os._exit(code & 0xFF)


if __name__ == "__main__":
    main()
