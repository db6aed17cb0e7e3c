#!/usr/bin/env python3
"""Runner for the opencontainers/runtime-tools validation suite.

The suite is a set of Go programs (``validation/<name>/<name>.t``) that each
drive an OCI runtime through its command line (the binary named by the
``RUNTIME`` environment variable) and print TAP version 13 on stdout.  They
expect to run with the runtime-tools checkout as working directory, because
they read ``rootfs-$(go env GOARCH).tar.gz`` and copy ``runtimetest`` from
there into each bundle.

This module runs those programs, parses their TAP itself (``prove`` mishandles
the YAML diagnostics they print), and prints a per-program table; with
``--compare`` it runs every program against a second runtime and shows both
side by side.  After each program it reports containers, mounts and cgroups
that the program left behind, removes leftover containers it saw appear
(never ones that existed before the run), and keeps the raw TAP and stderr of
every program under ``--out``.

Stdlib only.  See conformance/README.md for how to build runtime-tools.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

# --------------------------------------------------------------------------
# TAP parsing
# --------------------------------------------------------------------------

_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_TEST_RE = re.compile(r"^(not\s+)?ok\b\s*(\d+)?\s*(?:-\s*)?(.*)$")
_DIRECTIVE_RE = re.compile(r"(?<!\\)#\s*(todo|skip\S*)\b\s*(.*)$", re.IGNORECASE)
_BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")
_VERSION_RE = re.compile(r"^TAP version (\d+)\s*$", re.IGNORECASE)
_YAML_START_RE = re.compile(r"^(\s+)---\s*$")


@dataclasses.dataclass
class TestPoint:
    ok: bool
    number: int
    description: str
    directive: Optional[str] = None  # "SKIP" or "TODO"
    reason: str = ""
    yaml: Optional[str] = None

    @property
    def failed(self) -> bool:
        """A real failure: ``not ok`` that is not marked TODO."""
        return not self.ok and self.directive != "TODO"


@dataclasses.dataclass
class TapResult:
    version: Optional[int] = None
    plan: Optional[int] = None  # N from "1..N"
    plan_skip_reason: Optional[str] = None  # "1..0 # SKIP why"
    plan_at_end: bool = False
    tests: List[TestPoint] = dataclasses.field(default_factory=list)
    bail_out: Optional[str] = None
    diagnostics: List[str] = dataclasses.field(default_factory=list)
    unknown: List[str] = dataclasses.field(default_factory=list)
    orphan_yaml: List[str] = dataclasses.field(default_factory=list)  # YAML not after a test line
    warnings: List[str] = dataclasses.field(default_factory=list)

    # ok + not_ok + skip == finished: "ok" excludes "ok ... # SKIP" lines
    # (counted in skip); "not ok" counts every not-ok line, TODO or not.
    @property
    def ok(self) -> int:
        return sum(1 for t in self.tests if t.ok and t.directive != "SKIP")

    @property
    def ok_lines(self) -> int:
        return sum(1 for t in self.tests if t.ok)

    @property
    def not_ok(self) -> int:
        return sum(1 for t in self.tests if not t.ok)

    @property
    def failed(self) -> int:
        return sum(1 for t in self.tests if t.failed)

    @property
    def skip(self) -> int:
        return sum(1 for t in self.tests if t.ok and t.directive == "SKIP")

    @property
    def orphan_errors(self) -> List[str]:
        """YAML blocks outside any test point that carry a non-empty error."""
        rx = re.compile(r'^\s*"?error"?[ \t]*:[ \t]*(?![ \t]|""|$|null|~)', re.MULTILINE)
        return [y for y in self.orphan_yaml if rx.search(y)]

    @property
    def todo(self) -> int:
        return sum(1 for t in self.tests if t.directive == "TODO")

    @property
    def todo_passed(self) -> int:
        return sum(1 for t in self.tests if t.directive == "TODO" and t.ok)

    @property
    def finished(self) -> int:
        return len(self.tests)

    @property
    def plan_complete(self) -> bool:
        return self.plan is not None and self.plan == len(self.tests) and self.bail_out is None


def parse_tap(text: str) -> TapResult:
    """Parse a TAP (12/13) stream.

    YAML diagnostic blocks (an indented ``---`` after a test line, up to the
    matching ``...``) are attached to the preceding test point and never
    interpreted as test lines.  Indented lines outside YAML blocks (e.g.
    subtests) are ignored.
    """
    res = TapResult()
    lines = text.splitlines()
    i = 0
    next_number = 1
    seen_numbers = set()
    last_was_test = False
    while i < len(lines):
        line = lines[i].rstrip("\r")
        i += 1
        m = _YAML_START_RE.match(line)
        if m:
            indent = m.group(1)
            block = []
            closed = False
            while i < len(lines):
                inner = lines[i].rstrip("\r")
                i += 1
                if inner.strip() == "..." and (inner.startswith(indent + "...") or not inner[:1].isspace()):
                    closed = True
                    break
                block.append(inner)
            if not closed:
                res.warnings.append("unterminated YAML block at end of stream")
            if last_was_test and res.tests[-1].yaml is None:
                res.tests[-1].yaml = "\n".join(block)
            else:
                # Not after a test point.  runtime-tools prints some blocks
                # before the test they describe, and some programs report
                # their only error this way (hooks.t: "1..0" plus an error
                # block), so keep them: see TapResult.orphan_errors.
                res.orphan_yaml.append("\n".join(block))
            last_was_test = False
            continue
        if not line.strip():
            continue
        if line[:1].isspace():
            continue  # subtest or stray indented output
        m = _VERSION_RE.match(line)
        if m:
            res.version = int(m.group(1))
            continue
        m = _PLAN_RE.match(line)
        if m:
            if res.plan is not None:
                res.warnings.append("more than one plan line")
                continue
            res.plan = int(m.group(1))
            res.plan_at_end = bool(res.tests)
            if m.group(2):
                dm = re.match(r"skip\S*\s*(.*)", m.group(2), re.IGNORECASE)
                if dm:
                    res.plan_skip_reason = dm.group(1).strip()
            continue
        m = _TEST_RE.match(line)
        if m:
            if res.plan is not None and res.plan_at_end:
                res.warnings.append("test line after a trailing plan")
            ok = m.group(1) is None
            number = int(m.group(2)) if m.group(2) else next_number
            if number != next_number:
                res.warnings.append("test %d out of sequence (expected %d)" % (number, next_number))
            if number in seen_numbers:
                res.warnings.append("duplicate test number %d" % number)
            seen_numbers.add(number)
            next_number = number + 1
            desc = m.group(3) or ""
            directive = None
            reason = ""
            dm = _DIRECTIVE_RE.search(desc)
            if dm:
                directive = "TODO" if dm.group(1).upper() == "TODO" else "SKIP"
                reason = dm.group(2).strip()
                desc = desc[: dm.start()].rstrip()
            res.tests.append(TestPoint(ok, number, desc, directive, reason))
            last_was_test = True
            continue
        m = _BAIL_RE.match(line)
        if m:
            res.bail_out = m.group(1).strip()
            break
        last_was_test = False
        if line.startswith("#"):
            res.diagnostics.append(line[1:].strip())
            continue
        # Unparsed line.  It does not detach a following YAML block from
        # the test before it: runtime-tools prints multi-line descriptions
        # ("...\nRefer to: <url>") unescaped.
        last_was_test = bool(res.tests) and res.tests[-1].yaml is None
        res.unknown.append(line)
    return res


# --------------------------------------------------------------------------
# running one program
# --------------------------------------------------------------------------


@dataclasses.dataclass
class ProgramResult:
    name: str
    runtime: str
    tap: TapResult
    exit_status: Optional[int]  # None if timed out; negative = killed by signal
    timed_out: bool
    duration: float
    tap_path: Optional[str] = None
    stderr_path: Optional[str] = None
    stderr_head: str = ""
    leftover_containers: List[str] = dataclasses.field(default_factory=list)
    leftover_mounts: List[str] = dataclasses.field(default_factory=list)
    leftover_cgroups: List[str] = dataclasses.field(default_factory=list)
    leftover_bundles: List[str] = dataclasses.field(default_factory=list)
    unattributed: List[str] = dataclasses.field(default_factory=list)
    cleanup_errors: List[str] = dataclasses.field(default_factory=list)

    @property
    def clean_pass(self) -> bool:
        return (not self.timed_out and self.exit_status == 0
                and self.tap.plan_complete and self.tap.failed == 0)

    @property
    def reasons(self) -> List[str]:
        r = []
        if self.timed_out:
            r.append("timeout")
        elif self.exit_status != 0:
            if self.exit_status is not None and self.exit_status < 0:
                r.append("signal %d" % -self.exit_status)
            else:
                r.append("exit %s" % self.exit_status)
        if self.tap.bail_out is not None:
            r.append("bail out")
        if self.tap.failed:
            r.append("%d not ok" % self.tap.failed)
        if self.tap.orphan_errors:
            r.append("error reported outside any test")
        if self.tap.plan is None:
            r.append("no plan")
        elif self.tap.plan != self.tap.finished:
            r.append("plan %d, ran %d" % (self.tap.plan, self.tap.finished))
        return r

    @property
    def verdict(self) -> str:
        if self.clean_pass:
            return "PASS"
        if self.timed_out:
            return "TIMEOUT"
        if self.tap.bail_out is not None:
            return "BAIL"
        if self.tap.failed:
            return "FAIL"
        if self.exit_status != 0:
            return "ERROR"
        return "INCOMPLETE"

    @property
    def planned_finished(self) -> str:
        plan = "-" if self.tap.plan is None else str(self.tap.plan)
        return "%s/%d" % (plan, self.tap.finished)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "runtime": self.runtime,
            "verdict": self.verdict,
            "clean_pass": self.clean_pass,
            "reasons": self.reasons,
            "ok": self.tap.ok,
            "not_ok": self.tap.not_ok,
            "failed": self.tap.failed,
            "skip": self.tap.skip,
            "todo": self.tap.todo,
            "plan": self.tap.plan,
            "finished": self.tap.finished,
            "plan_complete": self.tap.plan_complete,
            "bail_out": self.tap.bail_out,
            "exit_status": self.exit_status,
            "timed_out": self.timed_out,
            "duration": round(self.duration, 3),
            "tap_warnings": self.tap.warnings,
            "orphan_yaml": self.tap.orphan_yaml,
            "orphan_errors": self.tap.orphan_errors,
            "failures": [
                {"number": t.number, "description": t.description, "yaml": t.yaml}
                for t in self.tap.tests if t.failed
            ],
            "stderr_head": self.stderr_head,
            "tap_path": self.tap_path,
            "stderr_path": self.stderr_path,
            "leftover_containers": self.leftover_containers,
            "leftover_mounts": self.leftover_mounts,
            "leftover_cgroups": self.leftover_cgroups,
            "leftover_bundles": self.leftover_bundles,
            "unattributed_changes": self.unattributed,
            "cleanup_errors": self.cleanup_errors,
        }


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_program(path: str, runtime: str, cwd: str, timeout: float,
                out_dir: str, name: Optional[str] = None,
                tmpdir: Optional[str] = None) -> ProgramResult:
    """Run one validation program with RUNTIME=runtime; capture and parse its TAP.

    The program runs in its own session/process group so a timeout kills it
    together with anything it spawned (runtime invocations, hooks).
    """
    name = name or os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    tap_path = os.path.join(out_dir, name + ".tap")
    err_path = os.path.join(out_dir, name + ".stderr")
    env = dict(os.environ)
    env["RUNTIME"] = runtime
    if tmpdir:
        env["TMPDIR"] = tmpdir
    start = time.monotonic()
    timed_out = False
    with open(tap_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([os.path.abspath(path)], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            status: Optional[int] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
            status = None
        else:
            # reap stragglers the program left in its group (e.g. a hook)
            _kill_group(proc)
    duration = time.monotonic() - start
    with open(tap_path, "r", encoding="utf-8", errors="replace") as f:
        tap = parse_tap(f.read())
    with open(err_path, "r", encoding="utf-8", errors="replace") as f:
        stderr_lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    return ProgramResult(name=name, runtime=runtime, tap=tap, exit_status=status,
                         timed_out=timed_out, duration=duration, tap_path=tap_path,
                         stderr_path=err_path, stderr_head=" | ".join(stderr_lines[:3])[:300])


# --------------------------------------------------------------------------
# leftovers: containers, mounts, cgroups
# --------------------------------------------------------------------------

DEFAULT_STATE_ROOTS = {"runc": "/run/runc", "pyrunc": "/run/pyrunc"}


def runtime_state_root(runtime: str, override: Optional[str] = None) -> Optional[str]:
    if override:
        return override
    base = os.path.basename(runtime)
    if base in DEFAULT_STATE_ROOTS:
        return DEFAULT_STATE_ROOTS[base]
    if "pyrunc" in base:
        return DEFAULT_STATE_ROOTS["pyrunc"]
    return None


def list_containers(runtime: str, state_root: Optional[str]) -> Optional[Dict[str, Optional[str]]]:
    """Containers the runtime knows about under its default root: {id: bundle}.

    Asks ``<runtime> list --format json`` first; falls back to the entries of
    the state directory (bundle unknown: None).  Returns None if neither works.
    """
    exe = shutil.which(runtime) or runtime
    try:
        p = subprocess.run([exe, "list", "--format", "json"], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        if p.returncode == 0:
            data = json.loads(p.stdout.decode() or "null") or []
            return {c.get("id"): c.get("bundle") for c in data if isinstance(c, dict)}
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    if state_root and os.path.isdir(state_root):
        return {e: None for e in os.listdir(state_root)
                if os.path.isdir(os.path.join(state_root, e))}
    if state_root and not os.path.exists(state_root):
        return {}
    return None


def remove_container(runtime: str, cid: str) -> str:
    exe = shutil.which(runtime) or runtime
    try:
        p = subprocess.run([exe, "delete", "--force", cid], capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        return "removed" if p.returncode == 0 else "delete failed: " + p.stderr.decode(errors="replace").strip()[:200]
    except (OSError, subprocess.SubprocessError) as e:
        return "delete failed: %s" % e


def snapshot_mounts() -> set:
    try:
        with open("/proc/self/mountinfo") as f:
            # mount point + fs type + source; ids change, so leave them out
            out = set()
            for line in f:
                parts = line.split()
                sep = parts.index("-")
                out.add("%s %s %s" % (parts[4], parts[sep + 1], parts[sep + 2]))
            return out
    except OSError:
        return set()


def _own_cgroups(root: str = "/sys/fs/cgroup") -> set:
    """Directories of this process's own (non-root) cgroups.

    Whoever manages the runner's cgroup (a session manager, a CI job runner)
    may create sibling cgroups at any time; those are not the runtime's doing,
    so new siblings of these are not reported.  A runtime puts containers at
    their cgroupsPath (default /<id>), not there.
    """
    parents = set()
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return parents
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if path in ("", "/"):
            continue
        for c in controllers.split(","):
            name = c[len("name="):] if c.startswith("name=") else (c or "unified")
            mnt = os.path.join(root, name)
            if os.path.isdir(mnt):
                parents.add(os.path.join(mnt, path.lstrip("/")))
    if os.path.exists(os.path.join(root, "cgroup.controllers")):  # pure v2
        for line in lines:
            if line.startswith("0::") and line[3:] not in ("", "/"):
                parents.add(os.path.join(root, line[3:].lstrip("/")))
    return parents


def snapshot_cgroups(root: str = "/sys/fs/cgroup", max_depth: int = 8) -> set:
    out = set()
    if not os.path.isdir(root):
        return out
    own = _own_cgroups(root)
    ignore_under = {os.path.dirname(c) for c in own}
    base_depth = root.rstrip("/").count("/")
    for dirpath, dirnames, _ in os.walk(root):
        depth = dirpath.rstrip("/").count("/") - base_depth
        if depth >= max_depth:
            dirnames[:] = []
        if dirpath in ignore_under:
            # skip our siblings, but look inside our own cgroup: with cgroup v1
            # a relative cgroupsPath ends up below the caller's cgroup
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) in own]
            continue
        out.add(dirpath)
    return out


def remove_cgroups(paths: Sequence[str]) -> List[str]:
    """rmdir the given (empty) cgroup directories, deepest first; returns failures."""
    failed = []
    for p in sorted(paths, key=lambda x: x.count("/"), reverse=True):
        try:
            os.rmdir(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append("%s: %s" % (p, e.strerror))
    return failed


def unmount_under(top: str) -> List[str]:
    """Lazily unmount every mount point under top, deepest first; returns failures."""
    points = [m.split()[0] for m in snapshot_mounts()]
    points = [p for p in points if _under(p, top)]
    failed = []
    for p in sorted(set(points), key=lambda x: x.count("/"), reverse=True):
        r = subprocess.run(["umount", "-l", p], capture_output=True)
        if r.returncode != 0:
            failed.append("%s: %s" % (p, r.stderr.decode(errors="replace").strip()))
    return failed


# --------------------------------------------------------------------------
# suite orchestration
# --------------------------------------------------------------------------


_CGROUP_OURS_RE = re.compile(
    r"/(cgrouptest|testdir|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(/|$)")


_CGROUP_FIXED_RE = re.compile(r"/(cgrouptest|testdir)(/|$)")


def _under(path: str, top: str) -> bool:
    path, top = os.path.realpath(path), os.path.realpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def discover(tools_dir: str, only: Optional[str] = None) -> List[str]:
    progs = sorted(glob.glob(os.path.join(tools_dir, "validation", "*", "*.t")),
                   key=lambda p: os.path.basename(p))
    if only:
        rx = re.compile(only)
        progs = [p for p in progs if rx.search(os.path.splitext(os.path.basename(p))[0])]
    return progs


def _label(runtime: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(runtime)) or "runtime"


class Suite:
    def __init__(self, tools_dir: str, out_dir: str, timeout: float,
                 cleanup: bool = True, state_roots: Optional[Dict[str, str]] = None,
                 log=None):
        self.tools_dir = tools_dir
        self.out_dir = out_dir
        self.timeout = timeout
        self.cleanup = cleanup
        self.state_roots = state_roots or {}
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.preexisting: Dict[str, Optional[set]] = {}

    def run_one(self, prog: str, runtime: str) -> ProgramResult:
        label = _label(runtime)
        name = os.path.splitext(os.path.basename(prog))[0]
        root = runtime_state_root(runtime, self.state_roots.get(runtime))
        if runtime not in self.preexisting:
            self.preexisting[runtime] = list_containers(runtime, root)
            if self.preexisting[runtime]:
                self.log("note: %s already has containers %s; they are left alone"
                         % (runtime, sorted(self.preexisting[runtime])))
        before_ct = list_containers(runtime, root)
        before_mnt = snapshot_mounts()
        before_cg = snapshot_cgroups()
        tmp = tempfile.mkdtemp(prefix="rtools-%s-%s-" % (label, name))
        # like /tmp, traversable by everyone: with a 0700 TMPDIR a container in
        # a user namespace cannot reach its bundle (linux_uid_mappings fails)
        os.chmod(tmp, 0o755)
        try:
            res = run_program(prog, runtime, self.tools_dir, self.timeout,
                              os.path.join(self.out_dir, label), name=name, tmpdir=tmp)
            res.runtime = runtime
            # Leftovers.  The machine may be shared (other people running the
            # same runtime, other cgroups and mounts coming and going), so only
            # what can be attributed to this program is reported as its
            # leftover: containers whose bundle is under the program's TMPDIR
            # (runtime-tools makes every bundle with os.MkdirTemp), mounts
            # under that TMPDIR, and new cgroups named like runtime-tools'
            # (cgrouptest, testdir) or like its container ids (UUIDs).
            # Anything else that appeared is listed as "unattributed".
            after_ct = list_containers(runtime, root)
            if after_ct is not None:
                known = set(before_ct or {}) | set(self.preexisting.get(runtime) or {})
                for cid in sorted(set(after_ct) - known):
                    bundle = after_ct[cid]
                    if bundle and _under(bundle, tmp):
                        note = cid
                        if self.cleanup:
                            note += " (" + remove_container(runtime, cid) + ")"
                        res.leftover_containers.append(note)
                    else:
                        res.unattributed.append("container %s (bundle %s)" % (cid, bundle))
            for m in sorted(snapshot_mounts() - before_mnt):
                if _under(m.split()[0], tmp):
                    res.leftover_mounts.append(m)
                else:
                    res.unattributed.append("mount " + m)
            for cg in sorted(snapshot_cgroups() - before_cg):
                if _CGROUP_OURS_RE.search(cg):
                    res.leftover_cgroups.append(cg)
                else:
                    res.unattributed.append("cgroup " + cg)
            if self.cleanup:
                if res.leftover_mounts:
                    for f in unmount_under(tmp):
                        res.cleanup_errors.append("umount " + f)
                # only runtime-tools' own fixed names are removed; a UUID-named
                # cgroup could in principle belong to someone else's container
                # that happens to be starting, so those are only reported
                fixed = [c for c in res.leftover_cgroups if _CGROUP_FIXED_RE.search(c)]
                if fixed:
                    for f in remove_cgroups(fixed):
                        res.cleanup_errors.append("rmdir " + f)
            res.leftover_bundles = sorted(os.listdir(tmp))
        finally:
            # bundles the program did not remove: only if nothing is mounted there
            mounted = any(_under(m.split()[0], tmp) for m in snapshot_mounts())
            if not mounted:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                self.log("warning: mounts remain under %s; not removing it" % tmp)
        for kind in ("containers", "mounts", "cgroups"):
            items = getattr(res, "leftover_" + kind)
            if items:
                self.log("  leftover %s after %s/%s: %s" % (kind, runtime, name, items))
        if res.cleanup_errors:
            self.log("  cleanup FAILED after %s/%s: %s" % (runtime, name, res.cleanup_errors))
        return res


def _row(r: Optional[ProgramResult]) -> List[str]:
    if r is None:
        return ["", "", "", "", ""]
    reasons = r.reasons
    return [str(r.tap.ok), str(r.tap.not_ok), str(r.tap.skip), r.planned_finished,
            r.verdict + (" (%s)" % ", ".join(reasons) if reasons else "")]


def _totals(results: Sequence[ProgramResult]) -> List[str]:
    passes = sum(1 for r in results if r.clean_pass)
    return [str(sum(r.tap.ok for r in results)), str(sum(r.tap.not_ok for r in results)),
            str(sum(r.tap.skip for r in results)),
            "%d/%d" % (sum(r.tap.plan or 0 for r in results), sum(r.tap.finished for r in results)),
            "%d/%d clean" % (passes, len(results))]


COLS = ["ok", "not ok", "skip", "planned/finished", "verdict"]


def format_table(names: List[str], runtimes: List[str],
                 results: Dict[str, Dict[str, ProgramResult]], markdown: bool) -> str:
    header = ["program"]
    for rt in runtimes:
        prefix = (os.path.basename(rt) + " ") if len(runtimes) > 1 else ""
        header += [prefix + c for c in COLS]
    rows = []
    for n in names:
        row = [n]
        for rt in runtimes:
            row += _row(results[rt].get(n))
        rows.append(row)
    total = ["TOTAL"]
    for rt in runtimes:
        total += _totals(list(results[rt].values()))
    rows.append(total)
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        for row in rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools-dir", default=os.environ.get("RUNTIME_TOOLS_DIR"),
                    help="built runtime-tools checkout (default: $RUNTIME_TOOLS_DIR)")
    ap.add_argument("--runtime", default="pyrunc",
                    help="runtime command or path, passed as RUNTIME (default: pyrunc)")
    ap.add_argument("--compare", metavar="RUNTIME",
                    help="also run every program against this runtime (e.g. runc)")
    ap.add_argument("--only", metavar="REGEX", help="only programs whose name matches")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-program timeout in seconds")
    ap.add_argument("--out", metavar="DIR", help="where to keep raw TAP/stderr (default: a new temp dir)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write full results as JSON")
    ap.add_argument("--state-root", action="append", default=[], metavar="RUNTIME=DIR",
                    help="state dir to watch for leftover containers (default: /run/runc, /run/pyrunc)")
    ap.add_argument("--no-cleanup", action="store_true",
                    help="report leftover containers, mounts and cgroups but do not remove them")
    args = ap.parse_args(argv)

    if not args.tools_dir:
        ap.error("--tools-dir (or RUNTIME_TOOLS_DIR) is required")
    tools_dir = os.path.abspath(args.tools_dir)
    for needed in ("runtimetest",):
        if not os.access(os.path.join(tools_dir, needed), os.X_OK):
            ap.error("%s not found in %s (build runtime-tools first)" % (needed, tools_dir))
    if not glob.glob(os.path.join(tools_dir, "rootfs-*.tar.gz")):
        ap.error("no rootfs-<arch>.tar.gz in %s" % tools_dir)
    progs = discover(tools_dir, args.only)
    if not progs:
        ap.error("no validation/*/*.t programs found in %s" % tools_dir)
    runtimes = [args.runtime] + ([args.compare] if args.compare else [])
    for rt in runtimes:
        if shutil.which(rt) is None:
            ap.error("runtime %r not found (RUNTIME must be a command on PATH or a path)" % rt)
    state_roots = {}
    for s in args.state_root:
        k, _, v = s.partition("=")
        state_roots[k] = v
    out_dir = args.out or tempfile.mkdtemp(prefix="rtools-out-")
    os.makedirs(out_dir, exist_ok=True)
    print("raw TAP and stderr go to %s" % out_dir, file=sys.stderr, flush=True)

    suite = Suite(tools_dir, out_dir, args.timeout, cleanup=not args.no_cleanup,
                  state_roots=state_roots)
    names = [os.path.splitext(os.path.basename(p))[0] for p in progs]
    results: Dict[str, Dict[str, ProgramResult]] = {rt: {} for rt in runtimes}
    for prog, name in zip(progs, names):
        for rt in runtimes:
            r = suite.run_one(prog, rt)
            results[rt][name] = r
            print("%-40s %-8s %-10s ok=%d not_ok=%d skip=%d plan=%s %.1fs" % (
                name, os.path.basename(rt), r.verdict, r.tap.ok, r.tap.not_ok, r.tap.skip,
                r.planned_finished, r.duration), file=sys.stderr, flush=True)

    print(format_table(names, runtimes, results, markdown=False))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_table(names, runtimes, results, markdown=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tools_dir": tools_dir, "out_dir": out_dir, "runtimes": runtimes,
                       "results": {rt: [results[rt][n].to_json() for n in names] for rt in runtimes}},
                      f, indent=2)
            f.write("\n")
    left = [(rt, n) for rt in runtimes for n in names
            if results[rt][n].leftover_containers or results[rt][n].leftover_mounts
            or results[rt][n].leftover_cgroups]
    if left:
        print("leftovers (see JSON / stderr above): %s" % ", ".join("%s/%s" % x for x in left),
              file=sys.stderr)
    return 0 if all(r.clean_pass for r in results[runtimes[0]].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
