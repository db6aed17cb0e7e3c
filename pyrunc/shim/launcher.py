"""The installed containerd-shim-pyrunc-v1 as a /bin/sh + Python script, so that the `delete` containerd runs
after every clean teardown costs a shell's start-up (~1 ms), not Python's (~13-16 ms, measured on the critical
path of every `ctr run --rm`).

containerd 1.6 runs `<shim> ... -bundle B delete` after every task, also when the daemon already deleted the
container and exited (SHIM.md §1.6).  Then there is nothing to do: the daemon's Delete removed the bundle's
pyrunc-shim.json (main.OPTIONS_FILE) after the unmount, and the file's absence is the whole decision
(cleanup.delete makes the same one).  The shell part answers that case by itself; every other invocation (start,
the daemon, `-v`, a delete after a crash, anything it does not recognise) execs Python on the same file, with the
flags of pyrunc.launch, so the Python part runs as before.

pip writes the script with `#!<python>`; the shim turns it into this form on its first `start` run by the file's
owner, with the same rules as pyrunc.launch.add_flag (an atomic rename keeping mode and owner; a read-only install,
another owner or an unexpected first line is left as it is: still correct, only slower).  The file stays valid
Python: the shell part sits in a string literal, and it uses no backslash escape but a doubled one, so Python
compiles it without a warning (any stray byte on `start`'s stderr would corrupt the address containerd reads).
"""

import os
import sys

MARK = "''''true"  # sh: the command `true`; Python: the start of a string literal ending at SH_END
SH_END = "'''"

# The shell part.  The flags are parsed as main.parse does (Go rules): string flags take the next argument or a
# value after `=`; bool flags are skipped, except -v (Python prints the version); anything unknown, `--`, or an
# action other than `delete` goes to Python.  The answer is main's for a clean teardown: DeleteResponse{pid 0,
# exit_status 137, exited_at now} (now = btime + uptime, read by the shell's own `read`: no process is forked).
_SH = r"""
# containerd-shim-pyrunc-v1's shell part: pyrunc/shim/launcher.py says why, and what it answers by itself
act= b= want=
for x do
  if [ -n "$want" ]; then
    [ "$want" = bundle ] && b=$x
    want=
    continue
  fi
  case $x in
    -bundle|--bundle) want=bundle ;;
    -namespace|--namespace|-address|--address|-publish-binary|--publish-binary|-id|--id|-socket|--socket)
      want=value ;;
    -bundle=*|--bundle=*) b=${x#*=} ;;
    -namespace=*|--namespace=*|-address=*|--address=*|-publish-binary=*|--publish-binary=*) ;;
    -id=*|--id=*|-socket=*|--socket=*|-debug|--debug|-debug=*|--debug=*|-info|--info|-info=*|--info=*) ;;
    -*) break ;;
    *) act=$x; break ;;
  esac
done
case ${0##*/} in containerd-shim-*) ;; *) act= ;; esac  # never the pyrunc command's `delete`
if [ "$act" = delete ] && [ ! -e "${b:-.}/@OPTIONS_FILE@" ] && read -r up _ 2>/dev/null </proc/uptime; then
  f= n=0
  byte() {
    o=$(( ($1 >> 6) * 100 + (($1 >> 3) & 7) * 10 + ($1 & 7) ))
    case $o in ?) o=00$o ;; ??) o=0$o ;; esac
    f="$f\\$o" n=$((n + 1))
  }
  varint() {
    v=$1
    while [ "$v" -gt 127 ]; do byte $(( (v & 127) | 128 )); v=$((v >> 7)); done
    byte "$v"
  }
  bt=0
  while read -r k v; do [ "$k" = btime ] && bt=$v && break; done </proc/stat
  c=${up#*.}
  byte 8; varint $((bt + ${up%.*})); byte 16; varint $(( ${c#0} * 10000000 ))
  ts=$f tn=$n f=
  byte 16; byte 137; byte 1; byte 26; byte "$tn"
  printf "$f$ts"
  exit 0
fi
"""


def script(python, flags, body):
    """The launcher's text: the shell part, then `exec <python> <flags> <this file> <args>`, then body (the
    Python script pip installed, without its #! line)."""
    from .main import OPTIONS_FILE

    exe = "exec '%s' %s \"$0\" \"$@\"\n" % (python, flags)
    return "#!/bin/sh\n" + MARK + _SH.replace("@OPTIONS_FILE@", OPTIONS_FILE) + exe + SH_END + "\n" + body


def install(path):
    """Rewrite the pip-installed script at path into the launcher, once; False when it is left as it is."""
    from ..launch import FLAGS
    from .. import replace_file

    try:
        real = os.path.realpath(path)
        if not os.path.basename(real).startswith("containerd-shim-"):
            return False  # a link to the pyrunc command itself: pyrunc's `delete` is not this one
        if not os.access("/bin/sh", os.X_OK):
            return False
        st = os.stat(real)
        if st.st_uid != os.geteuid():
            return False
        exe = os.fsencode(sys.executable)
        with open(real, "rb") as f:
            first = f.readline()
            if first.rstrip(b"\n") not in (b"#!" + exe, b"#!" + exe + b" " + FLAGS) or b"'" in exe:
                return False  # already the launcher, a distribution's own line, or a path the shell cannot quote
            rest = f.read()
        replace_file(real, script(sys.executable, FLAGS.decode(), rest.decode()), st.st_mode & 0o7777)
        return True
    except (OSError, UnicodeError):
        return False
