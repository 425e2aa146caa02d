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
    "grid": {"dataset": "cef2808f5f48c5659ad2cfbb227bc9b86df6ecdd1f5185c41934abf713cda3e7",
             "trips": "fd7f297a1c8dd4299e3cec8d10ac288356513e65a1720c4399546b5e31d7fb04"},
    "bologna": {"dataset": "6e89a1518f9e58b3996ca5ad594aa900c2a900c28ba5e64b64dbaa71bbff7602",
                "trips": "ff56d8847c3d38d2f9c6cd4644f40eacd797864ea5a29513379f61638e7b2471"},
    "wildau": {"dataset": "d698fd2eda1f4cc8d2e0b640cb923c5e8d00df57e3c6ada35f91f03a7e5976ef",
               "trips": "ba7b7b6d37cc034b752550df51024e6a9a5ba0bfeb19b333c3d13a4da3c2c059"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
