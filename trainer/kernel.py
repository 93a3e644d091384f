"""The fused low-rank kernel as a torch operator, ``esfit::lowrank_``, and how it is built.

    esfit::lowrank_(Tensor(a!) out, Tensor x, Tensor a, Tensor b, int neg_from) -> ()

adds ``sign_j (x_j · b_s) a_s`` in place to the n rows j of each of the g factor sets s of ``out``
(g·n…, dout), x (g·n…, din), a (g, r, dout), b (g, r, din), sign_j = −1 from row ``neg_from`` of
each set on (see ``trainer/csrc/lowrank.cpp``). The schema, a fake (so that ``torch.compile`` with
``fullgraph`` traces through it) and the reference implementation on every device (the torch ops of
:func:`trainer.lowrank.lowrank_reference_`) are registered here, on import. The CPU implementation
is the C++ file: one pass per layer over x and the output, float32 and bfloat16, AVX-512 and
AVX-512 BF16 where the CPU has them, rows split over torch's threads. The profiler shows it as
``esfit::lowrank_``.

It is built with ``torch.utils.cpp_extension.load`` (ninja, ``$CXX`` else ``c++``, ``-O3
-march=native``) the first time a population is set, which takes tens of seconds, and is cached
under ``$ESFIT_CACHE/kernels`` (``~/.cache/esfit/kernels``) with a name that hashes the source, the
flags, torch's and Python's versions and this CPU's features. Processes that start together
(torchrun ranks) take a lock: one builds, the others wait and load its file. The cache is used only
while it is private: the ``kernels`` folder (made 0700) and everything the kernel loads from it must
belong to this user and be writable by no one else, and the folder above it writable by others only
with the sticky bit; otherwise (and where it cannot be written) the kernel is built in a new private
temporary folder, with a warning that says why. Where no compiler or ninja works, or
``ESFIT_FUSED_KERNEL=0`` is set, :func:`fused_op` returns None, a warning names the reason once, and
:class:`~trainer.PopulationPatch` uses the torch ops: the same numbers up to float rounding.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from trainer.lowrank import lowrank_reference_

MAX_RANK = 64  # the kernel keeps a row's r products on the stack
SCHEMA = "lowrank_(Tensor(a!) out, Tensor x, Tensor a, Tensor b, int neg_from) -> ()"
SOURCE = Path(__file__).parent / "csrc" / "lowrank.cpp"
DTYPES = (torch.float32, torch.bfloat16)
# -mprefer-vector-width is x86's; without OpenMP (Apple's clang) the rows stay on one thread
_X86 = ["-mprefer-vector-width=512"] if platform.machine().lower() in {"x86_64", "amd64"} else []
_COMMON = ["-O3", "-march=native", *_X86, f"-DESFIT_MAX_RANK={MAX_RANK}"]
_FLAG_SETS = [([*_COMMON, "-fopenmp"], ["-fopenmp"]), ([*_COMMON, "-Wno-unknown-pragmas"], [])]

log = logging.getLogger(__name__)
_libraries: dict[str, torch.library.Library] = {}  # kept alive: a collected Library unregisters its ops
_built: dict[str, Path] = {}  # namespace -> the loaded file
_failure: str | None = None  # why the kernel is unavailable, once known


def define(namespace: str = "esfit") -> None:
    """Register ``<namespace>::lowrank_``: its schema, its fake and its torch-ops reference."""
    if namespace in _libraries:
        return
    lib = torch.library.Library(namespace, "FRAGMENT")
    lib.define(SCHEMA)
    lib.impl("lowrank_", lowrank_reference_, "CompositeExplicitAutograd")
    torch.library.register_fake(f"{namespace}::lowrank_", _fake, lib=lib)
    _libraries[namespace] = lib


def _fake(out, x, a, b, neg_from) -> None:
    """Shapes only: the operator returns nothing and writes ``out`` in place."""
    torch._check(a.dim() == 3 and b.dim() == 3, lambda: f"a and b must be (g, r, d), got {a.shape}, {b.shape}")


define()
lowrank_op = torch.ops.esfit.lowrank_.default  # called per layer per step: looked up once


def enabled() -> bool:
    """False when ``ESFIT_FUSED_KERNEL`` is set to 0/false/no/off."""
    return os.environ.get("ESFIT_FUSED_KERNEL", "1").strip().lower() not in {"0", "false", "no", "off"}


def fused_op(dtype: torch.dtype):
    """``esfit::lowrank_`` where its C++ CPU implementation serves ``dtype``, else None (another
    dtype, ``ESFIT_FUSED_KERNEL=0``, or a build that failed: then a warning, once)."""
    global _failure
    if dtype not in DTYPES or not enabled():
        return None
    if "esfit" not in _built and _failure is None:
        try:
            build()
        except Exception as err:  # noqa: BLE001 - any failure means: use torch ops instead
            _failure = str(err)
            warnings.warn(f"the fused low-rank kernel is unavailable ({_failure}); PopulationPatch uses torch ops, "
                          "which give the same rollouts more slowly (set ESFIT_FUSED_KERNEL=0 to skip the attempt)",
                          RuntimeWarning, stacklevel=2)
    return lowrank_op if "esfit" in _built else None


def unavailable_reason() -> str | None:
    """Why the last attempt to build the kernel failed, or None."""
    return _failure


def build(namespace: str = "esfit", *, portable: bool = False) -> Path:
    """Find in the cache or compile, and load, the CPU implementation of ``<namespace>::lowrank_``;
    the loaded file. ``portable`` builds the plain loops that CPUs without AVX-512 BF16 run (tests
    build those under another namespace, beside the real one)."""
    if namespace in _built:
        return _built[namespace]
    compiler = _compiler()
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (install g++ or clang++, or set CXX)")
    define(namespace)
    errors = []
    for base, ldflags in _FLAG_SETS:
        cflags = _cflags(base, namespace, portable)
        try:
            _built[namespace] = _find_or_build(_name(compiler, cflags), cflags, ldflags, namespace)
            return _built[namespace]
        except (OSError, RuntimeError) as err:
            errors.append(str(err)[-1500:])
    raise RuntimeError("building it failed: " + " | ".join(errors))


def _compiler() -> str:
    return os.environ.get("CXX") or "c++"  # what torch.utils.cpp_extension runs


def _cflags(base: list[str], namespace: str, portable: bool) -> list[str]:
    return [*base, f"-DESFIT_OPS={namespace}", *(["-DESFIT_PORTABLE"] if portable else [])]


def _name(compiler: str, cflags: list[str]) -> str:
    """The build's name: a hash of everything that shapes the machine code."""
    parts = [SOURCE.read_text(), compiler, *cflags, torch.__version__, sys.version, _cpu_features()]
    return "esfit_lowrank_" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cpu_features() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (the machine name elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))


