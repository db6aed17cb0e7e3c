"""How the installed `pyrunc` script (bin/pyrunc, also our shim as containerd-shim-pyrunc-v1) starts (issue 12).

Every verb pays the interpreter's start-up, and containerd execs `pyrunc state|start|kill|delete` for every
container, so the script starts as close to `python -I -S` as it can:

- `-SP` on its #! line (add_flag below, once): no `site` (site.main() imports `os`, ~1.5 ms, and runs the import
  lines of .pth files and sitecustomize); -P: the script's own directory (bin/) is not on sys.path.
- Without site, the script loads pyrunc from where pip installed it together with the script,
  `<bin>/../lib/pythonX.Y/site-packages` (a venv, `pip install --user` (~/.local), `--prefix`, a Python of its
  own), by its path (its __init__.py's spec), and puts that directory after what is on sys.path already (also on
  the first run, with site: a `--prefix` install works without PYTHONPATH).  A search of sys.path would list
  lib-dynload and site-packages and stat four names, ~0.4 ms of every verb.  PYTHONPATH and the other PYTHON*
  variables keep their meaning (not -I), and PYTHONPATH still comes first: with it, or without pyrunc there, the
  script's FALLBACK searches, with `dist-packages` (a Debian Python's pip, /usr/local) and the site-packages next
  to its interpreter (a symlink elsewhere to a venv's script: without site, sys.prefix is not the venv's) after
  that directory on sys.path.  If pyrunc is not there either (an editable install, whose finder a .pth import
  line installs; anything unusual), site.main() runs in full: always correct, only slower.  The script stays
  short (Python compiles it on every run, ~1-2 us a token; FALLBACK is one string until it runs) and does not
  import this module on the short path (~0.2 ms: every module counts).
- The verbs that need nothing but the standard library and pyrunc (state, start, kill, delete, list: see
  pyrunc.cli.main.STDLIB_ONLY) run on that short sys.path.  Everything else calls need_site() first (the CLI's
  dispatch before the verb and before click; the shim where it needs it), which builds the sys.path site.main()
  would: the venv, the user site, site-packages, and the path lines of .pth files.  What site would also run is
  skipped: the import lines of .pth files (setuptools' _distutils_hack...) and sitecustomize/usercustomize, 2-3 ms
  in a plain venv and tens of ms where a .pth imports packages, that pyrunc never needs.  In a venv that leaves
  the system's packages out, the short sys.path already holds the one directory site would add: nothing to build.
- The script only finds pyrunc; pyrunc.main() does the rest (a module's code comes from its .pyc, the script's
  is compiled on every run).  On the short path it puts the code cache first on sys.meta_path (pyrunc.CodeCache:
  pyrunc's modules out of one file, filled by the first run, build_code_cache below).
- A safety net: pyrunc.main() puts a finder last on sys.meta_path (pyrunc._Missing, which keeps the interpreter's
  own sys.path for need_site()).  A top-level module that nothing on the short sys.path has (cffi's `_cffi_backend`
  from a startContainer hook, say) calls need_site() through find_missing() and is looked for again, so a path
  that forgot need_site() is slower, never broken.

`os` is imported only inside add_flag and build_code_cache (the first run, with site).
"""

import sys

FLAGS = b"-SP"  # no site (see above); -P: the script's directory (bin/) is not on sys.path, so nothing there
# can shadow a module (the kernel passes one argument after the interpreter: both flags in one word)
BINPRM_BUF = 255  # the kernel reads this much of a #! line (BINPRM_BUF_SIZE, 256 with the NUL): no longer


def need_site():
    """Build the sys.path that site.main() would (without running .pth import lines or sitecustomize), if the
    script started on the short path and nobody did so yet.  Idempotent and cheap once done; True if it did it.
    Call it before importing anything from outside the standard library and pyrunc (cffi, click, jsonschema...).
    In a venv that leaves the system's packages out (the usual install), the short path already is site's but for
    the path lines of .pth files, which the Missing finder still covers: nothing to build then (~1 ms)."""
    finder = _missing()
    if finder is None or _venv_site() in sys.path:
        return False
    return _build(finder)


def _missing():
    """The short path's _Missing finder (it holds the interpreter's own sys.path), or None: site ran (the slow path),
    or pyrunc was not started by bin/pyrunc, and the caller set sys.path up."""
    for finder in sys.meta_path:
        if getattr(finder, "pyrunc_sys_path", None) is not None:
            return finder
    return None


