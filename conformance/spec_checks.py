#!/usr/bin/env python3
"""pyrunc's own OCI runtime-spec checks, runnable against any runc-compatible runtime.

    python3 conformance/spec_checks.py --runtime runc [--root DIR] [--only SUBSTR] [--keep-going]

Prints TAP version 13, one line per requirement, each naming the spec section it checks:

    ok 12 - process.cwd is the working directory [config.md#process]

A check that runc itself fails on the reference host carries a TODO mark.  The mark excuses
runc only: when the runtime under test is runc (its `--version` says "runc version"), such a
failure is printed with a TODO directive (`# TODO runc fails here: <reason>`) and does not
affect the exit status.  Against any other runtime (pyrunc) the same failure is a plain
`not ok` and fails the run: a TODO never hides the runtime's own failures.

A check may instead carry a DEVIATION mark: a spec requirement that runc and pyrunc both break
on purpose because their callers depend on it.  Its failure is printed `# TODO deviation:
<reason>` for every runtime and counted apart in the summary (conformance/README.md lists them).

The exit status is 0 iff every other check passes (SKIPs count as passing; a SKIP always
says why).

The checks live in conformance/checks/ (harness.py: runtime driver, bundles, probe;
one module per area). The TAP helpers below have no dependencies so that
tests/unit/test_spec_checks_tap.py can exercise them without root.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

# --------------------------------------------------------------------------- TAP


def tap_escape(text):
    """A description may not contain '#' (it starts a directive) or a newline."""
    return " ".join(str(text).replace("#", "\\#").split())


def tap_line(number, ok, description, section, directive=None):
    """One TAP test line: `ok 3 - desc [section]` plus an optional `# TODO/SKIP ...`."""
    line = f"{'ok' if ok else 'not ok'} {number} - {tap_escape(description)} [{section}]"
    if directive:
        line += f" # {' '.join(str(directive).split())}"
    return line


def tap_diag(message):
    """Diagnostic lines (`# ...`) for a message that may span several lines."""
    lines = str(message).rstrip("\n").splitlines() or [""]
    return ["#   " + ln if ln else "#" for ln in lines]


class Tap:
    """Collects results and prints TAP; decides the exit status.

    excuse_todo: the runtime under test is runc, so a TODO mark (a known runc failure) excuses a failure.
    """

    def __init__(self, out=None, excuse_todo=False):
        self.out = out if out is not None else sys.stdout
        self.excuse_todo = excuse_todo
        self.n = 0
        self.passed = self.failed = self.skipped = 0
        self.todo_failed = []
        self.todo_passed = []
        self.deviations = []

    def emit(self, line):
        print(line, file=self.out, flush=True)

    def header(self, count):
        self.emit("TAP version 13")
        self.emit(f"1..{count}")

    def excused(self, ok, todo=None, deviation=None):
        """True when a failure does not count: a documented deviation, or a TODO while testing runc."""
        return not ok and (deviation is not None or (todo is not None and self.excuse_todo))

    def result(self, ok, description, section, todo=None, skip=None, diag=None, deviation=None):
        """Record one check. todo: reason runc fails it (excuses runc only); deviation: a deliberate, documented
        departure from the spec (excused for every runtime); skip: why it did not run."""
        self.n += 1
        directive = None
        if skip is not None:
            directive = f"SKIP {skip}"
            self.skipped += 1
            ok = True
        elif deviation is not None and not ok:
            directive = f"TODO deviation: {deviation}"
            self.deviations.append(self.n)
        elif todo is not None and self.excuse_todo:
            directive = f"TODO runc fails here: {todo}"
            (self.todo_passed if ok else self.todo_failed).append(self.n)
        elif ok:
            self.passed += 1
        else:
            self.failed += 1
        self.emit(tap_line(self.n, ok, description, section, directive))
        if diag and (not ok or directive and directive.startswith("TODO")):
            for ln in tap_diag(diag):
                self.emit(ln)
        if not ok and todo is not None and directive is None:
            self.emit(f"#   (runc 1.1.5 fails this check too: {todo}; that excuses runc, not this runtime)")

    def summary_lines(self):
        lines = [f"# pass {self.passed}", f"# fail {self.failed}", f"# skip {self.skipped}",
                 f"# todo {len(self.todo_failed) + len(self.todo_passed)} (failing as expected: "
                 f"{len(self.todo_failed)})"]
        if self.deviations:
            lines.append(f"# deviation {len(self.deviations)} (deliberate, see conformance/README.md): "
                         + ", ".join(map(str, self.deviations)))
        if self.todo_passed:
            lines.append("# TODO checks that passed (drop their TODO?): "
                         + ", ".join(map(str, self.todo_passed)))
        return lines

    def summary(self):
        for ln in self.summary_lines():
            self.emit(ln)

    def exit_status(self):
        return 0 if self.failed == 0 else 1


# ------------------------------------------------------------------------ runner


def resolve_runtime(name):
    if os.sep in name:
        path = os.path.abspath(name)
        if not os.access(path, os.X_OK):
            raise SystemExit(f"spec_checks: runtime {name!r} is not executable")
        return path
    path = shutil.which(name)
    if not path:
        raise SystemExit(f"spec_checks: runtime {name!r} not found on PATH")
    return path


def is_runc(path):
    """True when the runtime under test is runc itself, by what it says it is (not by its file name: a pyrunc
    installed as `runc` is still pyrunc).  Only then may a TODO mark excuse a failing check."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.startswith("runc version ")


