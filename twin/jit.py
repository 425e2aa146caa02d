"""The one place that sets numba's jit defaults for twin's kernels.

Kernels are pure functions over flat numpy arrays. ``cache=True`` keeps the
compiled machine code between runs (in ``__pycache__``); ``fastmath`` stays off
so that results are bit-for-bit reproducible and equal the pure-Python run
(``NUMBA_DISABLE_JIT=1``) up to the last ulp of transcendental functions.
"""
from __future__ import annotations

import time

import numba

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def kernel(func):
    """Compile ``func`` as a twin kernel (``numba.njit`` with the defaults above)."""
    return numba.njit(**JIT_OPTIONS)(func)


def parallel_kernel(func):
    """A kernel whose ``numba.prange`` loops run on all of numba's threads (``NUMBA_NUM_THREADS``).

    Each iteration of a ``prange`` loop must write only its own slots of the outputs, so that results
    are the same for any number of threads.

    OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless it is set): on
    cores shared with other processes, spinning threads take the cores from the working ones (a small
    2-thread routing call took 170 ms instead of 0.2 ms on the loaded 2-core machine).
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when numba first starts its thread pool
    return numba.njit(parallel=True, **JIT_OPTIONS)(func)


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
