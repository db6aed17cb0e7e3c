"""Entry point of the `pyrunc` command: parse, run one verb, report its error once.

Go-style argv parsing from the verb registry, without click, accepted the way runc (urfave/cli over Go's flag
package) accepts it, because callers rely on it: `--flag value`, `--flag=value`, `-flag value` (single-dash long
flags: go-runc sends `-no-subreaper`), boolean `--flag`/`--flag=true|false`, short aliases (`-b B`, `-b=B`).  Flags
may follow positionals except for verbs whose trailing arguments belong to someone else (exec's command, ps's ps
options): there everything after the container id is positional, as in runc.  Anything this parser cannot take
(--help, a bad flag, no verb) raises errors.NeedClick, and the click application built from the same registry answers
with its help or usage error.

Imports stay lazy: a verb module is imported only when that verb runs, click only when help or a usage error has
to be shown.  The hot verbs (state, start, kill, delete) load as few modules as they can: each costs ~0.1 ms of a
~10 ms start, so the parser lives here rather than in a module of its own, and nothing here imports `os` (its
first import costs ~1.5 ms: posix is the builtin under it).  tests/unit/test_imports.py holds the budget.
"""

import posix
import sys

from .. import CodeCache, Namespace, errors  # Namespace: the parsed flags, as the click application builds them
from ..errors import Logger

# The verbs that need nothing outside the standard library and pyrunc: they run on the short sys.path the installed
# script starts with (pyrunc/launch.py).  Every other verb, and click, first gets site's sys.path (need_site).
STDLIB_ONLY = frozenset(("state", "start", "kill", "delete", "list"))


def version_text():
    from .. import OCI_VERSION, __version__

    return f"pyrunc version {__version__}\ncommit: v{__version__}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"


# --- the verb helpers every verb module uses (here: the hot verbs load no module more for them) --------------------

def one_id(o, verb, extra_ok=False):
    if not o.args:
        raise errors.UsageError(f'"{verb}" requires a minimum of 1 argument')
    if len(o.args) > 1 and not extra_ok:
        raise errors.UsageError(f'"{verb}" requires exactly 1 argument')
    return o.args[0]


def out(s):
    posix.write(1, s.encode())


def dump(obj, indent=None):
    from .. import fastjson

    return fastjson.dumps(obj, indent=indent)


# --- parsing --------------------------------------------------------------------------------------------------------

_TRUE = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def _table(opts):
    t = {}
    for opt in opts:
        for n in opt.names:
            t[n.lstrip("-")] = opt
    return t


def _defaults(opts):
    return {o.dest: (list(o.default) if o.kind == "list" else o.default) for o in opts}


def _take(tok, argv, i, table, ns):
    """Parse the flag token argv[i]; return the index of the next token."""
    name, eq, val = tok.lstrip("-").partition("=")
    opt = table.get(name)
    if opt is None or tok.startswith("---"):
        raise errors.NeedClick(f"flag provided but not defined: {tok}")
    if opt.kind == "bool":
        if eq:
            if val.lower() not in _TRUE:
                raise errors.NeedClick(f"invalid boolean value {val!r} for {tok}")
            ns[opt.dest] = _TRUE[val.lower()]
        else:
            ns[opt.dest] = True
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            raise errors.NeedClick(f"flag needs an argument: {tok}")
        val = argv[i + 1]
        i += 1
    if opt.kind == "int":
        try:
            val = int(val, 0)
        except ValueError:
            raise errors.NeedClick(f"invalid value {val!r} for flag {tok}") from None
    if opt.kind == "list":
        ns[opt.dest].append(val)
    else:
        ns[opt.dest] = val
    return i + 1


def _is_flag(tok):
    return len(tok) > 1 and tok[0] == "-"


def parse(argv):
    """Return (global namespace, verb name, verb namespace with .args) or raise NeedClick."""
    from . import GLOBAL, VERBS

    gtable = _table(GLOBAL)
    g = _defaults(GLOBAL)
    i = 0
    while i < len(argv) and _is_flag(argv[i]):
        tok = argv[i]
        if tok in ("--help", "-h", "-help", "--version", "-v", "-version", "--"):
            raise errors.NeedClick(tok)
        i = _take(tok, argv, i, gtable, g)
    if i >= len(argv) or argv[i] not in VERBS:
        raise errors.NeedClick("no verb")
    name = argv[i]
    verb = VERBS[name]
    vtable = _table(verb.opts)
    o = _defaults(verb.opts)
    args = []
    i += 1
    while i < len(argv):
        tok = argv[i]
        if verb.rest and args:
            args.extend(argv[i:])
            break
        if tok == "--":
            args.extend(argv[i + 1:])
            break
        if _is_flag(tok):
            if tok.lstrip("-") in ("help", "h"):
                raise errors.NeedClick(tok)
            i = _take(tok, argv, i, vtable, o)
            continue
        args.append(tok)
        i += 1
    o["args"] = args
    return Namespace(**g), name, Namespace(**o)


# --- running one verb -------------------------------------------------------------------------------------------

def dispatch(g, name, o):
    """Run verb `name` with global options g and verb options o; return the exit code."""
    from . import VERBS

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
        if name not in STDLIB_ONLY:
            from ..launch import need_site

            need_site()
        if g.root is None:  # not given: runc's default, under $XDG_RUNTIME_DIR when not root
            from .common import default_root, make_xdg_root

            g.root = default_root()
            if g.root != "/run/pyrunc":
                make_xdg_root(g.root)
        if g.debug:
            log.debug(f"pyrunc {name}: args {o.args}, root {g.root}")
        if name in ("create", "run"):  # they load all of CREATE_GROUP: its code at once, from the code cache
            CodeCache.preload()
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
    try:
        g, name, o = parse(argv)
    except errors.NeedClick:  # help, a usage error: click answers
        from ..launch import need_site

        need_site()
        from .clickapp import run_click

        return run_click(argv)
    sys.exit(dispatch(g, name, o))


def program():
    """Run as the `pyrunc` program (bin/pyrunc): main(), then leave with posix._exit once stdout and stderr are
    flushed.  The interpreter's finalization (~2 ms: module teardown, GC) would stand between every verb and its
    caller.  Nothing else is left to finalize: the logger writes with posix.write, files are closed by `with`, and
    the only threads (the run's stdio copy, cgroups.warm) are _thread ones that the verbs join themselves."""
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
    posix._exit(code & 0xFF)


if __name__ == "__main__":
    main()
