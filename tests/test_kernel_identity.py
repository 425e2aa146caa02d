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
    "grid": {"dataset": "0b5a927ebe742305492d34b9d2d29d510150b1b320a9a0082dd859ec74cfcd15",
             "trips": "5d204cb7e52d9d4eaf050ef2d7fa38e28ceefe92cd026b65dd0e9d4bb13d3265"},
    "bologna": {"dataset": "1515ec0ec90256ac5b6a8bb4acff8c0c99d097f0e91ffe2ae399214934855598",
                "trips": "aa2610a873fd43216367c793577684b8242801941c0f1e36b611a633292b20c7"},
    "wildau": {"dataset": "feb3bb3264ab550f6486e853cfda8f68b95fca053cf2ea3156a96cf0aefa39eb",
               "trips": "bd26a3a920e621aefdcbf9ea399f5a29b843b95258aa323572ff69192b450d79"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
