"""The container's session keyring (L11): a fresh one per container, named after the id, with runc's permission
mask (its current permissions plus KEY_USR_SEARCH, keys.ModKeyringPerm(ring, 0xffffffff, 0x080000)).  Compared
with runc on the same bundle.  /proc/keys is unmasked for the check (it is in the default maskedPaths)."""

import shutil
import subprocess

import pytest

RUNC = shutil.which("runc")
SHOW = "grep ' keyring ' /proc/keys"


def _unmask(c):
    c["linux"]["maskedPaths"] = [p for p in c["linux"]["maskedPaths"] if p != "/proc/keys"]


def _perm(out, cid):
    lines = [line for line in out.splitlines() if line.rstrip().endswith(f"{cid}: empty") or f" {cid}:" in line]
    assert len(lines) == 1, out
    return lines[0].split()[4]  # serial flags usage expiry PERM uid gid type description


def test_session_keyring_permissions_match_runc(pyrunc, bundle, tmp_path):
    b = bundle(["sh", "-c", SHOW], edit=_unmask)
    cid = pyrunc.new_id("keys")
    p = pyrunc("run", "--bundle", b, cid, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    perm = int(_perm(p.out, cid), 16)
    assert perm & 0x080000, f"{perm:08x}: no KEY_USR_SEARCH"
    if not RUNC:
        pytest.skip("runc is not installed: checked the mask only")
    root = str(tmp_path / "runc-state")
    rid = "pyrunc-it-keys-runc"
    r = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), rid], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    subprocess.run([RUNC, "--root", root, "delete", "--force", rid], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert perm == int(_perm(r.stdout.decode(), rid), 16)


def test_no_new_keyring_keeps_the_callers(pyrunc, bundle):
    b = bundle(["sh", "-c", SHOW + " || true"], edit=_unmask)
    cid = pyrunc.new_id("nokeys")
    p = pyrunc("run", "--no-new-keyring", "--bundle", b, cid, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    assert cid not in p.out
