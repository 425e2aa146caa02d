"""Kernels compiled without numba's reference counting (``@kernel(refcounts=False)``, twin/jit.py)."""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pytest

from twin.jit import bind, kernel


class Pair(NamedTuple):
    a: np.ndarray
    b: np.ndarray


class Other(NamedTuple):  # the same fields, another class
    a: np.ndarray
    b: np.ndarray


@kernel
def _sum_of_fresh(n):
    """Allocates (counts references): called from a kernel without them it keeps its own counting."""
    tmp = np.arange(n) * 2.0
    return tmp.sum()


@kernel(refcounts=False)
def _scale(rec, order, n, f):
    """Writes into a record's arrays and calls a kernel that allocates."""
    a, b = rec.a, rec.b
    for k in range(n):
        i = order[k]
        b[i] = a[i] * f
    return _sum_of_fresh(n)


@kernel(refcounts=False)
def _allocates(n):
    tmp = np.zeros(n)
    return tmp.sum()


def test_a_kernel_without_reference_counts_runs_and_calls_kernels_that_allocate():
    rec = Pair(np.arange(6.0), np.zeros(6))
    order = np.array([5, 0, 3], dtype=np.int32)
    for _ in range(3):  # (a freed array would show here as garbage or a crash)
        assert _scale(rec, order, 3, 2.0) == 6.0
    assert rec.b.tolist() == [0.0, 0.0, 0.0, 6.0, 0.0, 10.0]
    if hasattr(_scale, "targetoptions"):  # (not without the JIT)
        assert _scale.targetoptions["_nrt"] is False
        assert _sum_of_fresh.targetoptions["_nrt"] is True  # set, so not inherited from its caller


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles")
def test_a_kernel_without_reference_counts_may_not_allocate():
    with pytest.raises(numba.core.errors.TypingError, match="zeros"):
        _allocates(3)


def test_the_step_kernels_count_no_references():
    from twin.engines.native import emissions as EM
    from twin.engines.native import kernels as K
    from twin.engines.native.fused import _sort, run_steps
    from twin.engines.native.kernels.insertion import _back_gap_ok
    from twin.engines.native.turns import count_turns

    for f in (K.change_lanes.serial, K.move.serial, K.commit, K.insert, K.sort_vehicles, K.update_signals, _sort,
              count_turns, EM.emit_range, _back_gap_ok, run_steps):
        assert getattr(f, "targetoptions", {"_nrt": False})["_nrt"] is False, f
    assert getattr(K.move, "targetoptions", {"_nrt": True})["_nrt"] is True  # numba's threads count them


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles")
def test_bind_finds_the_machine_code_of_arguments_of_the_same_types_again():
    """bind keeps what it found for the process (every new engine bound its kernels anew, ~1 ms a run), keyed
    by what numba's typing depends on: arrays of another dtype, dimension, layout or writability, another
    record class, a float for an int each get their own."""
    rec = Pair(np.arange(6.0), np.zeros(6))
    order = np.array([5, 0, 3], dtype=np.int32)
    f = bind(_scale, (rec, order, 3, 2.0))
    assert bind(_scale, (Pair(np.ones(6), np.ones(6)), order.copy(), 5, 1.0)) is f
    ro = np.arange(6.0)
    ro.flags.writeable = False
    others = [(Pair(np.arange(6, dtype=np.float32), np.zeros(6)), order, 3, 2.0),
              (rec, order.astype(np.int64), 3, 2.0),
              (rec, order[::2], 3, 2.0),
              (Pair(ro, np.zeros(6)), order, 3, 2.0),
              (Other(rec.a, rec.b), order, 3, 2.0),
              (rec, order, 3.0, 2.0)]
    for args in others:
        g = bind(_scale, args)
        assert g is not f and g is _scale.overloads[tuple(_scale.typeof_pyval(a) for a in args)].entry_point, args
    assert f(rec, order, 3, 2.0) == 6.0
