"""Start-up: the kernels compiled once (``make warm``) are loaded by every later process; compiling shows one line."""
from __future__ import annotations

import json
import os
import re
import shutil
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


def test_import_twin_and_a_plain_run_load_only_what_they_need(tmp_path):
    heavy = ["numba", "numpy", "xarray", "pandas", "pydantic", "netCDF4", "dask", "distributed", "scipy", "fastapi",
             "uvicorn", "starlette", "sumolib", "traci", "libsumo", "pyproj", "pyvista", "vtk", "matplotlib", "mesa"]
    code = f"import sys, twin\nprint([m for m in {heavy!r} if m in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    # a plain run of the default scenario: no web stack, SUMO, 3D, plotting or agents
    code = (f"import sys\nfrom twin.cli import main\n"
            f"assert main(['run', '--duration', '120', '-q', '--out', {str(tmp_path / 'out')!r}]) == 0\n"
            f"print([m for m in {heavy[9:]!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


def _cache_without(cache_dir, module: str) -> None:
    """Copy the tree's kernel cache (``make warm``) into ``cache_dir`` laid out as numba reads it under
    ``NUMBA_CACHE_DIR``, leaving out the kernels of ``module`` (a file name in the package, without .py)."""
    from numba.core.caching import _CacheLocator

    for pycache in (ROOT / "twin").rglob("__pycache__"):
        files = [f for f in pycache.iterdir() if f.suffix in (".nbi", ".nbc") and not f.name.startswith(module + ".")]
        if files:
            dest = cache_dir / _CacheLocator.get_suitable_cache_subpath(str(pycache.parent / "x.py"))
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, dest / f.name)


def test_compiling_shows_one_line_and_no_progress_bar_counting_it(tmp_path):
    """With the step loop's kernels missing from the cache (the others cached), the run compiles them, prints
    one line about compiling, and the bar's clock leaves the compilation out. A compile from an empty cache is
    tests/test_packaging.py's fresh install."""
    cache = tmp_path / "cache"
    _cache_without(cache, "fused")
    r = run_cli("run", WARM, "--duration", "300", "--out", tmp_path / "out", env={"NUMBA_CACHE_DIR": str(cache)},
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


# a package of kernels in the test's folder: ``caller`` calls ``callee``'s kernel, reads a constant of ``consts``
# (a module without kernels) and takes a record (``records``, which the kernels' modules do not import)
KERNELS = {
    "pkg/__init__.py": "",
    "pkg/consts.py": "SCALE = 10.0\n",
    "pkg/callee.py": "from twin.jit import kernel\n\n\n@kernel\ndef add(x):\n    return x + 1.0\n",
    "pkg/caller.py": ("from twin.jit import kernel, parallel_kernel\nfrom pkg.callee import add\n"
                      "from pkg.consts import SCALE\n\n\n"
                      "@kernel\ndef scaled(x):\n    return add(x) * SCALE\n\n\n"
                      "@parallel_kernel\ndef first(rec):\n    return rec.a[0] + add(0.0)\n"),
    "pkg/records.py": ("from typing import NamedTuple\n\nimport numpy as np\n\n\n"
                       "class Rec(NamedTuple):\n    a: np.ndarray\n    b: np.ndarray\n"),
    "main.py": ("import json\nimport numpy as np\nfrom twin.jit import CompileWatch\n"
                "with CompileWatch() as w:\n    from pkg.caller import first, scaled\n    from pkg.records import Rec\n"
                "    out = [scaled(1.0), first(Rec(np.full(2, 1.0), np.full(2, 2.0))),\n"
                "           first.serial(Rec(np.full(2, 1.0), np.full(2, 2.0)))]\n"
                "print(json.dumps([out, w.compiles]))\n"),
}


def test_a_cached_kernel_compiles_again_when_a_module_it_depends_on_changes(tmp_path):
    """numba's cache checks only the kernel's own file; twin.jit stamps it with the modules it imports."""
    for name, text in KERNELS.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
           "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run():
        r = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.splitlines()[-1])

    def edit(name, old, new):
        path = tmp_path / name
        path.write_text(path.read_text().replace(old, new))

    first = run()
    assert first[0] == [20.0, 2.0, 2.0] and first[1] >= 3
    assert run() == [[20.0, 2.0, 2.0], 0]  # all loaded from the cache
    edit("pkg/callee.py", "x + 1.0", "x + 2.0")  # a callee in another module
    assert run()[0] == [30.0, 3.0, 3.0]
    edit("pkg/consts.py", "10.0", "20.0")  # a constant the caller reads
    assert run()[0] == [60.0, 3.0, 3.0]
    edit("pkg/records.py", "a: np.ndarray\n    b: np.ndarray", "b: np.ndarray\n    a: np.ndarray")  # fields swapped
    assert run()[0] == [60.0, 4.0, 4.0]  # rec.a is the second array now
    assert run() == [[60.0, 4.0, 4.0], 0]