def _find_or_build(name: str, cflags: list[str], ldflags: list[str], namespace: str) -> Path:
    """The library from the cache, built there first if missing; from a new private temporary
    folder where the cache cannot be written or breaks the rule (:func:`check_private`)."""
    try:
        return _find_or_build_in(cache_dir(), name, cflags, ldflags, namespace)
    except (OSError, UnsafeCacheError) as err:
        root = Path(tempfile.mkdtemp(prefix="esfit-kernels-"))  # 0700 and new: nobody else's file is in it
        warnings.warn(f"the kernel cache is not used ({err}); the kernel is built in {root} for this process only",
                      RuntimeWarning, stacklevel=5)
        return _find_or_build_in(root, name, cflags, ldflags, namespace)


def _find_or_build_in(root: Path, name: str, cflags: list[str], ldflags: list[str], namespace: str) -> Path:
    private_dir(root)
    with _lock(root / f"{name}.lock"):
        folder, library = root / name, root / name / f"{name}.so"
        if folder.exists():
            check_tree(folder)
        if library.exists():
            try:
                return _load(library, namespace)
            except OSError:
                library.unlink()  # damaged (a full disk, say): link it again
        _compile(name, cflags, ldflags, folder)
        return _load(library, namespace)


def _compile(name: str, cflags: list[str], ldflags: list[str], folder: Path) -> None:
    from torch.utils import cpp_extension

    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "lock").unlink(missing_ok=True)  # torch's own lock, left by a process killed mid-build
    start = time.perf_counter()
    with _ninja_on_path():
        cpp_extension.load(name, [str(SOURCE)], extra_cflags=cflags, extra_ldflags=ldflags, build_directory=str(folder),
                           is_python_module=False, verbose=False)
    for entry in folder.iterdir():  # under a umask of 002 the build's files are group-writable
        entry.chmod(entry.stat().st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))
    log.info("built %s in %.1f s", name, time.perf_counter() - start)


def _load(library: Path, namespace: str) -> Path:
    check_tree(library.parent)
    torch.ops.load_library(str(library))
    if not torch._C._dispatch_has_kernel_for_dispatch_key(f"{namespace}::lowrank_", "CPU"):
        raise RuntimeError(f"{library} loaded but registers no CPU kernel for {namespace}::lowrank_")
    return library


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """PATH with the ninja of the PyPI package ``ninja`` when none is on PATH (a virtual environment
    that was not activated keeps it out of sight), for the build only."""
    if shutil.which("ninja") is not None:
        yield
        return
    try:
        import ninja
    except ImportError:
        raise RuntimeError("ninja is not installed: pip install ninja (esfit's train extra has it)") from None
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + before
    try:
        yield
    finally:
        os.environ["PATH"] = before


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the build, released when the process dies (unlike a lock
    file: a killed rank must not leave the next run waiting forever)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's own lock file still keeps builds apart
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- the cache's rule: only this user's files, which no one else can change -----------------------------

class UnsafeCacheError(RuntimeError):
    """A cached path that another user owns or could write."""


def cache_dir() -> Path:
    return Path(os.environ.get("ESFIT_CACHE", Path.home() / ".cache" / "esfit")) / "kernels"


def private_dir(path: Path) -> None:
    """Make ``path`` and whatever folders above it are missing (mode 0700), then check it: see
    :func:`check_private`. Its parent may be writable by others only with the sticky bit (like
    /tmp), which stops them from swapping ``path`` for their own folder."""
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
    check_private(path)
    if not path.is_dir():
        raise UnsafeCacheError(f"{path} is not a folder: delete it")
    parent = path.parent.stat()
    if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not parent.st_mode & stat.S_ISVTX:
        raise UnsafeCacheError(f"{path.parent} is writable by other users and has no sticky bit: make it private "
                               "(chmod go-w) or point ESFIT_CACHE at a folder of your own")


def check_tree(folder: Path) -> None:
    """:func:`check_private` for ``folder`` and everything directly in it."""
    check_private(folder)
    for entry in folder.iterdir():
        check_private(entry)


def check_private(path: Path) -> None:
    """Raise :class:`UnsafeCacheError` unless ``path`` is not a symbolic link, belongs to this user
    and cannot be written by group or others."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeCacheError(f"{path} is a symbolic link: the kernel cache holds only real files; delete it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise UnsafeCacheError(f"{path} belongs to user id {info.st_uid}, not to this user ({os.getuid()}): "
                               "delete it, or point ESFIT_CACHE at a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheError(f"{path} can be written by other users (mode {stat.filemode(info.st_mode)}): "
                               "delete it, or chmod go-w it")
