"""The code cache (pyrunc.CodeCache, pyrunc.launch.build_code_cache): one file that an installed pyrunc loads its
modules from.  It must answer exactly as the .pyc files would: a module whose source changed comes from the source.
A throwaway package stands in for pyrunc; each check runs in a fresh interpreter (the finder is process-wide)."""

import ast
import os
import py_compile
import subprocess
import sys

import pytest

from pyrunc import CODE_CACHE, launch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def pkg(tmp_path):
    """tmp/site/fakepkg: a package, a subpackage, a module with a pip-style .pyc and one without, and the empty
    cache file a wheel installs."""
    root = tmp_path / "site" / "fakepkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("WHO = 'pkg'\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "mod.py").write_text("VALUE = 'from source'\n")
    (root / "plain.py").write_text("VALUE = 'plain'\n")
    py_compile.compile(str(root / "sub" / "mod.py"), doraise=True)  # pip compiles at install; plain.py has none
    (root / CODE_CACHE).write_bytes(b"")
    return root


def _in_fresh_python(pkgdir, code):
    """Run code after use_code_cache(pkgdir) in a new interpreter; its stdout, stripped."""
    prog = ("import sys; sys.path[:0] = [%r, %r]; import pyrunc; used = pyrunc.use_code_cache(%r)\n%s"
            % (REPO, os.path.dirname(pkgdir), str(pkgdir), code))
    p = subprocess.run([sys.executable, "-S", "-B", "-c", prog], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _loaders(pkgdir, *names):
    code = ("import importlib\nfor n in %r:\n    m = importlib.import_module(n)\n"
            "    print(n, getattr(m.__spec__.loader, '__name__', type(m.__spec__.loader).__name__), m.__file__)"
            % (names,))
    return dict((line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in _in_fresh_python(pkgdir, code).splitlines())


def test_modules_come_from_the_cache_with_their_own_file(pkg):
    assert launch.build_code_cache(str(pkg))
    got = _loaders(pkg, "fakepkg", "fakepkg.sub.mod", "fakepkg.plain")
    assert got == {"fakepkg": f"CodeCache {pkg}/__init__.py", "fakepkg.sub.mod": f"CodeCache {pkg}/sub/mod.py",
                   "fakepkg.plain": f"CodeCache {pkg}/plain.py"}
    assert _in_fresh_python(pkg, "import fakepkg.sub.mod as m, fakepkg.plain as p; print(m.VALUE, p.VALUE)") == \
        "from source plain"
    assert sorted(os.listdir(pkg)) == sorted([CODE_CACHE, "__init__.py", "plain.py", "sub"]), "no temp file"


_DESCRIBE = ("import importlib, sys, pyrunc\n"
             "slow = pyrunc.CodeCache.importlib_find_and_load\n"
             "def noted(name, import_):\n    print('importlib:', name)\n    return slow(name, import_)\n"
             "pyrunc.CodeCache.importlib_find_and_load = staticmethod(noted)\n"
             "%s\n"
             "for n in ('fakepkg.sub.mod', 'fakepkg.plain'):\n    m = importlib.import_module(n)\n"
             "    p = sys.modules[n.rpartition('.')[0]]\n"
             "    print(n, m.__name__, m.__file__, m.__package__, m.__cached__, m.__spec__.origin,"
             " m.__loader__.__name__, getattr(p, n.rpartition('.')[2]) is m, getattr(p, '__path__', None), m.VALUE)\n")


@pytest.mark.parametrize("before, fast", [
    ("", True),
    ("import threading; threading.Thread(target=threading.Event().wait, daemon=True).start()", False),
    ("sys.meta_path.insert(0, type('F', (), {'find_spec': staticmethod(lambda *a: None)}))", False)])
def test_modules_of_the_cache_skip_importlibs_steps_with_its_result(pkg, before, fast):
    """CodeCache.find_and_load stands in for importlib's _find_and_load: the same module, with the same attributes
    and set on its parent, as importlib makes from the cache's spec; only without other threads and with the cache
    first on sys.meta_path (else importlib's, as before)."""
    assert launch.build_code_cache(str(pkg))
    out = _in_fresh_python(pkg, _DESCRIBE % before).splitlines()
    slow = [line for line in out if line.startswith("importlib:")]
    assert (not slow) if fast else {"importlib: fakepkg.sub.mod", "importlib: fakepkg.plain"} <= set(slow), out
    rows = [line for line in out if not line.startswith("importlib:")]
    cached = lambda rel: f"{pkg}/{rel.rpartition('/')[0]}/__pycache__/{rel.rpartition('/')[2][:-3]}." \
        f"{sys.implementation.cache_tag}.pyc".replace("//", "/")
    assert rows == [f"fakepkg.sub.mod fakepkg.sub.mod {pkg}/sub/mod.py fakepkg.sub {cached('sub/mod.py')} "
                    f"{pkg}/sub/mod.py CodeCache True ['{pkg}/sub'] from source",
                    f"fakepkg.plain fakepkg.plain {pkg}/plain.py fakepkg {cached('/plain.py')} {pkg}/plain.py "
                    f"CodeCache True ['{pkg}'] plain"], rows


def test_a_module_that_fails_is_not_left_in_sys_modules(pkg):
    (pkg / "broken.py").write_text("import fakepkg.plain\nraise RuntimeError('broken at import')\n")
    assert launch.build_code_cache(str(pkg))
    code = ("import sys\ntry:\n    import fakepkg.broken\nexcept RuntimeError as e:\n    print(e)\n"
            "print('fakepkg.broken' in sys.modules, hasattr(sys.modules['fakepkg'], 'broken'),"
            " 'fakepkg.plain' in sys.modules)")
    assert _in_fresh_python(pkg, code).splitlines() == ["broken at import", "False False True"]


def test_cached_is_what_importlib_says(pkg):
    """__cached__ (spec.cached): CodeCache fills it in itself, with importlib's own rule; the same as
    importlib.util.cache_from_source gives, for packages and modules."""
    assert launch.build_code_cache(str(pkg))
    code = ("import importlib, importlib.util\nfor n in ('fakepkg', 'fakepkg.sub', 'fakepkg.sub.mod', 'fakepkg.plain'):"
            "\n    m = importlib.import_module(n)\n"
            "    print(type(m.__spec__.loader).__name__ == 'type', m.__cached__ == importlib.util.cache_from_source("
            "m.__file__))")
    assert _in_fresh_python(pkg, code).splitlines() == ["True True"] * 4


def test_a_changed_source_is_read_from_the_source(pkg):
    """The .pyc rule: the source's mtime and size are checked at every import."""
    assert launch.build_code_cache(str(pkg))
    (pkg / "sub" / "mod.py").write_text("VALUE = 'edited after the cache was made'\n")
    assert _in_fresh_python(pkg, "import fakepkg.sub.mod as m; print(m.VALUE)") == "edited after the cache was made"
    (pkg / "new.py").write_text("VALUE = 'new'\n")  # not in the cache: the package's path still finds it
    assert _in_fresh_python(pkg, "import fakepkg.new as m; print(m.VALUE)") == "new"
    os.utime(pkg / "plain.py", (1, 1))  # same size, other mtime
    assert _loaders(pkg, "fakepkg.plain")["fakepkg.plain"].startswith("SourceFileLoader ")


_PRELOAD = ("import os, pyrunc\nfrom pyrunc import CodeCache\n"
            "before = sorted(os.listdir('/proc/self/fd'))\nCodeCache.preload()\n"
            "print(sorted(CodeCache.preloaded), sorted(os.listdir('/proc/self/fd')) == before)\n"
            "import fakepkg.sub.mod as m, fakepkg.plain as p\n"
            "print(m.VALUE, '|', p.VALUE, '|', sorted(CodeCache.preloaded), m.__spec__.loader.__name__, "
            "getattr(p.__spec__.loader, '__name__', type(p.__spec__.loader).__name__))")


def test_a_group_is_read_at_once_and_each_module_taken_from_it(pkg):
    """CodeCache.preload (create and run, launch.CREATE_GROUP): the group's code in one read, without a descriptor
    left open; each import takes its module's code from it, as from the module's own blob."""
    assert launch.build_code_cache(str(pkg), group=("fakepkg.plain", "fakepkg.sub.mod", "fakepkg.absent"))
    first, second = _in_fresh_python(pkg, _PRELOAD).splitlines()
    assert first == "['fakepkg.plain', 'fakepkg.sub.mod'] True", "only modules the package has; no fd kept"
    assert second == "from source | plain | [] CodeCache CodeCache"
    assert _in_fresh_python(pkg, "pyrunc.CodeCache.preload(); print(pyrunc.CodeCache.preloaded)") != "{}"


def test_a_changed_source_wins_over_the_group(pkg):
    """The group is code as of the cache's making: a module whose source changed since is read from its source."""
    assert launch.build_code_cache(str(pkg), group=("fakepkg.plain", "fakepkg.sub.mod"))
    (pkg / "plain.py").write_text("VALUE = 'edited after the cache was made'\n")
    second = _in_fresh_python(pkg, _PRELOAD).splitlines()[1]
    assert second == "from source | edited after the cache was made | ['fakepkg.plain'] CodeCache SourceFileLoader"


def test_a_group_entry_that_holds_something_else_is_ignored(pkg):
    """An index whose group entry points at something that is not (names, code objects) (here: a module's own
    code): preload() keeps nothing, and every module still comes from its own blob."""
    import marshal

    from pyrunc import CODE_CACHE_MAGIC, GROUP

    assert launch.build_code_cache(str(pkg), group=("fakepkg.plain",))
    data = (pkg / CODE_CACHE).read_bytes()
    size = int.from_bytes(data[len(CODE_CACHE_MAGIC):len(CODE_CACHE_MAGIC) + 4], "little")
    head_end = len(CODE_CACHE_MAGIC) + 4 + size
    index = marshal.loads(data[len(CODE_CACHE_MAGIC) + 4:head_end])
    index[GROUP] = index["fakepkg.plain"][4:]  # (offset, length) of a code object
    head = marshal.dumps(index)
    (pkg / CODE_CACHE).write_bytes(CODE_CACHE_MAGIC + len(head).to_bytes(4, "little") + head + data[head_end:])
    out = _in_fresh_python(pkg, "pyrunc.CodeCache.preload(); print(used, pyrunc.CodeCache.preloaded)\n"
                                "import fakepkg.plain as p; print(p.VALUE, p.__spec__.loader.__name__)")
    assert out.splitlines() == ["True {}", "plain CodeCache"]


def test_no_group_without_a_cache_or_with_an_older_one(pkg):
    """preload() is a no-op where no cache is used (an editable install), and with a cache made without a group."""
    assert _in_fresh_python(pkg, "pyrunc.CodeCache.preload(); print(used, pyrunc.CodeCache.preloaded)") == \
        "False {}"
    assert launch.build_code_cache(str(pkg), group=())
    assert _in_fresh_python(pkg, "pyrunc.CodeCache.preload(); print(used, pyrunc.CodeCache.preloaded)") == \
        "True {}"


def test_pip_pyc_is_used_only_where_it_matches_its_source(pkg):
    """A .pyc whose header records the source's mtime and size is taken as is (pip's, from the install); one
    that does not is ignored and the source compiled."""
    mod = pkg / "sub" / "mod.py"
    pyc = pkg / "sub" / "__pycache__" / f"mod.{sys.implementation.cache_tag}.pyc"
    st = os.stat(mod)
    other = pkg.parent / "other.py"  # outside the package
    other.write_text("VALUE = 'from the pyc!'\n")
    py_compile.compile(str(other), cfile=str(pyc), dfile=str(mod), doraise=True)
    data = pyc.read_bytes()  # its header made to record mod.py's mtime and size, as pip's would
    pyc.write_bytes(data[:8] + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") +
                    (st.st_size & 0xFFFFFFFF).to_bytes(4, "little") + data[16:])
    assert launch.build_code_cache(str(pkg))
    assert _in_fresh_python(pkg, "import fakepkg.sub.mod as m; print(m.VALUE)") == "from the pyc!"
    pyc.write_bytes(data[:8] + b"\0\0\0\0" + data[12:])  # a header that does not match: compiled from the source
    assert launch.build_code_cache(str(pkg))
    assert _in_fresh_python(pkg, "import fakepkg.sub.mod as m; print(m.VALUE)") == "from source"


def test_no_cache_file_none_built_and_none_used(pkg):
    (pkg / CODE_CACHE).unlink()
    assert not launch.build_code_cache(str(pkg)), "only the file the wheel installed is filled"
    assert CODE_CACHE not in os.listdir(pkg)
    assert _in_fresh_python(pkg, "print(used)") == "False"


def test_empty_or_foreign_file_is_not_used(pkg):
    assert _in_fresh_python(pkg, "print(used, pyrunc.CodeCache in sys.meta_path)") == "False False"
    (pkg / CODE_CACHE).write_bytes(b"pyrunc\0\1" + b"\0\0\0\0" + b"\4\0\0\0garbage")  # another Python's magic
    assert _in_fresh_python(pkg, "print(used, pyrunc.CodeCache in sys.meta_path)") == "False False"


def test_someone_elses_file_is_left_alone(pkg):
    os.chown(pkg / CODE_CACHE, 65534, 65534)
    assert not launch.build_code_cache(str(pkg))
    assert (pkg / CODE_CACHE).read_bytes() == b""


def test_no_descriptor_stays_open(pkg):
    """Nothing of the cache's may reach a container: the caller picks the fds 3.. that it keeps (--preserve-fds,
    LISTEN_FDS), so pyrunc holds none open between imports."""
    assert launch.build_code_cache(str(pkg))
    code = ("import os, fakepkg.sub.mod, fakepkg.plain\n"
            "print(type(fakepkg.plain.__spec__.loader).__name__ if not isinstance(fakepkg.plain.__spec__.loader, type)"
            " else fakepkg.plain.__spec__.loader.__name__)\n"
            "fds = []\nfor f in os.listdir('/proc/self/fd'):\n    try:\n        fds.append(os.readlink('/proc/self/fd/' + f))\n"
            "    except OSError:  # listdir's own\n        pass\nprint(sorted(fds))")
    loader, fds = _in_fresh_python(pkg, code).splitlines()
    assert loader == "CodeCache" and not [f for f in ast.literal_eval(fds) if f.endswith(CODE_CACHE)], fds


def test_c_extensions_are_loaded_from_where_the_path_finder_found_them(pkg, tmp_path, monkeypatch):
    """The C extensions the verbs load (launch.EXTENSIONS) are in the index by path: no search of sys.path, the
    same mtime and size check.  A copy of the standard library's _json stands in, first on sys.path."""
    import _json
    import shutil

    ext = tmp_path / "site" / os.path.basename(_json.__file__)
    shutil.copy(_json.__file__, ext)
    monkeypatch.setattr(launch, "EXTENSIONS", ("_json",))
    monkeypatch.syspath_prepend(str(ext.parent))
    import importlib

    importlib.invalidate_caches()
    assert launch.build_code_cache(str(pkg))
    code = ("from importlib.machinery import PathFinder\nfind = PathFinder.find_spec\n"
            "def noted(name, path=None, target=None):\n    print('path finder:', name)\n    return find(name, path, target)\n"
            "PathFinder.find_spec = noted\nimport _json\nprint(_json.__file__, _json.__spec__.loader.__class__.__name__)")
    assert _in_fresh_python(pkg, code) == f"{ext} ExtensionFileLoader"
    os.utime(ext, (1, 1))  # changed since: the path finder's, as without the cache
    assert _in_fresh_python(pkg, code).splitlines() == ["path finder: _json", f"{ext} ExtensionFileLoader"]


@pytest.mark.parametrize("venv_site", [True, False])
def test_a_third_partys_extension_only_from_a_venvs_one_site_dir(pkg, tmp_path, monkeypatch, venv_site):
    """cffi's backend (pyrunc.THIRD_PARTY) goes in by path only where nothing but the standard library comes before
    it on sys.path: beside the package, in the one site dir of a venv without the system's packages.  Elsewhere,
    and under PYTHONPATH (which comes first), the path finder looks for it, as without the cache.  A copy of the
    standard library's _json, named as a third party's, stands in."""
    import _json
    import importlib
    import shutil

    import pyrunc

    ext = pkg.parent / os.path.basename(_json.__file__)
    shutil.copy(_json.__file__, ext)
    monkeypatch.setattr(pyrunc, "THIRD_PARTY", ("_json",))
    monkeypatch.setattr(launch, "EXTENSIONS", ())
    monkeypatch.setattr(launch, "_venv_site", lambda: str(pkg.parent) if venv_site else None)
    monkeypatch.syspath_prepend(str(pkg.parent))
    importlib.invalidate_caches()
    assert launch.build_code_cache(str(pkg))
    code = ("import pyrunc\npyrunc.THIRD_PARTY = ('_json',)\nused = pyrunc.use_code_cache(%r)\n"
            "print(pyrunc.CodeCache.index.get('_json', (None,))[0])" % str(pkg))
    recorded = str(ext) if venv_site else "None"
    assert _in_fresh_python(pkg, code) == recorded
    prog = "import sys; sys.path[:0] = [%r]\n%s" % (REPO, code)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    p = subprocess.run([sys.executable, "-S", "-B", "-c", prog], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "None", (p.stdout, p.stderr)