def _build(finder):
    sys.meta_path.remove(finder)
    here = __file__.rpartition("/")[0].rpartition("/")[0]  # the sys.path entry the script found pyrunc in
    sys.path[:] = finder.pyrunc_sys_path
    site_main()
    if here not in sys.path:  # `--prefix P` without PYTHONPATH: site never looks there, pyrunc's deps may be there
        sys.path.append(here)
    return True


def _venv_site():
    """The one directory site.main() adds (site.venv, then getsitepackages) when this interpreter runs in a venv
    whose pyvenv.cfg says include-system-site-packages = false (no user site either), else None."""
    bindir = sys.executable.rpartition("/")[0]
    prefix = bindir.rpartition("/")[0]
    if sys.platlibdir != "lib":  # site adds lib64 and lib there: not the simple case
        return None
    for d in bindir, prefix:
        try:
            with open(d + "/pyvenv.cfg", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            key, eq, value = line.partition("=")
            if eq and key.strip().lower() == "include-system-site-packages":
                if value.strip().lower() == "false":
                    return "%s/lib/python%d.%d/site-packages" % (prefix, *sys.version_info[:2])
        return None  # site's default: the system's packages too
    return None


def find_missing(name, path=None, target=None):
    """pyrunc._Missing's work, last on sys.meta_path: a top-level module nothing found makes it build site's
    sys.path, and is looked for once more."""
    finder = None if path is not None else _missing()
    if finder is None:
        return None
    _build(finder)
    from importlib.machinery import PathFinder

    return PathFinder.find_spec(name, None, target)


def site_main():
    """site.main() with the import lines of .pth files and sitecustomize/usercustomize shadowed: the sys.path
    site builds, nothing of the code it would run."""
    import site

    hooks = site.execsitecustomize, site.execusercustomize
    site.exec = site.execsitecustomize = site.execusercustomize = lambda *a: None  # site.addpackage: exec(line)
    try:
        site.main()
    finally:
        del site.exec
        site.execsitecustomize, site.execusercustomize = hooks


def add_flag(script):
    """Turn the `#!<python>` line pip wrote into `#!<python> -SP`, by an atomic rename that keeps the file's mode
    and owner.  pip writes `#!<python>` for a script's `#!python` line and drops any flag on it (fix_script in
    pip/_internal/operations/install/wheel.py), so a wheel cannot carry the flag: the script, run without it,
    calls this for its next runs.  Only a file that its owner runs and whose first line is exactly what pip wrote
    for this Python; anything else (a read-only install, another owner, a distribution's own #! line, a line the
    flag would make too long for the kernel, a rename racing us) is left as it is: the script still works, with
    site.  Once the flag is there, this first run also fills the code cache that the next runs load pyrunc's
    modules from (build_code_cache)."""
    import os

    from . import replace_file

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
        replace_file(path, line + rest, st.st_mode & 0o7777)
    except OSError:
        return False
    build_code_cache(os.path.dirname(os.path.abspath(__file__)))  # what the next runs load (pyrunc.CodeCache)
    return True


# The C extensions the verbs import, which the code cache points at directly (pyrunc.CodeCache): pyrunc's own
# (the syscall helper, seccomp's) and the standard library's that the hot verbs, create and run use.  A third
# party's (pyrunc.THIRD_PARTY: cffi's backend, which create, run and exec load for the helper) only from the one
# site dir of a venv that leaves the system's packages out, and beside pyrunc: there nothing but the standard
# library comes before it on sys.path, short or site's, and the cache drops it under PYTHONPATH (use_code_cache).
# Elsewhere where it is depends on site's sys.path (need_site): the search finds it, as without the cache (~0.3
# ms: lib-dynload and site-packages listed).
EXTENSIONS = ("pyrunc._helper", "pyrunc._seccomp", "_json", "fcntl", "select", "_socket", "_struct", "termios")


# The modules that every create and run loads once the command line is read, whatever the host's cgroups (v1 or v2:
# theirs load one by one): the code cache holds their code a second time, in one marshal blob, which create and
# run read at once (pyrunc.CodeCache.preload).  tests/unit/test_imports.py checks the list against a real create
# and run.
CREATE_GROUP = (
    "pyrunc.cli.common", "pyrunc.container", "pyrunc.container.lifecycle", "pyrunc.osx", "pyrunc.container.state",
    "pyrunc.procfs", "pyrunc.process", "pyrunc.process.init", "pyrunc.cgroups", "pyrunc.cgroups.manager",
    "pyrunc.linux", "pyrunc.process.waiter", "pyrunc.process.idmap", "pyrunc.process.rootfs", "pyrunc.record",
    "pyrunc.process.copyup", "pyrunc.container.procsetup", "pyrunc.fastjson", "pyrunc.spec", "pyrunc.spec.validate",
    "pyrunc.spec.fastcheck", "pyrunc.process.plan", "pyrunc.process.sched", "pyrunc.security",
    "pyrunc.security.rlimits", "pyrunc.security.caps", "pyrunc.process.child", "pyrunc.security.keyring",
    "pyrunc.process.init_rootfs", "pyrunc.mountinfo", "pyrunc.process.cgroupfs", "pyrunc.process.stub",
    "pyrunc.cgroups.detect", "pyrunc.cgroups.fs")


def build_code_cache(pkgdir, group=None):
    """Fill `pkgdir`/_code.cache (pyrunc.CodeCache) with the code of every module of the package: from the .pyc
    file pip wrote where it matches its source (as importlib checks it: the bytecode magic, the source's mtime and
    size), else compiled from the source.  Only a file the wheel installed (setup.py ships it empty: pip's RECORD
    lists it, so an uninstall removes it) and that belongs to us, replaced by an atomic rename; an editable
    install has none.  The C extensions that the verbs load (EXTENSIONS) go in by the path the path finder gives
    them now.  Then the modules of `group` (CREATE_GROUP if None) once more, in one blob (CodeCache.preload).
    True if it wrote the cache."""
    import marshal
    import os
    from importlib.machinery import ExtensionFileLoader, PathFinder
    from importlib.util import MAGIC_NUMBER, cache_from_source

    from . import CODE_CACHE, CODE_CACHE_MAGIC, GROUP, THIRD_PARTY, replace_file

    dest = os.path.join(pkgdir, CODE_CACHE)
    try:
        st = os.stat(dest)
        if st.st_uid != os.geteuid():
            return False
        root = os.path.dirname(pkgdir) + "/"
        index, chunks, offset, codes = {}, [], 0, {}
        for dirpath, dirnames, filenames in os.walk(pkgdir):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(f for f in filenames if f.endswith(".py")):
                src = os.path.join(dirpath, fn)
                name = src[len(root):-3].replace("/", ".")
                if fn == "__init__.py":
                    name = name.rpartition(".")[0]
                src_st = os.stat(src)
                mtime, size = int(src_st.st_mtime) & 0xFFFFFFFF, src_st.st_size & 0xFFFFFFFF
                code = None
                try:
                    with open(cache_from_source(src), "rb") as f:
                        data = f.read()
                    if data[:16] == MAGIC_NUMBER + bytes(4) + mtime.to_bytes(4, "little") + size.to_bytes(4, "little"):
                        code = data[16:]
                        if marshal.loads(code).co_filename != src:  # compiled elsewhere (a staged install)
                            code = None
                except (OSError, ValueError, EOFError):
                    pass
                if code is None:
                    with open(src, "rb") as f:
                        code = marshal.dumps(compile(f.read(), src, "exec", dont_inherit=True))
                index[name] = (src[len(root):], fn == "__init__.py", mtime, size, offset, len(code))
                chunks.append(code)
                codes[name] = code
                offset += len(code)
        site = _venv_site()
        third = THIRD_PARTY if site is not None and site == os.path.dirname(pkgdir) else ()
        for name in EXTENSIONS + third:  # where an import would find it now (not what sys.modules holds)
            parent, _, _ = name.rpartition(".")
            spec = PathFinder.find_spec(name, [pkgdir] if parent == "pyrunc" else None) if parent in ("", "pyrunc") \
                else None
            if spec is not None and isinstance(spec.loader, ExtensionFileLoader) and spec.origin and (
                    name not in third or os.path.dirname(spec.origin) == site):
                ext_st = os.stat(spec.origin)
                index[name] = (spec.origin, False, int(ext_st.st_mtime) & 0xFFFFFFFF, ext_st.st_size & 0xFFFFFFFF, -1, 0)
        # Strings the group's modules share are written once, later uses as references (marshal's refs).
        group = [n for n in (CREATE_GROUP if group is None else group) if n in codes]
        if group:
            blob = marshal.dumps((tuple(group), tuple(marshal.loads(codes[n]) for n in group)))
            index[GROUP] = (offset, len(blob))
            chunks.append(blob)
        head = marshal.dumps(index)
        replace_file(dest, b"".join([CODE_CACHE_MAGIC, len(head).to_bytes(4, "little"), head, *chunks]),
                     st.st_mode & 0o7777)
        return True
    except (OSError, SyntaxError, ValueError):
        return False
