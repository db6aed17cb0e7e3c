"""The one thing the installed bin/pyrunc script cannot get from pip: `-SP` on its #! line.

pip writes `#!<python>` for a script's `#!python` line and drops any flag on it (fix_script in
pip/_internal/operations/install/wheel.py), so a wheel cannot carry the flag.  Run without it, the script calls
add_flag, which adds it once, for the next runs: see bin/pyrunc for what it saves and how the script stays correct.
"""

import os
import sys

FLAGS = b"-SP"  # no site (see bin/pyrunc); -P: the script's directory (bin/) is not on sys.path, so nothing there
# can shadow a module (the kernel passes one argument after the interpreter: both flags in one word)
BINPRM_BUF = 255  # the kernel reads this much of a #! line (BINPRM_BUF_SIZE, 256 with the NUL): no longer


def add_flag(script):
    """Turn the `#!<python>` line pip wrote into `#!<python> -SP`, by an atomic rename that keeps the file's mode
    and owner.  Only a file that its owner runs and whose first line is exactly what pip wrote for this Python;
    anything else (a read-only install, another owner, a distribution's own #! line, a line the flag would make
    too long for the kernel, a rename racing us) is left as it is: the script still works, with site."""
    tmp = None
    try:
        path = os.path.realpath(script)  # a symlink to the script stays a symlink
        st = os.stat(path)
        if st.st_uid != os.geteuid():
            return False
        with open(path, "rb") as f:
            first, rest = f.readline(), f.read()
        line = first.rstrip(b"\n") + b" " + FLAGS + b"\n"
        if first.rstrip(b"\n") != b"#!" + os.fsencode(sys.executable) or len(line) > BINPRM_BUF:
            return False
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line + rest)
            os.fchmod(fd, st.st_mode & 0o7777)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        tmp = None
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
def need_site():
    """placeholder: helper hot implements it"""
