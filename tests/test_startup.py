"""Start-up: the kernels compiled once (``make warm``) are loaded by every later process; compiling shows one line."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

WARM = ROOT / "twin" / "data" / "warm" / "warm.yaml"


def test_a_fresh_process_compiles_no_kernel_once_the_cache_is_warm(tmp_path):
    warm = subprocess.run([sys.executable, "-m", "twin.warm"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.count("\n") == 1 and warm.stdout.startswith("twin warm: kernels cached"), warm.stdout
    # a new process: the crossing (actuated signal, priority junction, bus stop, parking, loops, routing, emissions)
    r = run_cli("run", WARM, "--duration", "120", "-q", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "compiling" not in r.stderr, r.stderr  # the notice comes with the first compilation
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["compile_s"] == 0.0
    # and the default scenario, through CompileWatch itself
    code = ("from twin.jit import CompileWatch\nfrom twin.warm import RUNS, warm\n"
            "watch, skipped = warm(RUNS[1:2])\nprint(watch.compiles, watch.seconds)")
    again = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["0", "0.0"], again.stdout


@pytest.mark.slow
def test_compiling_shows_one_line_and_no_progress_bar_counting_it(tmp_path):
    """With an empty cache, the run prints one line about compiling; the bar's clock leaves the compilation out."""
    r = run_cli("run", WARM, "--duration", "300", "--out", tmp_path / "out", env={"NUMBA_CACHE_DIR": str(tmp_path)},
                timeout=900)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in re.split(r"[\r\n]+", r.stderr) if ln.strip()]
    assert sum("compiling" in ln for ln in lines) == 1, lines
    compile_s = json.loads((tmp_path / "out" / "manifest.json").read_text())["compile_s"]
    assert compile_s > 1.0  # it did compile
    bars = [ln for ln in lines if ln.startswith("simulating:")]
    assert bars, lines
    for ln in bars:  # [elapsed<remaining, ...]: neither counts the compilation
        elapsed, remaining = re.search(r"\[([\d:]+)<([\d:?]+)", ln).groups()
        seconds = [sum(int(x) * 60 ** i for i, x in enumerate(reversed(v.split(":")))) for v in (elapsed, remaining)
                   if v != "?"]
        assert max(seconds) < compile_s, (ln, compile_s)
