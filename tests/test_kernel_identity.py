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
    "bologna": {"dataset": "18a98d4f5dcc9f546f7f332ae4f84ba13159683c6655cbaedb4a474fa39a1f81",
                "trips": "c679130974b4244568856ee9b05372cf11a074a57541cbc76b48005ac4a3fb82"},
    "wildau": {"dataset": "72c2ecbfaa80d9d11b804b2cc525e344ac278974262c3c6ceed7f2cc900bf445",
               "trips": "47f3724f33d1e00a1be47880ff6a2e0ceb1907908833aac8d7b10319e0dc6055"},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_results_bit_identical(name):
    assert kernel_identity.fingerprint(name) == RECORDED[name]
