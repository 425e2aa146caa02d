"""The one place that sets numba's jit defaults for twin's kernels.

Kernels are pure functions over flat numpy arrays. ``cache=True`` keeps the
compiled machine code between runs (in ``__pycache__``); ``fastmath`` stays off
so that results are bit-for-bit reproducible and equal the pure-Python run
(``NUMBA_DISABLE_JIT=1``) up to the last ulp of transcendental functions.
"""
from __future__ import annotations

import numba

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def kernel(func):
    """Compile ``func`` as a twin kernel (``numba.njit`` with the defaults above)."""
    return numba.njit(**JIT_OPTIONS)(func)
