"""tests/conftest.py's prerequisite rule, in a child pytest: locally a missing prerequisite skips with its reason;
with CI=true (or PYRUNC_REQUIRE_ALL=1) it fails, and so does any other skip whose reason is not on ALLOWED_SKIPS."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

SAMPLE = textwrap.dedent('''
    import pytest

    from tests.conftest import require


    def test_missing():
        require(False, "no frobnicator installed")


    def test_present():
        require("/usr/bin/frob", "no frobnicator installed")


    def test_unlisted_skip():
        pytest.skip("some reason nobody wrote down")


    def test_allowed_skip():
        pytest.skip("needs two cpus to tell affinities apart")


    @pytest.mark.skipif(True, reason="a marker hiding a missing tool")
    def test_marker_skip():
        pass


    @pytest.fixture
    def needs_daemon():
        require(False, "the daemon cannot start here")


    def test_fixture(needs_daemon):
        pass
''')

CONFTEST = "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"


def run_child(tmp_path, **env_overrides):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYRUNC_REQUIRE_ALL")}
    env["PYTHONPATH"] = REPO
    env["COLUMNS"] = "400"  # the short summary lines are not truncated
    env.update(env_overrides)
    p = subprocess.run([sys.executable, "-m", "pytest", "-rsfE", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", p.stdout.splitlines()[-1])}
    return p, counts


def test_locally_missing_prerequisites_skip_with_their_reason(tmp_path):
    p, counts = run_child(tmp_path)
    assert p.returncode == 0, p.stdout
    assert counts == {"passed": 1, "skipped": 5}, p.stdout
    for reason in ("no frobnicator installed", "the daemon cannot start here", "some reason nobody wrote down"):
        assert reason in p.stdout, p.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {"PYRUNC_REQUIRE_ALL": "1"}])
def test_in_ci_missing_prerequisites_and_unlisted_skips_fail(tmp_path, env):
    p, counts = run_child(tmp_path, **env)
    assert p.returncode == 1, p.stdout
    # a prerequisite missing in a fixture or a skipif marker fails at setup: pytest reports those as errors
    assert counts == {"passed": 1, "failed": 2, "errors": 2, "skipped": 1}, p.stdout
    failed = dict(re.findall(r"^(?:FAILED|ERROR) \S+::(\w+) - (.*)$", p.stdout, re.M))
    assert set(failed) == {"test_missing", "test_unlisted_skip", "test_marker_skip", "test_fixture"}, p.stdout
    assert "missing prerequisite" in failed["test_missing"] and "no frobnicator" in failed["test_missing"]
    assert "the daemon cannot start here" in p.stdout
    assert "unexpected skip in CI" in failed["test_unlisted_skip"]
    assert "needs two cpus" in p.stdout  # the allowed skip still skips, and says why


def test_ci_false_is_local(tmp_path):
    p, counts = run_child(tmp_path, CI="false")
    assert p.returncode == 0 and counts == {"passed": 1, "skipped": 5}, p.stdout
