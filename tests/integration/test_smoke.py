"""The smallest real lifecycle, so a broken core fails fast and loudly."""


def test_run_true_and_output(pyrunc, bundle):
    b = bundle(["sh", "-c", "echo hi; exit 3"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id())
    assert p.returncode == 3, p.err
    assert p.out == "hi\n"
