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
    "grid": {"dataset": "19a3375cb68b6ef03b3ac898c2c4f83f12e2e5e7f508732c8e818fb2077665be",
             "trips": "0076fab2b252a687af9080a2e312a8c4d6a556ec9fa0dc39797e64a3b33e40c8"},
    "bologna": {"dataset": "62fe872a002e7346c981a25d61f22ffd368abfd65c3b19c5aee524a0494d7c51",
                "trips": "968fc63fa3e1c4cd90be95e3fefe1e7350ede49b1ed5dff13bf49374492be888"},
    "wildau": {"dataset": "d9696ef6ba56294474b84aed03c21101e01320da5096af0c8a9583e6654405f4",
               "trips": "65076ead95baecfa67416e3e7aa83d24af7893752db520f215aea98eb3c849ea"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
