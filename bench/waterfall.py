"""Where `pyrunc create` spends its milliseconds, seen from the outside (pyrunc's code is not instrumented).

    python3 bench/waterfall.py [--pyrunc PATH] [--runc PATH] [-n 7] [--markdown] [--json FILE]

1. Untraced: n interleaved `create` + `delete -f` of a busybox `sleep` container with pyrunc and runc; medians.
2. Traced: `strace -f -ttt -T` of one pyrunc create.  strace follows the container's init, which waits on exec.fifo
   and never exits, so we watch the trace for the exit of the pyrunc process, then `delete -f`.  Phase boundaries are
   the first of each recognizable syscall (MARKERS below): execve; the first look-up of the pyrunc package; the open
   of config.json; the mkdir of the state dir; the first cgroup mkdir; the stub's memfd_create; the first fork
   (clone); the first cgroup.procs open (none where the init joins its cgroups itself); a child's unshare; the
   first mount; execveat of the stub; the state.json write (while the init sets itself up); exit_group.  A phase
   runs from its marker to the next one in time, whatever the order.  "blocked" is the time the pyrunc process
   itself spent in syscalls of >= 0.5 ms (waiting on its children, a cgroup.procs write, ...).
3. `python -X importtime` of one create: the import share, before and after the first pyrunc module.

strace slows every syscall (here about 2-4x overall), most of all in syscall-heavy phases (imports stat many
files, mounts).  The "scaled" column multiplies every traced phase by untraced/traced total: the shares are
strace's, the sum is the real create.  Needs root and strace.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench import interpreter_of, runtime_options, timed  # noqa: E402  (bench/bench.py)

LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
CALL = re.compile(r"^(?:<\.\.\. )?(\w+)(?:\(| resumed>)")
DURATION = re.compile(r"<(\d+\.\d+)>$")
BLOCKED_MS = 0.5


def parse_strace(lines):
    """`strace -f -ttt -T` lines -> events: dicts pid, ts (s, when the call started), call, rest, dur (s or None),
    exited (True on `+++ exited`/`+++ killed`)."""
    events = []
    for line in lines:
        m = LINE.match(line.rstrip("\n"))
        if not m:
            continue
        pid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
        if rest.startswith("+++"):
            events.append({"pid": pid, "ts": ts, "call": None, "rest": rest, "dur": None, "exited": True})
            continue
        c = CALL.match(rest)
        if not c:
            continue  # signals (---), detach notes
        d = DURATION.search(rest)
        dur = float(d.group(1)) if d else None
        resumed = rest.startswith("<...")
        if resumed and dur is not None:
            ts -= dur  # a resumed line carries the end time; the duration covers the whole call
        events.append({"pid": pid, "ts": ts, "call": c.group(1), "rest": rest, "dur": dur, "exited": False,
                       "resumed": resumed})
    return events


def markers(bundle, root, cid):
    """(key, phase label, predicate(event, main_pid)) in no particular order: the first event matching starts the
    phase."""
    cfg = f'"{os.path.join(bundle, "config.json")}"'
    state = f'"{os.path.join(root, cid)}"'

    def main(e, m):
        return e["pid"] == m and not e.get("resumed")

    def call(*names):
        return lambda e, m: not e.get("resumed") and e["call"] in names

    return [
        ("execve", "interpreter start-up (site, encodings)", lambda e, m: main(e, m) and e["call"] == "execve"),
        ("import", "imports (pyrunc.cli and what it pulls in)",
         lambda e, m: main(e, m) and "/pyrunc/__init__" in e["rest"]),
        ("config", "config.json: read, check, plan (with lazy imports)",
         lambda e, m: main(e, m) and e["call"] == "openat" and cfg in e["rest"]),
        ("statedir", "state dir, creating.json, exec.fifo",
         lambda e, m: main(e, m) and e["call"] in ("mkdir", "mkdirat") and state in e["rest"]),
        ("cgroups", "cgroup mkdirs (the limits: after the fork)",
         lambda e, m: e["call"] in ("mkdir", "mkdirat") and '"/sys/fs/cgroup/' in e["rest"]),
        ("memfd", "stub copied into a memfd", lambda e, m: call("memfd_create")(e, m) and "pyrunc-init\"" in e["rest"]),
        ("fork", "fork of the container's first child",
         lambda e, m: main(e, m) and e["call"] in ("clone", "clone3", "fork", "vfork")
         and "CLONE_THREAD" not in e["rest"]),  # not a thread (a shim's warm-up, pyrunc/cgroups/warm.py)
        # none since the init joins its cgroups itself (Manager.own_join); a fallback (no clone3) still shows
        ("procs", "cgroup.procs writes (where the init cannot join itself)",
         lambda e, m: main(e, m) and e["call"] == "openat" and "/cgroup.procs\"" in e["rest"]
         and "O_WRONLY" in e["rest"]),
        # the container's own unshare: the parent's unshare(CLONE_NEWPID) right before the fork (the default config
        # has no stage A: the parent forks the init into the new pid namespace) belongs to the fork phase
        ("unshare", "the init's namespaces (unshare)", lambda e, m: e["pid"] != m and call("unshare")(e, m)),
        ("mount", "mounts, devices, pivot_root, seccomp/caps", lambda e, m: e["pid"] != m and call("mount")(e, m)),
        ("execveat", "stub exec'd; the init says READY", call("execveat")),
        ("state", "state.json written",
         lambda e, m: main(e, m) and e["call"] in ("openat", "rename") and "state.json" in e["rest"]
         and "creating" not in e["rest"]),
        ("exit", "interpreter exit", lambda e, m: main(e, m) and e["call"] == "exit_group"),
    ]


def phases(events, marks):
    """The waterfall: [{key, label, start_ms, ms, blocked_ms, blocked}] from the first event to the main process's
    exit, and the traced total in ms."""
    main_pid = events[0]["pid"]
    t0 = events[0]["ts"]
    end = next((e["ts"] for e in events if e["exited"] and e["pid"] == main_pid), events[-1]["ts"])
    found = []
    for key, label, pred in marks:
        e = next((e for e in events if not e["exited"] and pred(e, main_pid)), None)
        if e is not None:
            found.append((e["ts"], key, label))
    found.sort()
    out = []
    for i, (ts, key, label) in enumerate(found):
        nxt = found[i + 1][0] if i + 1 < len(found) else end
        out.append({"key": key, "label": label, "start_ms": (ts - t0) * 1000, "ms": (nxt - ts) * 1000,
                    "blocked_ms": 0.0, "blocked": {}})
    for e in events:  # the main process's slow syscalls, in the phase where each started
        if e["pid"] != main_pid or e["exited"] or e["dur"] is None or e["dur"] * 1000 < BLOCKED_MS:
            continue
        at = (e["ts"] - t0) * 1000
        for p in reversed(out):
            if p["start_ms"] <= at:
                p["blocked_ms"] += e["dur"] * 1000
                p["blocked"][e["call"]] = p["blocked"].get(e["call"], 0.0) + e["dur"] * 1000
                break
    return out, (end - t0) * 1000


def parse_importtime(text):
    """`-X importtime` stderr -> (ms of top-level imports before the first pyrunc module, ms from it on,
    [(cumulative ms, name)] of the top-level imports from it on, heaviest first)."""
    before = after = 0.0
    seen_pyrunc = False
    top, entries = [], []
    for line in text.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line.split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        entries.append((depth, int(cum.strip()) / 1000, name.strip()))
    for depth, ms, name in entries:
        if depth:
            continue
        if name.split(".")[0] == "pyrunc":
            seen_pyrunc = True
        if seen_pyrunc:
            after += ms
            top.append((ms, name))
        else:
            before += ms
    top.sort(reverse=True)
    return before, after, top


def trace_create(pyrunc, bundle, root, cid, out):
    """strace -f one create; wait until the pyrunc process has exited (its init lives on), delete, reap strace."""
    st = subprocess.Popen(["strace", "-f", "-ttt", "-T", "-o", out, pyrunc, "--root", root, "create", "--bundle",
                           bundle, cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        main_pid = None
        while time.monotonic() < deadline:
            if os.path.exists(out):
                with open(out) as f:
                    text = f.read()
                if main_pid is None and text:
                    main_pid = text.split(None, 1)[0]
                if main_pid and re.search(rf"^{main_pid}\s+\S+\s+\+\+\+ (exited|killed)", text, re.M):
                    break
            if st.poll() is not None:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("bench: traced create did not finish within 60 s")
    finally:
        subprocess.run([pyrunc, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
        try:
            st.wait(timeout=20)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
    with open(out) as f:
        return f.readlines()


def importtime_create(pyrunc, bundle, root, cid, tmp):
    """One create run as `python -X importtime [script's flags] pyrunc ...`; its stderr."""
    with open(pyrunc, "rb") as f:
        first = f.readline()[2:].decode().split()
    err = os.path.join(tmp, "importtime.txt")
    with open(err, "w") as e:
        r = subprocess.run([first[0], "-X", "importtime", *first[1:], pyrunc, "--root", root, "create", "--bundle",
                            bundle, cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e, timeout=60)
    subprocess.run([pyrunc, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60)
    with open(err) as f:
        text = f.read()
    if r.returncode:
        raise SystemExit(f"bench: create under -X importtime failed: {text[-1000:]}")
    return text


def waterfall_text(ph, scale):
    """A text waterfall: one row per phase, a bar offset by its start (scaled ms)."""
    width = 48
    total = sum(p["ms"] for p in ph) * scale
    lines = [f"{'phase of pyrunc create':52} {'start':>6} {'ms':>6}  (scaled to the untraced median)"]
    for p in ph:
        s, d = p["start_ms"] * scale, p["ms"] * scale
        a = round(s / total * width)
        b = max(1, round(d / total * width))
        lines.append(f"{p['label'][:52]:52} {s:6.1f} {d:6.1f}  {' ' * a}{'█' * b}")
    return "\n".join(lines)


def markdown(r):
    ph, scale = r["phases"], r["scale"]
    u = r["untraced_ms"]
    lines = [f"`pyrunc create` of busybox `sleep` (untraced median of {r['n']}: pyrunc {u['pyrunc']:.1f} "
             f"ms, runc {u['runc']:.1f} ms); one `strace -f -ttt -T` run took {r['traced_ms']:.1f} ms, "
             f"so traced figures are scaled by {scale:.2f}:", "",
             "| phase (from the outside: first syscall of each) | starts at | traced ms | scaled ms | share | "
             "blocked in syscalls >= 0.5 ms (traced) |", "|---|---|---|---|---|---|"]
    for p in ph:
        b = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p["blocked"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {p['label']} | `{p['key']}` | {p['ms']:.1f} | {p['ms'] * scale:.1f} | "
                     f"{p['ms'] / r['traced_ms'] * 100:.0f}% | {b} |")
    it = r["importtime"]
    lines += ["", f"`-X importtime` of one create: {it['before_ms']:.1f} ms of imports before the first pyrunc module "
              f"(site, encodings), {it['after_ms']:.1f} ms from it on; heaviest top-level: "
              + ", ".join(f"`{n}` {ms:.1f}" for ms, n in it["top"][:6]) + ".",
              "", "```", waterfall_text(ph, scale), "```"]
    return "\n".join(lines)


def main():
    from pyrunc.demo import make_bundle

    ap = argparse.ArgumentParser()
    runtime_options(ap, 7)
    a = ap.parse_args()
    if not a.pyrunc or not a.runc or not shutil.which("strace"):
        raise SystemExit("bench: need --pyrunc, --runc and strace")
    pyrunc, runc = os.path.abspath(a.pyrunc), os.path.abspath(a.runc)
    tmp = tempfile.mkdtemp(prefix="pyrunc-waterfall-")
    root = os.path.join(tmp, "root")
    try:
        bundle = os.path.join(tmp, "bundle")
        os.mkdir(bundle)
        make_bundle(bundle, ["sleep", "1000"])
        untraced = {"pyrunc": [], "runc": []}
        for i in range(a.n + 1):  # round 0 warms up
            for rt, binary in (("pyrunc", pyrunc), ("runc", runc)):
                r = os.path.join(tmp, "root-" + rt)
                ms = timed([binary, "--root", r, "create", "--bundle", bundle, f"u{i}"])
                timed([binary, "--root", r, "delete", "--force", f"u{i}"])
                if i:
                    untraced[rt].append(ms)
        med = {rt: statistics.median(v) for rt, v in untraced.items()}
        lines = trace_create(pyrunc, bundle, root, "traced", os.path.join(tmp, "strace.txt"))
        events = parse_strace(lines)
        ph, traced = phases(events, markers(bundle, root, "traced"))
        before, after, top = parse_importtime(importtime_create(pyrunc, bundle, root, "imports", tmp))
    finally:
        for rt, binary in (("pyrunc", pyrunc), ("runc", runc), ("", pyrunc)):
            r = os.path.join(tmp, "root-" + rt) if rt else root
            if os.path.isdir(r):
                for cid in os.listdir(r):
                    subprocess.run([binary, "--root", r, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"n": a.n, "untraced_ms": med, "traced_ms": traced, "scale": med["pyrunc"] / traced, "phases": ph,
           "importtime": {"before_ms": before, "after_ms": after, "top": top[:15]},
           "python": interpreter_of(pyrunc)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    if a.markdown:
        print(markdown(res))
    else:
        print(waterfall_text(ph, res["scale"]))
        print(f"untraced create median of {a.n}: pyrunc {med['pyrunc']:.1f} ms, runc {med['runc']:.1f} ms; traced "
              f"{traced:.1f} ms (scale {res['scale']:.2f}); -X importtime: {before:.1f} ms before pyrunc, "
              f"{after:.1f} ms from it on")


if __name__ == "__main__":
    main()
