"""twin as a package: a wheel builds, installs into a fresh venv and runs the default scenario from any
folder; a feature whose extra is missing says which extra to install; the first run says it compiles."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_the_default_scenario(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheels = list(dist.glob("twin-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheels[0])],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"  # no scenarios/ here: the default ships with the package
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(env_dir / "bin" / "twin"), "run", "--duration", "600", "-q"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "scenario 'default'" in r.stdout
    assert "compiling the numba kernels" in r.stderr  # a fresh install compiles, and says so once
    assert r.stderr.count("compiling the numba kernels") == 1
    manifest = json.loads((work / "results" / "default" / "manifest.json").read_text())
    assert manifest["compile_s"] > 0
    kpis = json.loads((work / "results" / "default" / "kpis.json").read_text())
    assert kpis["trips_completed"] > 0
    # the same with python -m twin, now from the cache: no compiling line
    r = subprocess.run([str(py), "-m", "twin", "run", "--duration", "300", "-q", "--out", "second"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "compiling" not in r.stderr
    # the core install has no viz extra: render names it in one line, exit 2
    r = subprocess.run([str(env_dir / "bin" / "twin"), "render", "results/default", "--out", "views"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "pip install 'twin[viz]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_python_dash_m_twin_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "twin", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("twin ")
