"""The one place that sets numba's jit defaults for twin's kernels.

Kernels are pure functions over flat numpy arrays. ``cache=True`` keeps the
compiled machine code between runs (in ``__pycache__``); ``fastmath`` stays off
so that results are bit-for-bit reproducible and equal the pure-Python run
(``NUMBA_DISABLE_JIT=1``) up to the last ulp of transcendental functions.
"""
from __future__ import annotations

import os
import time
import types

# Threads of a parallel kernel that wait for the next one sleep instead of spinning (GNU OpenMP spins by
# default): on cores shared with other processes a spinning thread takes the time the others need, and the
# step waits for its slowest thread. Read when numba starts its thread pool, at the first parallel kernel.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def kernel(func):
    """Compile ``func`` as a twin kernel (``numba.njit`` with the defaults above)."""
    return numba.njit(**JIT_OPTIONS)(func)


def inline_kernel(func):
    """A small per-vehicle helper compiled as a twin kernel that numba inlines into every kernel calling it
    (``inline="always"``, at numba's IR level): a numba-to-numba call passes each array as a struct and
    counts its references, about 28 ns a call with a few arrays, which the kernels' per-vehicle loops paid
    for every vehicle. Called from Python it is an ordinary kernel. Keep it small: each call site gets a
    copy, which numba compiles anew in every caller.
    """
    return numba.njit(inline="always", **JIT_OPTIONS)(func)


def parallel_kernel(func):
    """Compile ``func`` as a twin kernel whose ``numba.prange`` loops are split between the threads
    (``numba.set_num_threads``; the native engine's ``threads``). Each iteration of a ``prange`` loop must
    write only its own elements, and sums over iterations are made after the loop in a fixed order, so that
    the results do not depend on the number of threads (tests/test_parallel.py).

    Its ``serial`` attribute is the same function compiled without threads (``prange`` is ``range`` there),
    for inputs too small to be worth waking the threads for: a parallel loop costs a few µs to start even
    on one thread.
    """
    par = numba.njit(parallel=True, **JIT_OPTIONS)(func)
    # a second function object with its own name, so that each compilation has its own cache file
    one = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial", func.__defaults__,
                             func.__closure__)
    one.__qualname__ = func.__qualname__ + "_serial"
    one.__doc__ = func.__doc__
    par.serial = numba.njit(**JIT_OPTIONS)(one)
    return par


def stamp_sources(func, files) -> None:
    """Make the cached machine code of kernel ``func`` stale when any of ``files`` changes.

    numba's cache checks only the source file of the function it compiled, while a kernel's machine code
    includes the kernels it calls (numba-to-numba): after a change to a callee in another module, the cache
    would load the caller with the old callee. Its stamp becomes a hash of ``files`` (the callees' modules).
    Without the JIT, or a numba whose cache is laid out otherwise, nothing changes.
    """
    cache_file = getattr(getattr(func, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        return
    import hashlib

    h = hashlib.sha256()
    for f in sorted(str(f) for f in files):
        with open(f, "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read())
    cache_file._source_stamp = ("sources", h.hexdigest())


def bind(func, args):
    """The machine code of kernel ``func`` for the types of ``args`` (compiled, or loaded from the cache).

    Calling it skips numba's dispatch, which types every argument anew at each call: nothing for a bare
    array, but about 0.5 µs per array inside a NamedTuple record (30-40 µs a call with the native
    engine's records). The caller passes arguments of the same types at every call and binds again when
    it rebuilds a record. Without the JIT (``NUMBA_DISABLE_JIT=1``) it is ``func`` itself.
    """
    if not hasattr(func, "typeof_pyval"):
        return func
    return func.compile(tuple(func.typeof_pyval(a) for a in args))


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
