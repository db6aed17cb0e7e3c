"""Shared fixtures: how tests find the pyrunc command, and the one rule for missing prerequisites.

`require(cond, reason)` is how a test says what it needs (root, containerd, ctr, dockerd, runc, busybox, a built
pyrunc, ...).  On a developer's machine an unmet prerequisite skips the test with its reason; in CI (CI=true, as
CI services set it, or PYRUNC_REQUIRE_ALL=1, as .ci/run sets it) it FAILS the test: a CI run that skipped half the
suite is not a green run.

In CI every other skip fails too, unless its reason is on ALLOWED_SKIPS below: a short, explicit list of host
features that this test machine may lack for runc and pyrunc alike.
"""

import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def in_ci():
    """True when missing prerequisites must fail: CI=true (GitHub, GitLab, ... set it) or PYRUNC_REQUIRE_ALL=1."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes") or os.environ.get("PYRUNC_REQUIRE_ALL") == "1"


def require(cond, reason):
    """Skip the calling test (locally) or fail it (in CI) unless cond is true."""
    if cond:
        return
    if in_ci():
        pytest.fail(f"missing prerequisite (CI does not skip): {reason}", pytrace=False)
    pytest.skip(reason)


# Skips CI accepts: the host lacks something for BOTH runtimes, so the scenario cannot be run at all.  Each entry is a
# prefix of the skip reason, with why it is acceptable.
ALLOWED_SKIPS = {
    "this host's capability bounding set lacks":
        "docker --privileged asks for every capability; on a host without CAP_SYS_RESOURCE it fails under runc too",
    "real-time scheduling is not allowed in this cgroup":
        "SCHED_FIFO needs RT runtime in the caller's cgroup; the host decides, runc gets the same EPERM",
    "needs two cpus to tell affinities apart":
        "CPU affinity tests need a second CPU to be meaningful; nothing to do with either runtime",
    "uses the x86_64 syscall table header":
        "syscall numbers are architecture-specific; the test is written for x86_64",
    "syscall numbers below are x86_64's":
        "syscall numbers are architecture-specific; the test is written for x86_64",
    "no cgroup2 hierarchy mounted":
        "a pure cgroup v1 host has no cgroup2 to load device programs into, for any runtime",
    "no swap accounting":
        "without memsw the OOM scenario swaps instead of being killed, under runc too",
    "cannot create a bridge network here":
        "the kernel or host refuses a bridge device: a networking limit of the host, not of a runtime",
    "the reference runc ignores":
        "runc 1.1 predates the feature (linux.personality): there is nothing to compare with; pyrunc's side is tested alone",
}


def allowed_skip(reason):
    return any(reason.startswith(prefix) for prefix in ALLOWED_SKIPS)


def _skip_reason(report):
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = lr[2]
    else:
        reason = str(lr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _fail_unexpected_skip(report):
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not allowed_skip(reason):
        report.outcome = "failed"
        report.longrepr = f"unexpected skip in CI (not in tests/conftest.py ALLOWED_SKIPS): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())


def pyrunc_argv():
    """The pyrunc command under test: $PYRUNC_BIN, else the `pyrunc` next to this Python, else the module."""
    if os.environ.get("PYRUNC_BIN"):
        return [os.environ["PYRUNC_BIN"]]
    here = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    if os.path.exists(here):
        return [here]
    return [sys.executable, "-m", "pyrunc.cli.main"]


def is_root():
    return os.geteuid() == 0


def pyrunc_built():
    """None when the pyrunc under test is installed with its compiled helpers, else what is missing."""
    import importlib.util

    for mod in ("pyrunc._helper", "pyrunc._seccomp"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not built (make install)"
    if not os.environ.get("PYRUNC_BIN") and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "pyrunc")):
        return "no pyrunc command next to this Python and no $PYRUNC_BIN (make install)"
    return None


def busybox_path():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    return shutil.which("busybox")


@pytest.fixture(scope="session")
def busybox():
    p = busybox_path()
    require(p, "no static busybox on this host (apt-get install busybox-static)")
    return p


@pytest.fixture
def needs_root():
    require(is_root(), "needs root: real namespaces, mounts and cgroups")
