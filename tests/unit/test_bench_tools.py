"""The pure parsing helpers of bench/ (waterfall's strace and -X importtime parsers, bench.py's reading of
shim_bench's table, parallel.py's leftover checks, readme.py's block replacement).  No root, no runtime."""

import importlib.util
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def load(name):
    """bench/NAME.py as a module; the sys.path entries the bench scripts add for themselves are undone."""
    saved = list(sys.path)
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path[:] = saved


# A shortened `strace -f -ttt -T` of `pyrunc --root /r create --bundle /b c1` (real lines, fewer of them).
TRACE = """\
100  1000.000000 execve("/v/bin/pyrunc", ["/v/bin/pyrunc", "--root", "/r", "create"], 0x7ff /* 3 vars */) = 0 <0.000300>
100  1000.010000 newfstatat(AT_FDCWD, "/v/bin/pyrunc/__init__.abi3.so", 0x7ff, 0) = -1 ENOTDIR (Not a directory) <0.000010>
100  1000.030000 openat(AT_FDCWD, "/b/config.json", O_RDONLY|O_CLOEXEC) = 3 <0.000020>
100  1000.040000 mkdir("/r/c1", 0711) = 0 <0.000030>
100  1000.042000 mkdir("/sys/fs/cgroup/cpu/c1", 0755) = 0 <0.000040>
100  1000.045000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 101 <0.000500>
100  1000.046000 openat(AT_FDCWD, "/sys/fs/cgroup/cpu/c1/cgroup.procs", O_WRONLY|O_TRUNC|O_CLOEXEC) = 7 <0.000010>
100  1000.046100 write(7, "101", 3) = 3 <0.008000>
100  1000.055000 recvfrom(6,  <unfinished ...>
101  1000.055500 unshare(CLONE_NEWNS|CLONE_NEWPID) = 0 <0.000100>
101  1000.056000 mount(NULL, "/", NULL, MS_REC|MS_SLAVE, NULL) = 0 <0.000050>
101  1000.060000 execveat(5, "", ["pyrunc", "init"], 0x7f /* 4 vars */, AT_EMPTY_PATH) = 0 <0.000400>
100  1000.061000 <... recvfrom resumed>"\\1", 1, 0, NULL, NULL) = 1 <0.006000>
1000.061100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---
100  1000.062000 openat(AT_FDCWD, "/r/c1/.state.json.100", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 4 <0.000020>
100  1000.064000 exit_group(0)           = ?
100  1000.065000 +++ exited with 0 +++
101  1003.000000 +++ killed by SIGKILL +++
"""


def test_parse_strace_events_and_resumed_calls_start_when_they_began():
    wf = load("waterfall")
    ev = wf.parse_strace(TRACE.splitlines())
    assert [e["call"] for e in ev[:3]] == ["execve", "newfstatat", "openat"]
    assert not any(e["call"] is None and not e["exited"] for e in ev)  # the signal line is skipped
    resumed = next(e for e in ev if e.get("resumed"))
    assert resumed["call"] == "recvfrom"
    assert resumed["ts"] == pytest.approx(1000.055) and resumed["dur"] == pytest.approx(0.006)
    assert [e["pid"] for e in ev if e["exited"]] == [100, 101]


def test_phases_follow_the_markers_in_time_and_end_at_the_main_exit():
    wf = load("waterfall")
    ph, total = wf.phases(wf.parse_strace(TRACE.splitlines()), wf.markers("/b", "/r", "c1"))
    assert [p["key"] for p in ph] == ["execve", "import", "config", "statedir", "cgroups", "fork", "procs",
                                      "unshare", "mount", "execveat", "state", "exit"]
    assert total == pytest.approx(65.0)
    assert sum(p["ms"] for p in ph) == pytest.approx(total)
    by = {p["key"]: p for p in ph}
    assert by["execve"]["ms"] == pytest.approx(10.0)
    assert by["config"]["start_ms"] == pytest.approx(30.0)
    # the slow cgroup.procs write and the wait on the child, each in the phase where it started
    assert by["procs"]["blocked"] == {"write": pytest.approx(8.0), "recvfrom": pytest.approx(6.0)}
    assert by["fork"]["blocked"] == {"clone": pytest.approx(0.5)}


