"""`pyrunc run ./bundle/`: an only argument with a `/` is the bundle (container ids cannot hold one), and the id
is the bundle directory's name with a short random suffix, said on stderr under --debug."""

import os
import re
import subprocess


def test_run_with_the_bundle_as_argument(pyrunc, bundle):
    b = bundle(["echo", "ran"])
    p = pyrunc("--debug", "run", str(b) + "/", stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    assert p.out == "ran\n"
    m = re.search(r"container id (bundle1-[0-9a-f]{6})\b", p.err)
    assert m, p.err
    assert not os.listdir(pyrunc.root), "run deletes the container it made"


def test_relative_bundle_and_detach(pyrunc, bundle):
    b = bundle(["sleep", "30"])
    # detached: the container's stdio must not be our pipes (it would hold them open for 30 s)
    p = subprocess.run(pyrunc.cmd("run", "-d", "./" + b.name), cwd=b.parent, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    (cid,) = os.listdir(pyrunc.root)
    assert re.fullmatch(r"bundle1-[0-9a-f]{6}", cid), cid
    pyrunc.ids.add(cid)
    st = pyrunc.state(cid)
    assert st["status"] == "running" and st["bundle"] == str(b)
    assert pyrunc("delete", "--force", cid).returncode == 0


def test_plain_id_and_bundle_flag_still_work(pyrunc, bundle):
    b = bundle(["echo", "ran"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("plain"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.out == "ran\n", p.err


def test_bundle_argument_and_flag_together_is_a_usage_error(pyrunc, bundle):
    b = bundle(["echo", "ran"])
    p = pyrunc("run", "--bundle", b, str(b) + "/", stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "ran" not in p.out
    assert "--bundle" in p.err, p.err
    assert not os.path.isdir(pyrunc.root) or not os.listdir(pyrunc.root)


def test_missing_bundle_directory_is_named(pyrunc, tmp_path):
    p = pyrunc("run", str(tmp_path / "nope") + "/", stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "nope" in p.err, p.err
