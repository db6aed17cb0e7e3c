"""Instructions per verb, counted by callgrind: pyrunc's own work, in a measure that this VM's noise cannot move.

    python3 bench/instructions.py [--pyrunc PATH] [--markdown] [--json FILE]

bench.py times pyrunc against runc, and those times move by 10-20% with the machine's phases: more than most
single changes do.  callgrind (valgrind) counts the instructions a process executes, the same for the same
binaries, input and environment however busy the machine is.  So a change to pyrunc's start-up can be judged here
to the instruction, before bench.py says whether it shows in time.  Instructions are not time: a page fault, a
syscall or a cache miss costs time and few instructions of the process.  Needs root and valgrind.

Three commands, each run once in full and once counting only inside Py_RunMain (`--toggle-collect`), with the
interpreter of the pyrunc script and its flags:
- the floor: `-I -S -c "import posix; posix._exit(0)"`, which leaves the way pyrunc does (no interpreter
  finalization);
- `pyrunc state` of a container that does not exist: the hot verbs' start-up;
- `pyrunc run` of busybox `true`, until it forks the container's init: callgrind writes a first part of its counts
  there (`--dump-before`).  What comes after cannot be counted here: valgrind 3.19 does not know openat2(2), so
  the init, which resolves every path in the rootfs with it, fails, and run with it.
The columns split each count: start-up is all but Py_RunMain (the dynamic loader, the interpreter's
initialization); inside the script, the inclusive counts of the interpreter's marshal_loads (code unmarshalled),
type_new (classes made), _imp_create_dynamic (C extensions loaded) and _json's scanner and encoder; the rest is
Python code run, the imports' bookkeeping and the user side of syscalls.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

FLOOR = ("-I", "-S", "-c", "import posix; posix._exit(0)")
FORKS = ("pyr_fork_into_cgroup", "os_fork_impl")  # the C functions that fork the container's first process
# (key, label, interpreter functions whose inclusive counts make it), inside the script
PARTS = (
    ("unmarshal", "code unmarshalled (marshal.loads)", ("marshal_loads",)),
    ("classes", "classes made (type_new)", ("type_new",)),
    ("extensions", "C extensions loaded", ("_imp_create_dynamic",)),
    ("json", "JSON (_json's scanner and encoder)", ("scanner_call", "encoder_call")),
)
# callgrind_annotate --inclusive=yes: "8,589,305 (15.60%)  /src/Python/marshal.c:marshal_loads [/lib/libpython.so]",
# a recursive call's entry named "func'2"
ROW = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)")


def parse_annotate(text):
    """callgrind_annotate --inclusive=yes output -> (total, {function: inclusive count}).  A function listed more
    than once (the recursive entries "f'2", or the same name in two files) keeps its largest count: the outermost
    call's, which holds the others."""
    total, counts = None, {}
    for line in text.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if line.rstrip().endswith("PROGRAM TOTALS"):
            total = n
            continue
        name = m.group(2).rpartition(":")[2].split("'")[0]
        counts[name] = max(n, counts.get(name, 0))
    if total is None:
        raise ValueError("no PROGRAM TOTALS in callgrind_annotate's output")
    return total, counts


def split(full, script):
    """The rows of one command: full and script are parse_annotate() results of the whole process and of
    Py_RunMain alone."""
    total, inner = full[0], script[0]
    row = {"total": total, "startup": total - inner, "script": inner}
    for key, _, funcs in PARTS:
        row[key] = sum(script[1].get(f, 0) for f in funcs)
    row["rest"] = inner - sum(row[key] for key, _, _ in PARTS)
    return row


def count(argv, tmp, toggle=None, until_fork=False):
    """argv under callgrind -> parse_annotate() of it: only inside `toggle` if given; with until_fork, only until
    the first fork (pyrunc's helper's clone3 or os.fork), where callgrind writes a first part."""
    out = os.path.join(tmp, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=no", f"--callgrind-out-file={out}"]
    if toggle:
        cmd.append(f"--toggle-collect={toggle}")
    if until_fork:
        cmd += [f"--dump-before={f}" for f in FORKS]
    r = subprocess.run(cmd + list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=300)
    parts = sorted(f for f in os.listdir(tmp) if f.startswith("callgrind.out"))
    try:
        if r.returncode not in (0, 1) or until_fork and "callgrind.out.1" not in parts:
            raise SystemExit(f"bench: {' '.join(argv)} under callgrind failed ({r.returncode}): "
                             f"{r.stderr.decode(errors='replace')[-1500:]}")
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                               out + ".1" if until_fork else out], capture_output=True, text=True, check=True).stdout
    finally:
        for f in parts:
            os.unlink(os.path.join(tmp, f))
    return parse_annotate(text)


def measure(pyrunc, tmp):
    from pyrunc.demo import make_bundle

    with open(pyrunc, "rb") as f:
        head = f.readline()
    if not head.startswith(b"#!"):
        raise SystemExit(f"bench: {pyrunc} is not a #! script")
    python, *flags = head[2:].decode().split()
    bundle, root = os.path.join(tmp, "bundle"), os.path.join(tmp, "root")
    os.mkdir(bundle)
    make_bundle(bundle, ["true"])
    commands = {  # exit 1 is `state`'s "does not exist", and `run`'s: its init fails under valgrind (see above)
        "floor": [python, *FLOOR],
        "state": [python, *flags, pyrunc, "--root", root, "state", "none"],
        "run": [python, *flags, pyrunc, "--root", root, "run", "--bundle", bundle, "counted"],
    }
    rows = {}
    for name, argv in commands.items():
        fork = name == "run"
        rows[name] = split(count(argv, tmp, until_fork=fork), count(argv, tmp, "Py_RunMain", until_fork=fork))
    return {"python": python, "flags": flags, "rows": rows}


def millions(n):
    return f"{n / 1e6:.2f} M"


def markdown(res):
    rows = res["rows"]
    names = list(rows)
    lines = [f"Instructions of one command, counted by callgrind (`bench/instructions.py`; `{res['python']}`; "
             "the pyrunc process only):", "",
             "| | " + " | ".join(f"`{n}`" if n != "floor" else "floor (`-I -S`, posix._exit)" for n in names) + " |",
             "|---" * (len(names) + 1) + "|"]

    def line(label, key):
        lines.append(f"| {label} | " + " | ".join(millions(rows[n][key]) for n in names) + " |")

    line("all (run: until the fork)", "total")
    line("start-up: loader, interpreter", "startup")
    line("the script (Py_RunMain)", "script")
    for key, label, _ in PARTS:
        line(f"- {label}", key)
    line("- the rest: Python code, imports' bookkeeping", "rest")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyrunc", default=shutil.which("pyrunc"))
    ap.add_argument("--markdown", action="store_true", help="print the README's markdown")
    ap.add_argument("--json", metavar="FILE", help="write the counts here")
    a = ap.parse_args()
    if not a.pyrunc or not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        raise SystemExit("bench: need --pyrunc, valgrind and callgrind_annotate")
    tmp = tempfile.mkdtemp(prefix="pyrunc-instructions-")
    try:
        res = measure(os.path.abspath(a.pyrunc), tmp)
    finally:
        root = os.path.join(tmp, "root")
        for cid in os.listdir(root) if os.path.isdir(root) else ():
            subprocess.run([a.pyrunc, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