def test_phases_without_a_marker_skip_it():
    wf = load("waterfall")
    lines = [ln for ln in TRACE.splitlines() if "cgroup" not in ln]
    ph, _ = wf.phases(wf.parse_strace(lines), wf.markers("/b", "/r", "c1"))
    assert "cgroups" not in {p["key"] for p in ph} and "procs" not in {p["key"] for p in ph}


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       500 |        500 |   _io
import time:      1000 |       1500 | encodings
import time:       700 |        700 | site
import time:       300 |        300 |     pyrunc.errors
import time:       200 |        500 |   pyrunc.cli
import time:       100 |        600 | pyrunc
import time:      4000 |       4000 | json
"""


def test_parse_importtime_splits_at_the_first_pyrunc_module():
    wf = load("waterfall")
    before, after, top = wf.parse_importtime(IMPORTTIME)
    assert before == pytest.approx(2.2)  # encodings + site (top level only)
    assert after == pytest.approx(4.6)  # pyrunc + json
    assert top == [(4.0, "json"), (0.6, "pyrunc")]


SHIM_OUT = """\
`ctr run --rm IMG id true`, median of 2 interleaved rounds (min in brackets):

| path | median ms | min ms | / (a) |
|---|---|---|---|
| (a) runc-v2 + runc | 89 | 87 | 1.00x |
| (b) runc-v2 + pyrunc | 198 | 190 | 2.24x |
| (c) pyrunc shim | 139 | 133 | 1.57x |

