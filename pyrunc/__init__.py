"""pyrunc: a runc-compatible OCI container runtime.

Nothing happens at import time: the CLI, the library and the syscall boundary are imported by whoever needs them.
The other things here are what the installed script (bin/pyrunc) runs once it found pyrunc, main(), with the code
cache's finder: every start loads this module anyway, and the script is compiled on every run (pyrunc/launch.py).
"""

import _frozen_importlib as _bootstrap
import _thread
import marshal as _marshal
import posix as _posix
import sys as _sys
from _frozen_importlib import ModuleSpec as _ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER as _MAGIC_NUMBER
from _frozen_importlib_external import ExtensionFileLoader as _ExtensionFileLoader

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"

# types.SimpleNamespace, the interpreter's own type, without the `types` module (~0.5 ms to import): records of
# attributes (parsed flags, the flag registry, fastjson's scanner context) that make no class of ours (~0.02 ms
# each, more than a small module's worth on a hot verb: tests/unit/test_imports.py)
Namespace = type(_sys.implementation)

CODE_CACHE = "_code.cache"  # in this package's directory; the wheel ships it empty (setup.py)
THIRD_PARTY = ("_cffi_backend",)  # C extensions of others that the code cache may point at (launch.EXTENSIONS)
CODE_CACHE_MAGIC = b"pyrunc\0\1" + _MAGIC_NUMBER  # this format, and the bytecode of this interpreter
GROUP = " create"  # the key in the code cache's index of launch.CREATE_GROUP's blob (no module name has a space)


class CodeCache:
    """A finder and loader for pyrunc's own modules out of one file, `pyrunc/_code.cache`, instead of one search of
    sys.path and one .pyc file per module: importlib's path finder costs ~0.05-0.1 ms a module here, and `create`
    imports ~60 of them.  bin/pyrunc installs it, on its short path only (an installed pyrunc, not an editable
    one).  The first run of the script by its owner (launch.add_flag) fills the file from the .pyc files pip wrote.

    It answers exactly as the .pyc files would: each module's source is stat'ed, and a module whose source changed
    since (its mtime or size, what a .pyc records) is left to the path finder, which reads the source.  So an
    edit of an installed file takes effect as it would without the cache.

    The C extensions that the verbs load (pyrunc's own, the standard library's `_json`, `fcntl`...) are in the
    index too, by absolute path and offset -1: loaded from the file the path finder found when the cache was made
    (~0.09 ms of path search each), with the same mtime and size check.

    The file: CODE_CACHE_MAGIC (12 bytes), the index's length (4 bytes, little-endian), the index (marshal: module
    name -> (path relative to the package's parent, is a package, source mtime, source size, offset, length)),
    then each module's marshalled code object, at its offset from the end of the index (launch.build_code_cache).
    Last, launch.CREATE_GROUP's modules once more, (names, code objects) in one marshal blob: the index's GROUP entry
    holds its (offset, length).
    No descriptor stays open: each module's code is read by an open, a pread and a close (~0.01 ms), so none can
    reach a container (whose preserved fds 3.. the caller chooses) or be closed and reused under us."""

    index = {}
    root = ""  # the package's parent directory, with a slash
    path = ""  # the cache file
    base = 0  # where the code objects start
    pycache = None  # ".<cache tag>.pyc" where importlib puts a .pyc next to its source (no prefix, no -O)
    preloaded = {}  # module name -> code object, from the group (preload), each taken once by find_spec

    @classmethod
    def preload(cls):
        """Read launch.CREATE_GROUP's code at once, for create and run (cli/main.py), which load all of it: one
        open, pread and close instead of one per module, and one marshal.loads, which makes and interns a name
        that several modules use once, not once per module (`run` until its fork: ~1.6 M instructions of ~47 M
        less, bench/instructions.py).  find_spec still checks each module's source first, so a changed one is read
        from its source as before.  Nothing happens without a cache in use, or with one made before the group."""
        entry = cls.index.get(GROUP)
        if entry is None or cls.preloaded:
            return
        try:
            names, codes = cls._load(*entry)
            cls.preloaded = dict(zip(names, codes))
        except (OSError, ValueError, EOFError, TypeError):
            pass  # each module from its own blob, as before (find_spec checks each code's file either way)

    @classmethod
    def _load(cls, offset, length):
        """What the cache holds at offset (from the end of the index), unmarshalled: an open, a pread and a close.
        Raises OSError, or ValueError, EOFError or TypeError for bytes that are not marshal's."""
        fd = _posix.open(cls.path, _posix.O_RDONLY | _posix.O_CLOEXEC)
        try:
            return _marshal.loads(_posix.pread(fd, length, cls.base + offset))
        finally:
            _posix.close(fd)

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        entry = cls.index.get(name)
        if entry is None:
            return None
        rel, is_pkg, mtime, size, offset, length = entry
        origin = cls.root + rel if offset >= 0 else rel
        try:
            st = _posix.stat(origin)
            if int(st.st_mtime) & 0xFFFFFFFF != mtime or st.st_size & 0xFFFFFFFF != size:
                return None
            if offset < 0:  # a C extension: where the path finder found it when the cache was made
                spec = _ModuleSpec(name, _ExtensionFileLoader(name, origin), origin=origin)
                spec.has_location = True
                return spec
            code = cls.preloaded.pop(name, None)
            if code is None:
                code = cls._load(offset, length)
        except (OSError, ValueError, EOFError, TypeError):
            return None
        if getattr(code, "co_filename", None) != origin:  # a cache replaced under us: its index says otherwise
            return None
        spec = _ModuleSpec(name, cls, origin=origin, loader_state=code, is_package=is_pkg)
        spec.has_location = True  # __file__ is the source's, as with the path finder
        if cls.pycache is not None:  # __cached__, as importlib would compute it (~5 us a module, ~50 on create)
            head, _, tail = origin.rpartition("/")
            spec.cached = f"{head}/__pycache__/{tail[:-3]}{cls.pycache}"
        if is_pkg:  # where the path finder looks for its modules that are not here (C extensions, changed files)
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        exec(module.__spec__.loader_state, module.__dict__)

    @classmethod
    def find_and_load(cls, name, import_):
        """importlib's _find_and_load (which the interpreter calls for a module not in sys.modules yet), the same
        steps in short for a module of the cache: importlib spends ~15-25 us more a module on its per-module lock,
        the walk of sys.meta_path and a spec's module set-up (40 small modules: 2.4-2.8 -> 1.7 ms; create:
        0.4-0.7 ms).  Only while nothing else could tell: this process has no other thread (none can import
        meanwhile, so no lock is needed), the cache is first on sys.meta_path, and -v is off (importlib says what
        it imports there).  Any other module, and a cached one whose source changed, goes to importlib's own."""
        modules, entry = _sys.modules, cls.index.get(name)
        if entry is None or entry[4] < 0 or _thread._count() or _sys.meta_path[:1] != [cls] or _sys.flags.verbose:
            return cls.importlib_find_and_load(name, import_)  # (a C extension of the index: importlib loads it)
        parent, _, child = name.rpartition(".")
        if parent and parent not in modules:
            import_(parent)
            if name in modules:  # the parent's import made it
                return modules[name]
        spec = cls.find_spec(name)
        if spec is None:  # changed since: importlib's own, which finds the source
            return cls.importlib_find_and_load(name, import_)
        module = type(_sys)(name)
        attrs = module.__dict__
        attrs["__spec__"], attrs["__loader__"], attrs["__file__"] = spec, cls, spec.origin
        attrs["__package__"] = name if spec.submodule_search_locations is not None else parent
        if spec.submodule_search_locations is not None:
            attrs["__path__"] = spec.submodule_search_locations
        if spec.cached is not None:
            attrs["__cached__"] = spec.cached
        modules[name] = module
        try:
            exec(spec.loader_state, attrs)
        except BaseException:
            modules.pop(name, None)
            raise
        module = modules[name]  # a module may put something else there, as importlib allows
        if parent:
            setattr(modules[parent], child, module)
        return module

    importlib_find_and_load = staticmethod(_bootstrap._find_and_load)


