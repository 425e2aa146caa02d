"""The native engine's results are bit-identical to those recorded before the kernels took typed records.

The hashes were recorded with ``python benchmarks/kernel_identity.py`` on the tree before the kernel
split (issue 17, item 4). A change that is meant to alter results (a model change) records new hashes
here, with its measured effect across the real cities in the same commit.
"""
from __future__ import annotations

import importlib.util

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("kernel_identity", ROOT / "benchmarks" / "kernel_identity.py")
kernel_identity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_identity)

RECORDED = {
    "grid": {"dataset": "38a7988202706b1381a8a0b405f4ff0ad29a00f094a5ce1fa424c59716632179",
             "trips": "d6d3b829341176ec17eaa7af05e34a708d8cfaad64940cbed4a732476b006bfb"},
    "bologna": {"dataset": "562a15573edd968f77a60e9b5a8ca5a000bc78786915f3b2ee04dddb986ca0a9",
                "trips": "66f0a586219c17558a733201da6a97c5b81dc132a655bffd5df24ae55fae4f82"},
    "wildau": {"dataset": "14dc0b990cf7c867e374326569449a97ecc75d93bfcb7d6d8717a6bba88edea4",
               "trips": "0d108c10becc2798377a194a588cc02e9d3e5fe3b55485106a84f61d25306251"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
