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
    "grid": {"dataset": "8764882dd6db2e0915c90d8e28bec2aaf9981d0d6b3f77851db219f834eacd18",
             "trips": "d5813911c9743334a0d6915af610b7155880dba5ff11749415e4997da5153efd"},
    "bologna": {"dataset": "949d691b0902c3e7affacb6060ac4841aa11d06ee3914b19b0b4cbc93e62fe08",
                "trips": "c956c3d20c6ee6d5684a3e66d96e353ed776ec2e575e26fed288d83e0aa7cdba"},
    "wildau": {"dataset": "ef28ded0c637a689a08be12fd12d48421cde81de1ef4096854f7d06b18353558",
               "trips": "3727a150af95bf0c257e5fc4415c9696e8360174046630322b5fb4c80930ab1a"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
