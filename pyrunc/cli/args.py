"""Go-style argv parsing from the verb registry, without click.

Accepted the way runc (urfave/cli over Go's flag package) accepts them, because callers rely on it:
`--flag value`, `--flag=value`, `-flag value` (single-dash long flags: go-runc sends `-no-subreaper`), boolean
`--flag`/`--flag=true|false`, short aliases (`-b B`, `-b=B`).  Flags may follow positionals except for verbs whose
trailing arguments belong to someone else (exec's command, ps's ps options): there everything after the
container id is positional, as in runc.

Anything this parser cannot take (--help, a bad flag, no verb) raises NeedClick, and the click application built
from the same registry answers with its help or usage error.
"""


from .registry import GLOBAL, VERBS


class Namespace:
    """Parsed flags as attributes, like types.SimpleNamespace, whose module costs ~0.5 ms at start-up."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"Namespace({self.__dict__!r})"


class NeedClick(Exception):
    """Let click handle this argv (help, usage errors)."""


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
        raise NeedClick(f"flag provided but not defined: {tok}")
    if opt.kind == "bool":
        if eq:
            if val.lower() not in _TRUE:
                raise NeedClick(f"invalid boolean value {val!r} for {tok}")
            ns[opt.dest] = _TRUE[val.lower()]
        else:
            ns[opt.dest] = True
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            raise NeedClick(f"flag needs an argument: {tok}")
        val = argv[i + 1]
        i += 1
    if opt.kind == "int":
        try:
            val = int(val, 0)
        except ValueError:
            raise NeedClick(f"invalid value {val!r} for flag {tok}") from None
    if opt.kind == "list":
        ns[opt.dest].append(val)
    else:
        ns[opt.dest] = val
    return i + 1


def _is_flag(tok):
    return len(tok) > 1 and tok[0] == "-"


def parse(argv):
    """Return (global namespace, verb name, verb namespace with .args) or raise NeedClick."""
    gtable = _table(GLOBAL)
    g = _defaults(GLOBAL)
    i = 0
    while i < len(argv) and _is_flag(argv[i]):
        tok = argv[i]
        if tok in ("--help", "-h", "-help", "--version", "-v", "-version", "--"):
            raise NeedClick(tok)
        i = _take(tok, argv, i, gtable, g)
    if i >= len(argv) or argv[i] not in VERBS:
        raise NeedClick("no verb")
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
                raise NeedClick(tok)
            i = _take(tok, argv, i, vtable, o)
            continue
        args.append(tok)
        i += 1
    o["args"] = args
    return Namespace(**g), name, Namespace(**o)