def test_make_warm_depends_on_every_file_a_kernel_cache_is_stamped_with():
    """``make warm`` runs again when one of ``python -m twin.warm --sources`` changes: every file any kernel's
    cache stamp covers, and no other (the CLI, say)."""
    import importlib

    from twin.jit import kernel_sources, module_sources

    listed = subprocess.run([sys.executable, "-m", "twin.warm", "--sources"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    sources = {ROOT / f for f in listed.stdout.split()}
    assert sources == set(kernel_sources())
    stamped = set()
    for f in sources:
        module = importlib.import_module(".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
        stamped.update(module_sources(module))
    assert stamped == sources
    assert ROOT / "twin" / "engines" / "native" / "kernels" / "state.py" in sources  # constants, no kernel
    assert ROOT / "twin" / "demand" / "trips.py" in sources  # the depart constants the insertion kernel reads
    assert ROOT / "twin" / "cli.py" not in sources and ROOT / "twin" / "engines" / "native" / "engine.py" not in sources

# ----------------------------------------------------------------- the city cache
def _same_city(a, b) -> bool:
    import dataclasses

    import numpy as np

    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) if isinstance(getattr(a, f.name), np.ndarray)
               else getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a))


def test_a_network_read_again_comes_from_the_cache_with_its_warnings(tmp_path, monkeypatch, caplog):
    import logging

    from twin.city import cache
    from twin.city.sumo_net import _parse_sumo_net, read_sumo_net

    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path / "cache"))
    net = tmp_path / "cross.net.xml"
    # a footpath the import leaves out, with its warning
    text = (WARM.parent / "cross.net.xml").read_text().replace('<edge id="QP" from="Q" to="P" priority="-1">',
                                                               '<edge id="QP" from="Q" to="P" priority="-1" '
                                                               'type="highway.footway">')
    net.write_text(text.replace('id="QP_0" index="0" speed="8.33"', 'id="QP_0" index="0" allow="pedestrian" '
                                                                      'speed="8.33"'))
    with caplog.at_level(logging.WARNING):
        first, rep1 = read_sumo_net(net)
    assert len(list((tmp_path / "cache" / "cities").glob("*.npz"))) == 1
    warned = [r.getMessage() for r in caplog.records]
    assert any("left out 1 edges" in m for m in warned), warned
    caplog.clear()
    monkeypatch.setattr("twin.city.sumo_net._parse_sumo_net", lambda *a: pytest.fail("parsed again"))
    with caplog.at_level(logging.WARNING):
        second, rep2 = read_sumo_net(net)
    assert [r.getMessage() for r in caplog.records] == warned  # the same warnings, from the cache
    assert _same_city(first, second) and rep2 == rep1
    assert _same_city(second, _parse_sumo_net(net, [], None)[0])
    monkeypatch.undo()
    # an edited network is a new entry; a damaged entry is passed over; "off" keeps nothing
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path / "cache"))
    net.write_text(text.replace('speed="13.89"', 'speed="11.11"', 1))
    edited, _ = read_sumo_net(net)
    assert not _same_city(edited, first) and len(list((tmp_path / "cache" / "cities").glob("*.npz"))) == 2
    key = cache.cache_key("sumo-net", [net], {"name": None})
    (tmp_path / "cache" / "cities" / f"{key}.npz").write_bytes(b"damaged")
    assert _same_city(read_sumo_net(net)[0], edited)
    monkeypatch.setenv("TWIN_CACHE_DIR", "off")
    read_sumo_net(WARM.parent / "cross.net.xml")
    assert len(list((tmp_path / "cache" / "cities").glob("*.npz"))) == 2
