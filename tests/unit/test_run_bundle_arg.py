"""`pyrunc run DIR/` without root: how the only argument becomes the bundle and the id (the integration tier,
tests/integration/test_run_bundle.py, runs it), and that `run --help` says so."""

import re
import subprocess
from types import SimpleNamespace

import pytest

from pyrunc.cli.run import bundle_and_id
from pyrunc.container.state import valid_id
from pyrunc.errors import UsageError
from tests.conftest import pyrunc_argv


class Log:
    def __init__(self):
        self.lines = []

    def debug(self, msg):
        self.lines.append(msg)


def opts(*args, bundle=""):
    return SimpleNamespace(args=list(args), bundle=bundle)


def test_plain_id_keeps_runcs_meaning():
    assert bundle_and_id(opts("web"), Log()) == (".", "web")
    assert bundle_and_id(opts("web", bundle="/b"), Log()) == ("/b", "web")


@pytest.mark.parametrize("arg,stem", [("./mybundle/", "mybundle"), ("/srv/b u n/dle/", "dle"),
                                      ("/srv/my bundle", "my_bundle"), ("/srv/.hidden/", "hidden"),
                                      ("/", "bundle")])
def test_argument_with_a_slash_is_the_bundle(arg, stem):
    log = Log()
    bundle, cid = bundle_and_id(opts(arg), log)
    assert bundle == arg
    assert re.fullmatch(rf"{re.escape(stem)}-[0-9a-f]{{6}}", cid) and valid_id(cid), cid
    assert any(cid in line for line in log.lines)
    assert bundle_and_id(opts(arg), Log())[1] != cid  # a fresh suffix each time


def test_bundle_twice_is_a_usage_error():
    with pytest.raises(UsageError, match="--bundle"):
        bundle_and_id(opts("./b/", bundle="/b"), Log())


def test_run_help_documents_it():
    p = subprocess.run(pyrunc_argv() + ["run", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert "pyrunc run ./mybundle/" in p.stdout and "--debug" in p.stdout, p.stdout