idle shim daemon with one container, VmRSS: Go containerd-shim-runc-v2 12.8 MB, containerd-shim-pyrunc-v1 12.7 MB
"""


def test_parse_shim_output_reads_every_row():
    b = load("bench")
    rows = b.parse_shim_output(SHIM_OUT)
    assert rows == {"a": {"path": "runc-v2 + runc", "median_ms": 89.0, "min_ms": 87.0, "vs_a": 1.0},
                    "b": {"path": "runc-v2 + pyrunc", "median_ms": 198.0, "min_ms": 190.0, "vs_a": 2.24},
                    "c": {"path": "pyrunc shim", "median_ms": 139.0, "min_ms": 133.0, "vs_a": 1.57}}
    assert b.parse_shim_output("no table here") == {}


def test_leftover_checks_find_cgroups_and_mounts(tmp_path):
    par = load("parallel")
    (tmp_path / "cpu" / "par1-pyrunc-3" / "sub").mkdir(parents=True)
    (tmp_path / "memory" / "x" / "par1-pyrunc-4").mkdir(parents=True)
    (tmp_path / "pids" / "par2-pyrunc-3").mkdir(parents=True)
    found = par.leftover_cgroups("par1-pyrunc-", root=str(tmp_path))
    assert sorted(found) == [str(tmp_path / "cpu" / "par1-pyrunc-3"), str(tmp_path / "memory" / "x" / "par1-pyrunc-4")]
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 0:21 / /proc rw - proc proc rw\n"
                  "90 1 8:1 /tmp/pyrunc-par-x/b/rootfs /tmp/pyrunc-par-x/b/rootfs rw - ext4 /dev/sda1 rw\n")
    assert par.leftover_mounts("/tmp/pyrunc-par-x", mountinfo=str(mi)) == ["/tmp/pyrunc-par-x/b/rootfs"]
    assert par.leftover_mounts("/tmp/other", mountinfo=str(mi)) == []
    r = {"failures": [], "leftovers": {"state_dirs": [], "cgroups": [], "mounts": [], "processes": []}}
    assert par.clean(r)
    r["leftovers"]["processes"] = [42]
    assert not par.clean(r)


def test_readme_block_replacement_keeps_the_rest_and_refuses_a_missing_marker():
    rd = load("readme")
    text = "intro\n<!-- bench:table -->\nold\n<!-- /bench:table -->\nrest\n"
    assert rd.replace_block(text, "table", "new\n") == "intro\n<!-- bench:table -->\nnew\n<!-- /bench:table -->\nrest\n"
    with pytest.raises(ValueError):
        rd.replace_block(text, "waterfall", "x")


def test_leftover_processes_finds_a_live_process_by_its_command_line_and_skips_it_once_it_is_gone(tmp_path):
    import subprocess

    par = load("parallel")
    needle = f"bench-needle-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", needle], stdin=subprocess.PIPE)
    try:
        assert par.leftover_processes([needle]) == [child.pid]
    finally:
        child.communicate(timeout=10)
    assert par.leftover_processes([needle]) == []


def test_summarize_takes_the_median_of_the_rounds_own_ratios():
    """Samples in two groups (the VM's slow stretches): a ratio of the two medians would compare a fast floor with a
    slow verb, 1.5x; each round's verb against the floor timed right before it is 1.02x."""
    b = load("bench")
    fast, slow = 10.0, 15.0
    floors = [fast, fast, fast, slow, slow]
    verbs = {v: [f * 1.02 for f in (fast, fast, slow, slow, slow)] for v in b.VERBS}
    before = {v: [fast, fast, slow, slow, slow] for v in b.FLOOR_VERBS}
    res = {"pyrunc": verbs, "runc": {v: [x / 2 for x in xs] for v, xs in verbs.items()}}
    out, fl = b.summarize(res, {"python -I -S -c pass": floors, "python -c pass": floors}, before)
    assert fl["python -I -S -c pass"] == fast
    assert round(out["state"]["medians_vs_floor"], 2) == 1.53 and round(out["state"]["ratio"], 2) == 1.02
    assert out["state"]["met"] and round(out["create"]["ratio"], 2) == 2.0 and not out["create"]["met"]


# A shortened `callgrind_annotate --inclusive=yes` of a pyrunc run (real lines, fewer of them): recursive entries
# ("f'2"), a function listed under two files (marshal_loads: its clinic wrapper and itself), one without a [lib].
ANNOTATE = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
25,791,943 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
22,241,313 (86.23%)  /src/Python-3.11.7/Python/clinic/bltinmodule.c.h:builtin___import__ [/lib/libpython3.11.so.1.0]
 7,790,443 (30.20%)  /src/Python-3.11.7/Python/clinic/marshal.c.h:marshal_loads [/lib/libpython3.11.so.1.0]
 7,703,557 (29.87%)  /src/Python-3.11.7/Python/marshal.c:marshal_loads
 2,333,945 ( 9.05%)  /src/Python-3.11.7/Objects/typeobject.c:type_new [/lib/libpython3.11.so.1.0]
   981,941 ( 3.81%)  /src/Python-3.11.7/Python/import.c:_imp_create_dynamic
   633,810 ( 2.46%)  /src/Python-3.11.7/Python/import.c:_imp_create_dynamic'2
 1,372,479 ( 5.32%)  /src/Python-3.11.7/Modules/_json.c:scanner_call [/lib/_json.cpython-311-x86_64-linux-gnu.so]
"""


def test_instructions_split_a_count_by_where_it_went():
    ins = load("instructions")
    total, counts = ins.parse_annotate(ANNOTATE)
    assert total == 25_791_943
    assert counts["marshal_loads"] == 7_790_443, "the largest of a function's entries"
    assert counts["_imp_create_dynamic"] == 981_941, "the outer call's, not the recursive one's"
    full = (47_380_000, counts)
    row = ins.split(full, (total, counts))
    assert row["startup"] == 47_380_000 - total and row["script"] == total
    assert (row["unmarshal"], row["classes"], row["extensions"], row["json"]) == (7_790_443, 2_333_945, 981_941,
                                                                                 1_372_479)
    assert row["rest"] == total - 7_790_443 - 2_333_945 - 981_941 - 1_372_479
    with pytest.raises(ValueError):
        ins.parse_annotate("no totals here\n")
    assert "| all (run: until the fork) | 47.38 M |" in ins.markdown({"python": "/v/bin/python3", "rows": {"run": row}})
