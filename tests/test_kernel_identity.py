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
    "bologna": {"dataset": "d364d335dd4eae3329bd29e8da66654a75767db345cc9356d6bd24ac8215f754",
                "trips": "043e28842f9703a6dc58489745f73c2435a128e20668c1d84ce6761cd188494d",
                "traffic": "d9bef3a0295d30cae521ed9836aa023c241c6a031f0702a331593e0097a55066"},
    "wildau": {"dataset": "2b7dc789cae102af10d8333a182c61458ccb3ba359251b7a2008f1901f80a620",
               "trips": "decfdb8611c87b04e24151d57967b740df98c550f06ce1872b4706cee2b9685c",
               "traffic": "b5d0fac355b9cbc478278a0cbc07c802b0a30f2a0a46c33970adf1f2334c06c6"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
