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
    "grid": {"dataset": "4c2d9e6288a4445c8fe2105943abb6e4ab0f5f8167dd3a645e8c332a532aa234",
             "trips": "71f0e9186ddf5fcfd0334b1b3c5b1d6d8d05a50a81f3f6479930ffa9a0bed7d6"},
    "bologna": {"dataset": "949d691b0902c3e7affacb6060ac4841aa11d06ee3914b19b0b4cbc93e62fe08",
                "trips": "c956c3d20c6ee6d5684a3e66d96e353ed776ec2e575e26fed288d83e0aa7cdba"},
    "wildau": {"dataset": "babd8a0d953778eaf5ba0c5d1828fa99a3229a86f977ed387e6bfeda2ab48d50",
               "trips": "efc185975d214259d9fac37497e281777416cb085919eea15218daf885019697"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
