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
    "grid": {"dataset": "79b1909421382d2470ba01cea947961b4da642f8372633a67c43659b00585614",
             "trips": "d212bfbfd2e968df89b14a33251b1ee6ceec2f41c5067d22e8711b7ee46d6fe1"},
    "bologna": {"dataset": "71a031d0a5143199c5a44d034fece28bef7dd0b3d706c60f4fcdff9f72ab90e3",
                "trips": "c47f7985b9121b6fe6208e7254d725262b983ea3e8f35ef48dc1206fa2c49fdb"},
    "wildau": {"dataset": "d9696ef6ba56294474b84aed03c21101e01320da5096af0c8a9583e6654405f4",
               "trips": "65076ead95baecfa67416e3e7aa83d24af7893752db520f215aea98eb3c849ea"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
