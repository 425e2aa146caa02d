"""The native engine's results are bit-identical to those recorded before the kernels took typed records.

The hashes were recorded with ``python benchmarks/kernel_identity.py`` on the tree before the kernel
split (issue 17, item 4). A change that is meant to alter results (a model change) records new hashes
here, with its measured effect across the real cities in the same commit. The ``traffic`` hash leaves out the
pollutant emissions: a change to the emission kernel alone keeps it.
"""
from __future__ import annotations

import importlib.util

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("kernel_identity", ROOT / "benchmarks" / "kernel_identity.py")
kernel_identity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_identity)

RECORDED = {
    "grid": {"dataset": "d75bdd386d60aa1df292339c653fe593f5efb37c52ff4bb7df3a47ec94b5fe0e",
             "trips": "012ddcdf3389f7f885e1eea040177331657681022d3b05cca05bf689bed1099b",
             "traffic": "6d4d3468461f9b939d85e3018d1731bc42927c92fa9673b53f258bc4600df23f"},
    "bologna": {"dataset": "5eabbb1e533030e26967de8d643dd136b194ca9b66ea4d9f4004bd43d4ee478d",
                "trips": "009c7ab2b1a1f89a5665d87ec613ed40d7a418f61792a4dba8bfeb4241f2530d",
                "traffic": "0915e4066b045d73baa178e77ddb37c1d8055a41c69f26a67b5191d2e99b81bf"},
    "wildau": {"dataset": "20ea3a5583c6ab766cafebecd239ae1a2a3473866e05e93e682103e74a3ac269",
               "trips": "b16f50ecb3b652a1f7d3c8e13cd0b06f2654b351c42225ffede2465fa19861a2",
               "traffic": "0daa72aaa3e89f3053581642dc0cbd77bfe831dfcb777865844561c7a22f7c99"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
