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
    "grid": {"dataset": "b8a195c11312d172aecba1b95c3f776043fe6006c1442b1755fe084d377d62af",
             "trips": "198e8bb16eb0cee617b00970d874066206093e52f618a2a37852ecdcded20a47"},
    "bologna": {"dataset": "db3f284a6378b8765ddf5b5da6dce5c7a7b12e11a2766dc7f4673e773817ebd6",
                "trips": "190c05d3ba263d736388a72efccbe03f297ee3b595fc1efd2fb78f24b3d70292"},
    "wildau": {"dataset": "af202a772b1e75c515b6240cdb0e65dc11c6bdfef8943eb28380d30375d2c2b7",
               "trips": "3b100dd3274f3fb4040a56d3ac15883b2d75d4c9ea440a90aebb6cd0ed1e9f91"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
