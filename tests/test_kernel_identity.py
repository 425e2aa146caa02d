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
    "bologna": {"dataset": "95950b6d62eda36cc6287b5151875b032bcf9c521ea032550b27ae26e79e6131",
                "trips": "991372a035ba40eff54943bd39c0978ee566e78401b5f39cbb496463e755b752"},
    "wildau": {"dataset": "e199a49a89808e85ddbedcad3c29fbdf4bebd80ed1bfb0cb2a009d9e9be88ecd",
               "trips": "3d5993addd9436eb2623fa3a838f29aeb349f07ee32572f5a12428b881384df4"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