def load_checks():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from checks import CHECKS, load_all  # noqa: E402  (needs the path above)
    load_all()
    return CHECKS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime", default="runc", help="runtime binary: a path or a name on PATH")
    ap.add_argument("--root", help="state dir passed as --root (default: a private temp dir)")
    ap.add_argument("--only", help="run only checks whose description or section contains SUBSTR")
    ap.add_argument("--keep-going", action="store_true",
                    help="do not stop at the first failing non-TODO check")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        raise SystemExit("spec_checks: needs root (real containers)")
    runtime = resolve_runtime(args.runtime)
    checks = load_checks()
    if args.only:
        checks = [c for c in checks if args.only in c.description or args.only in c.section]

    from checks import cleanup, harness  # noqa: E402

    workdir = tempfile.mkdtemp(prefix="pyrunc-conf-")
    os.chmod(workdir, 0o755)
    root = args.root or os.path.join(workdir, "state")
    prefix = f"pyrunc-conf-{os.getpid()}"
    ctx = harness.Context(runtime, root, workdir, prefix)
    tap = Tap(excuse_todo=is_runc(runtime))
    tap.emit(f"# runtime: {runtime} ({'runc: TODO marks excuse its known failures' if tap.excuse_todo else 'not runc: a TODO mark excuses nothing'})")
    started = time.monotonic()
    status = 1
    try:
        harness.set_subreaper()
        ctx.setup()
        tap.header(len(checks))
        for i, c in enumerate(checks):
            ok, diag, skip = True, None, None
            try:
                c.func(ctx)
            except harness.Skip as e:
                skip = str(e) or "not applicable"
            except harness.CheckFail as e:
                ok, diag = False, str(e)
            except Exception:  # noqa: BLE001 - a crashing check is a failing check
                ok, diag = False, traceback.format_exc(limit=4)
            finally:
                harness.reap_all()
            tap.result(ok, c.description, c.section, todo=c.todo, skip=skip, diag=diag, deviation=c.deviation)
            if not ok and not tap.excused(ok, c.todo, c.deviation) and not args.keep_going:
                tap.emit(f"Bail out! stopping at the first failure, {len(checks) - i - 1} checks "
                         "not run (use --keep-going)")
                break
        tap.summary()
        status = tap.exit_status()
    finally:
        leftovers = cleanup.cleanup_all(ctx, own_root=args.root is None)
        for ln in leftovers:
            tap.emit(f"# cleanup: {ln}")
        if leftovers:
            status = 1
        tap.emit(f"# elapsed {time.monotonic() - started:.1f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
