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
    "grid": {"dataset": "90da6b60beae320e03e43f89344040896cedc552982e90e3f8dc057edf9f05df",
             "trips": "bbed59d7055c90a268771ca1455f08d0dd74a3f4dc104547dc8dbe8fc966adf8"},
    "bologna": {"dataset": "94c324bc4e1a5c8ffa9b4afac54c017679f8ef2ab99aad3f0aa1f53e2fef57bf",
                "trips": "32376d54d312198f3a5e623f6ce838f81fdc930ab49758d77ebe292076427fed"},
    "wildau": {"dataset": "a64ca7e222e4e30c2daea5e4ec071f2474eb6bbb275cdcb22b6cd58fdfd5e9bb",
               "trips": "05de462c4c8e7dd78d0eb45016e2a211bfee6bcc65e833376772dfcf8b697121"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