# os.path's exists, isdir and abspath without os (~1.5-2.3 ms), for the hot verbs' state store and for pyrunc.osx
# (create, run): here because every caller has this module loaded already.

def exists(path):
    try:
        _posix.stat(path)
    except (OSError, ValueError):  # as os.path.exists (ValueError: a NUL in the path)
        return False
    return True


def isdir(path):
    try:
        return _posix.stat(path).st_mode & 0o170000 == 0o040000
    except (OSError, ValueError):
        return False


def abspath(path):
    """The cwd in front of a relative path, then posixpath.normpath's rules (`.` and empty parts dropped, `..` taken
    back, exactly two leading slashes kept)."""
    if path[:1] != "/":
        path = _posix.getcwd() + "/" + path
    lead = "//" if path[:2] == "//" and path[:3] != "///" else "/"
    parts = []
    for p in path.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return lead + "/".join(parts)


def read_bytes(path):
    """A file's bytes, by fd: open, reads, close.  open() adds an fstat, an ioctl, an lseek and three objects (in a
    just-forked init also copy-on-write faults, and after its forbid_imports no codec or module lookup may happen).
    Raises OSError.  Here because state files (the hot verbs), cgroupfs files and /proc files all need it, and
    every caller has this module loaded already."""
    fd = _posix.open(path, _posix.O_RDONLY | _posix.O_CLOEXEC)
    try:
        chunks = []
        while True:
            data = _posix.read(fd, 65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        _posix.close(fd)


def replace_file(path, data, mode=None):
    """Replace the file at path by one holding data (bytes or str), written beside it and renamed over it: no
    reader ever sees half a file, and a failure leaves path as it was and no temporary file.  mode: the new file's
    (else 0o644 less the umask).  Raises OSError.  Here because the script's first run (launch) and the shim's
    `start` (its address file) both need it, and both have this module loaded already."""
    tmp = write_beside(path, data, mode)
    try:
        _posix.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_beside(path, data, mode=None):
    """replace_file()'s first half, for a caller that renames later (the state store: container/state.py): data
    in a new file beside path, `.NAME.PID`, whose path is returned; on failure no such file is left."""
    if isinstance(data, str):
        data = data.encode()
    head, _, name = path.rpartition("/")
    tmp = f"{head}/.{name}.{_posix.getpid()}" if head else f".{name}.{_posix.getpid()}"
    flags = _posix.O_WRONLY | _posix.O_CREAT | _posix.O_EXCL | _posix.O_NOFOLLOW | _posix.O_CLOEXEC
    try:
        fd = _posix.open(tmp, flags, 0o644 if mode is None else 0o600)
    except FileExistsError:  # left by a process of the same pid that died
        _posix.unlink(tmp)
        fd = _posix.open(tmp, flags, 0o644 if mode is None else 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[_posix.write(fd, view):]
            if mode is not None:
                _posix.fchmod(fd, mode)
        finally:
            _posix.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path):
    try:
        _posix.unlink(path)
    except OSError:
        pass


def main(sys_path):
    """bin/pyrunc's work once pyrunc is importable: the verb (or the shim, under a containerd-shim-* name), after
    the first run's -SP flag, or on the short path (-SP, pyrunc next to the script) the code cache and the
    _Missing finder.  sys_path: the interpreter's own sys.path, before the script added pyrunc's directory."""
    import sys

    if not sys.flags.no_site:
        from .launch import add_flag

        add_flag(sys.argv[0])
    elif "site" not in sys.modules:  # not the script's fallback to site.main()
        use_code_cache(__path__[0])
        sys.meta_path.append(_Missing(sys_path))
    if sys.argv[0].rpartition("/")[2].startswith("containerd-shim-"):  # containerd runs shims by that name
        from .shim.main import main
    else:
        import gc

        # A verb lives for milliseconds and makes few reference cycles, but its imports alone would run a dozen
        # collections (~2 ms of create), and one in a forked child touches every object it scans (copy-on-write
        # faults): off, until a verb settles into a long wait on a container (cli/run.py, exec.py, events.py)
        gc.disable()
        from .cli.main import program as main  # leaves with posix._exit, after flushing
    return main()


def gc_for_a_long_wait():
    """A verb that settles into a long wait on a container (run and exec in the foreground, events) turns the
    garbage collector back on, with everything allocated so far frozen (gc.freeze): the modules, the config, the
    plan live until exit, and a first collection over them all would cost ~1 ms of CPU and find nothing (gc was
    off since start-up, so its counters say that every object is new)."""
    import gc

    gc.freeze()
    gc.enable()


class _Missing:
    """Last on sys.meta_path on the short path: a top-level module that the short sys.path lacks gets site's
    (launch.find_missing, launch.need_site), so a path that forgot need_site() is slower, never broken."""

    def __init__(self, sys_path):
        self.pyrunc_sys_path = sys_path  # what launch.need_site() builds site's sys.path from

    @staticmethod
    def find_spec(name, path=None, target=None):
        from .launch import find_missing

        return find_missing(name, path, target)


def use_code_cache(pkgdir):
    """Put CodeCache first on sys.meta_path if `pkgdir`/_code.cache holds a cache for this interpreter (an empty
    or foreign file, or none, leaves the import system as it is).  True if it did."""
    import sys

    path = pkgdir + "/" + CODE_CACHE
    try:
        fd = _posix.open(path, _posix.O_RDONLY | _posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = _posix.pread(fd, len(CODE_CACHE_MAGIC) + 4, 0)
        if head[:-4] != CODE_CACHE_MAGIC or len(head) != len(CODE_CACHE_MAGIC) + 4:
            return False
        size = int.from_bytes(head[-4:], "little")
        index = _marshal.loads(_posix.pread(fd, size, len(head)))
    except (OSError, ValueError, EOFError, TypeError):
        return False
    finally:
        _posix.close(fd)
    if b"PYTHONPATH" in _posix.environ:  # which comes first on sys.path: another cffi may be there
        for name in THIRD_PARTY:
            index.pop(name, None)
    CodeCache.index, CodeCache.root, CodeCache.path = index, pkgdir.rpartition("/")[0] + "/", path
    CodeCache.base = len(head) + size
    if sys.pycache_prefix is None and not sys.flags.optimize and sys.implementation.cache_tag:
        CodeCache.pycache = f".{sys.implementation.cache_tag}.pyc"
    sys.meta_path.insert(0, CodeCache)
    code = CodeCache.importlib_find_and_load.__code__
    if code.co_argcount == 2 and code.co_varnames[:2] == ("name", "import_"):  # the interface it stands in for
        _bootstrap._find_and_load = CodeCache.find_and_load  # looked up there by the interpreter on every import
    return True
