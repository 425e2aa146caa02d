"""The one place that sets numba's jit defaults for twin's kernels.

Kernels are pure functions over flat numpy arrays. ``cache=True`` keeps the
compiled machine code between runs (in ``__pycache__``); ``fastmath`` stays off
so that results are bit-for-bit reproducible and equal the pure-Python run
(``NUMBA_DISABLE_JIT=1``) up to the last ulp of transcendental functions.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import time
import types
from pathlib import Path

# Threads of a parallel kernel that wait for the next one sleep instead of spinning (GNU OpenMP spins by
# default): on cores shared with other processes a spinning thread takes the time the others need, and the
# step waits for its slowest thread. Read when numba starts its thread pool, at the first parallel kernel.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402

# "_nrt" (numba's reference counting, its default) is set, not inherited: numba compiles a kernel called from
# another with the caller's setting unless the kernel sets its own (see NO_REFCOUNTS below)
JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy", "_nrt": True}


# numba counts references to every array a compiled function is given (a tuple of arrays: each of them) at
# its entry and exit, and to every array it takes out of a record, where its optimiser cannot pair them up: a
# kernel taking the native engine's records paid 100-250 counts a call (an atomic add and a function call
# each), a quarter of a small city's step. A kernel that allocates no array, returns none and calls no kernel
# returning one needs none of them: the arrays it is given are kept alive by its caller for the whole call.
NO_REFCOUNTS = {"_nrt": False}


def kernel(func=None, *, refcounts: bool = True):
    """Compile ``func`` as a twin kernel (``numba.njit`` with the defaults above).

    Its cached machine code is stale when its module or any module that module imports (transitively,
    within its package) changes: :func:`module_sources`, :func:`stamp_sources`.

    ``@kernel(refcounts=False)``: compiled without numba's reference counting (:data:`NO_REFCOUNTS`), for a
    kernel called every step that takes many arrays and allocates none (numba refuses to compile an
    allocation there), returns none and calls no kernel that returns one (that array would never be freed).
    """
    if func is None:
        return functools.partial(kernel, refcounts=refcounts)
    options = JIT_OPTIONS if refcounts else {**JIT_OPTIONS, **NO_REFCOUNTS}
    return _stamped(numba.njit(**options)(func), func)


def inline_kernel(func):
    """A small per-vehicle helper compiled as a twin kernel that numba inlines into every kernel calling it
    (``inline="always"``, at numba's IR level): a numba-to-numba call passes each array as a struct and
    counts its references, about 28 ns a call with a few arrays, which the kernels' per-vehicle loops paid
    for every vehicle. Called from Python it is an ordinary kernel. Keep it small: each call site gets a
    copy, which numba compiles anew in every caller.
    """
    return numba.njit(inline="always", **JIT_OPTIONS)(func)


def parallel_kernel(func=None, *, serial_refcounts: bool = True):
    """Compile ``func`` as a twin kernel whose ``numba.prange`` loops are split between the threads
    (``numba.set_num_threads``; the native engine's ``threads``). Each iteration of a ``prange`` loop must
    write only its own elements, and sums over iterations are made after the loop in a fixed order, so that
    the results do not depend on the number of threads (tests/test_parallel.py).

    Its ``serial`` attribute is the same function compiled without threads (``prange`` is ``range`` there),
    for inputs too small to be worth waking the threads for: a parallel loop costs a few µs to start even
    on one thread. ``serial_refcounts=False`` compiles that twin without reference counting (as
    ``@kernel(refcounts=False)``; numba's threads need them in the parallel one).
    """
    if func is None:
        return functools.partial(parallel_kernel, serial_refcounts=serial_refcounts)
    par = numba.njit(parallel=True, **JIT_OPTIONS)(func)
    # a second function object with its own name, so that each compilation has its own cache file
    one = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__,
                             func.__closure__)
    one.__qualname__ = func.__qualname__ + "_serial"
    one.__doc__ = func.__doc__
    options = JIT_OPTIONS if serial_refcounts else {**JIT_OPTIONS, **NO_REFCOUNTS}
    par.serial = _stamped(numba.njit(**options)(one), func)
    return _stamped(par, func)


def stamp_sources(func, files) -> None:
    """Make the cached machine code of kernel ``func`` stale when any of ``files`` changes.

    numba's cache checks only the source file of the function it compiled, while a kernel's machine code
    includes the kernels it calls (numba-to-numba) and the values of the globals it reads (constants
    imported from other modules): after a change to one of those in another module, the cache would load
    the caller with the old callee or constant. Its stamp becomes a hash of ``files``. Without the JIT, or
    a numba whose cache is laid out otherwise, nothing changes.
    """
    cache_file = getattr(getattr(func, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        return
    cache_file._source_stamp = ("sources", _hash_files(tuple(sorted(str(f) for f in files))))


@functools.lru_cache(maxsize=None)
def _hash_files(files: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read())
    return h.hexdigest()


def _stamped(dispatcher, func):
    """``dispatcher`` (``func`` compiled) with its cache stamped by :func:`module_sources` of ``func``, and
    the field names of the NamedTuples (records) it takes in the key of each compiled signature: numba
    keys a NamedTuple type by its class and field types only, so that after swapping two fields of the
    same type in a record's class the cache would load machine code reading the wrong field."""
    files = module_sources(sys.modules.get(func.__module__))
    if files:
        stamp_sources(dispatcher, files)
    cache = getattr(dispatcher, "_cache", None)
    if hasattr(cache, "_index_key"):
        cache._index_key = types.MethodType(_index_key_with_fields, cache)
    return dispatcher


def _index_key_with_fields(cache, sig, codegen):
    """numba's index key of ``sig`` in ``cache`` and the field names of the NamedTuples in ``sig``."""
    names, todo = [], list(sig.args if hasattr(sig, "args") else sig)
    while todo:
        t = todo.pop(0)
        if isinstance(t, numba.types.BaseNamedTuple):
            names.append(tuple(t.fields))
        todo.extend(getattr(t, "types", ()))
    return type(cache)._index_key(cache, sig, codegen) + (tuple(names),)


# a module's top-level imports (column 0: not those inside functions or ``if TYPE_CHECKING:``)
_IMPORT = re.compile(r"^(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n;]*)|import[ \t]+([^\n;]+))",
                     re.MULTILINE)


def _module_file(base: Path, parts) -> Path | None:
    """The source file of module ``parts`` (names) under directory ``base``: a ``.py`` file or a package."""
    path = base.joinpath(*parts)
    for f in (path.with_name(path.name + ".py"), path / "__init__.py"):
        if f.is_file():
            return f
    return None


@functools.lru_cache(maxsize=None)
def _imported_files(file: Path, root: Path) -> tuple[Path, ...]:
    """The files under package directory ``root`` whose modules ``file`` imports at its top level.

    ``from M import a`` counts ``M`` (whose names ``a`` may be), or only the submodule ``M.a`` when each
    ``a`` is a submodule of package ``M``.
    """
    out = []
    for dots, mod, names, plain in _IMPORT.findall(file.read_text(encoding="utf-8")):
        if plain:  # import a.b.c [as x], d
            for name in plain.split("#")[0].split(","):
                parts = name.split()[0].split(".") if name.strip() else []
                if parts and parts[0] == root.name:
                    out.append(_module_file(root.parent, parts))
            continue
        if dots:  # relative to file's package
            base = file.parents[len(dots) - 1]
            parts = mod.split(".") if mod else []
        elif mod.split(".")[0] == root.name:
            base, parts = root.parent, mod.split(".")
        else:
            continue
        names = [n.split()[0] for n in re.sub(r"#[^\n]*", "", names).strip("()").split(",") if n.strip()]
        subs = [_module_file(base, [*parts, n]) for n in names]
        if subs and all(subs):
            out.extend(subs)
        else:
            out.append(_module_file(base, parts))
    return tuple(f for f in out if f is not None)


def module_sources(module) -> list[Path]:
    """The source files whose change makes the cached kernels of ``module`` stale.

    Its own file and those of the modules of its package it imports at its top level, transitively: a
    kernel's machine code holds the kernels it calls and the values of the globals it reads, all of which
    come from these (imports of other packages, numpy for one, are left out). Empty for a module without a
    source file.
    """
    file = getattr(module, "__file__", None)
    if not file or not os.path.isfile(file):
        return []
    file = Path(file).resolve()
    top = sys.modules.get(module.__name__.split(".")[0])
    top_file = getattr(top, "__file__", None)
    root = Path(top_file).resolve().parent if top is not module and top_file else file.parent
    return _closure(file, root)


def _closure(file: Path, root: Path) -> list[Path]:
    """``file`` and the files under ``root`` it imports at its top level, transitively."""
    seen, todo = {file}, [file]
    while todo:
        for f in _imported_files(todo.pop(), root):
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return sorted(seen)


def kernel_sources(root: Path | None = None) -> list[Path]:
    """Every file under package directory ``root`` (twin's by default) whose change makes a cached kernel
    stale: the files that define kernels (``@kernel``, ``@parallel_kernel``, ``@overload``) and those
    they import (:func:`module_sources`). ``make warm`` compiles the kernels again when one of them changes.
    """
    root = (root or Path(__file__).parent).resolve()
    out = set()
    for f in sorted(root.rglob("*.py")):
        if re.search(r"^@(kernel|parallel_kernel|overload)\b", f.read_text(encoding="utf-8"), re.MULTILINE):
            out.update(_closure(f, root))
    return sorted(out)


def bind(func, args):
    """The machine code of kernel ``func`` for the types of ``args`` (compiled, or loaded from the cache).

    Calling it skips numba's dispatch, which types every argument anew at each call: nothing for a bare
    array, but about 0.5 µs per array inside a NamedTuple record (30-40 µs a call with the native
    engine's records). The caller passes arguments of the same types at every call and binds again when
    it rebuilds a record. Without the JIT (``NUMBA_DISABLE_JIT=1``) it is ``func`` itself.

    The machine code found is kept for the process, by :func:`_type_key` of ``args``: numba's typing of
    the native engine's ~130 record arrays took ~1 ms, which every new engine (every run) paid again.
    """
    if not hasattr(func, "typeof_pyval"):
        return func
    key = (func, _type_key(args))
    f = _BOUND.get(key)
    if f is None:
        f = _BOUND[key] = func.compile(tuple(func.typeof_pyval(a) for a in args))
    return f


_BOUND: dict = {}  # (kernel, _type_key of its arguments) -> its machine code (bind)


def _type_key(a):
    """What numba's ``typeof`` of ``a`` depends on, for the values the kernels are given (arrays, tuples and
    NamedTuples of them, scalars, None), cheaper to find than the type itself: arguments with the same key
    have the same numba type."""
    if isinstance(a, np.ndarray):
        f = a.flags
        return a.dtype, a.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned
    if isinstance(a, tuple):
        return type(a), tuple(_type_key(x) for x in a)
    if type(a) is int:  # int64, or uint64 beyond it
        return int, -2 ** 63 <= a < 2 ** 63
    return type(a)


class CompileWatch:
    """Measures the wall time numba spends compiling kernels (loading them from the cache is not compiling).

    Use it as a context manager around the work to watch; ``seconds`` is the time spent compiling and
    ``compiles`` the number of top-level compilations. ``on_first`` is called once, just before the first
    compilation starts (the CLI prints its "compiling kernels" line there).
    """

    def __init__(self, on_first=None) -> None:
        self.seconds = 0.0
        self.compiles = 0
        self._on_first = on_first
        self._depth = 0
        self._t0 = 0.0
        self._listener = None

    def _start(self) -> None:
        if self._depth == 0:
            if self.compiles == 0 and self._on_first is not None:
                self._on_first()
            self._t0 = time.perf_counter()
        self._depth += 1

    def _end(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0
            self.compiles += 1

    def __enter__(self) -> "CompileWatch":
        from numba.core import event

        watch = self

        class _Listener(event.Listener):
            def on_start(self, ev) -> None:
                watch._start()

            def on_end(self, ev) -> None:
                watch._end()

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        from numba.core import event

        event.unregister("numba:compile", self._listener)
