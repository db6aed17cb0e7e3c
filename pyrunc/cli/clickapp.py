"""The click application, built from the verb registry.

Used for --help, --version and usage errors: the fast parser (main.py) hands argv over whenever it cannot take it,
so what users see for help and bad flags is click's.  Go-style single-dash long flags are rewritten to click's
double-dash form first.  A successful parse runs the same dispatch as the fast path.
"""

import sys
from types import SimpleNamespace

import click

from . import GLOBAL, VERBS

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _option(opt):
    names = [n if n.startswith("--") or len(n) == 2 else "-" + n for n in opt.names]
    if opt.kind == "bool":
        return click.option(*names, opt.dest, is_flag=True, default=False, help=opt.help)
    if opt.kind == "list":
        return click.option(*names, opt.dest, multiple=True, help=opt.help)
    if opt.kind == "int":
        return click.option(*names, opt.dest, type=int, default=opt.default, show_default=bool(opt.default),
                            help=opt.help)
    return click.option(*names, opt.dest, default=opt.default, show_default=bool(opt.default), help=opt.help)


def _command(name, verb):
    def callback(**kw):
        from .main import dispatch

        ctx = click.get_current_context()
        g = SimpleNamespace(**ctx.parent.params)
        kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        args = list(kw.pop("args", ()))
        o = SimpleNamespace(args=args, **kw)
        sys.exit(dispatch(g, name, o))

    f = callback
    for opt in reversed(verb.opts):
        f = _option(opt)(f)
    nargs = -1 if verb.rest or len(verb.args) > 1 or not verb.args else 1
    f = click.argument("args", nargs=nargs, metavar=" ".join(a.upper() for a in verb.args) or None)(f)
    ctx = dict(_CTX)
    if verb.rest:
        ctx["ignore_unknown_options"] = True
        ctx["allow_interspersed_args"] = False
    return click.command(name, help=verb.doc or verb.summary, short_help=verb.summary, context_settings=ctx)(f)


# runc exits 3 for a verb it does not know (urfave/cli's "No help topic for 'foo'"); click would exit 2.
UNKNOWN_VERB_EXIT = 3


class _Group(click.Group):
    def resolve_command(self, ctx, args):
        if args and args[0] in ("help", "h"):  # runc's `help [verb]`: the help, exit 0
            if len(args) == 1:
                click.echo(ctx.get_help())
                ctx.exit(0)
            if args[1] in self.commands:
                cmd = self.commands[args[1]]
                click.echo(cmd.get_help(click.Context(cmd, info_name=args[1], parent=ctx)))
                ctx.exit(0)
            args = args[1:]  # an unknown topic: runc's "No help topic" error below
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            click.echo(ctx.get_usage() + f"\nTry 'pyrunc --help' for help.\n\nError: No help topic for '{args[0]}': "
                       "no such command", err=True)
            ctx.exit(UNKNOWN_VERB_EXIT)
        return super().resolve_command(ctx, args)


def build():
    from .main import version_text

    @click.group(cls=_Group, context_settings=_CTX, invoke_without_command=True, no_args_is_help=False,
                 help="pyrunc: a runc-compatible OCI container runtime written in Python")
    @click.version_option("", "--version", "-v", message=version_text().rstrip("\n"), prog_name="pyrunc")
    def cli(**kw):
        ctx = click.get_current_context()
        if ctx.invoked_subcommand is None:  # no verb (with or without global flags): runc prints its help, exit 0
            click.echo(ctx.get_help())
            ctx.exit(0)

    for opt in GLOBAL:  # cli is a Group already: options append in this order
        cli = _option(opt)(cli)
    for name, verb in VERBS.items():
        cli.add_command(_command(name, verb))
    return cli


def _gostyle(argv):
    """-bundle -> --bundle, -version -> --version: long names written with one dash as Go's flag package allows."""
    longs = {"version", "help"}
    for opt in GLOBAL:
        longs.update(n.lstrip("-") for n in opt.names if n.startswith("--"))
    for verb in VERBS.values():
        for opt in verb.opts:
            longs.update(n.lstrip("-") for n in opt.names if n.startswith("--"))
    out = []
    for tok in argv:
        if tok == "--":
            out.append(tok)
            continue
        if tok.startswith("-") and not tok.startswith("--") and tok[1:].split("=")[0] in longs and len(tok) > 2:
            tok = "-" + tok
        out.append(tok)
    return out


def run_click(argv):
    cli = build()
    return cli.main(args=_gostyle(argv), prog_name="pyrunc")
