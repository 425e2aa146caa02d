"""Issue 18, runs and files: results always land, interrupts, checkpoints, one-line errors.

Each test replays one case we broke twin with. CLI cases run ``run_sim.py`` in a
subprocess on small scenarios; interrupts send real signals to it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from twin.engines.base import EngineError
from twin.engines.native import NativeEngine
from twin.npzio import load_npz, save_npz

from conftest import ROOT, make_trips, run_cli

SMALL = """name: {name}
city: {{type: corridor, edges: 3, length_m: 300}}
demand: {{type: trips, trips: [{{origin: e0, destination: e2, count: 20, headway_s: 5}}]}}
run: {{duration_s: 120, record_interval_s: 60}}
"""
# a grid with enough traffic that the simulation lasts a few seconds of wall time
LONG = """name: long
city: {type: grid, blocks_x: 8, blocks_y: 8}
demand: {type: od, trips: 12000, end_s: 3600}
run: {duration_s: 36000, record_interval_s: 60, snapshot_interval_s: 0}
"""


def scenario(tmp_path: Path, text: str = SMALL.format(name="small"), name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, one ``error:`` line naming ``needles``."""
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from twin.city import corridor_city
    from twin.demand import route_demand

    city = corridor_city(3, 500.0)
    demand = route_demand(city, make_trips(city, [("e0", "e2", 2.0 * k) for k in range(200)]))
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    eng.advance(120.0)
    path = tmp_path_factory.mktemp("cp") / "cp.npz"
    eng.checkpoint(path)
    return path, city, demand


def _tampered(checkpoint, tmp_path, change) -> Path:
    """The checkpoint with ``change(arrays)`` applied and signed again (so the checks behind the checksum run)."""
    path, _, _ = checkpoint
    meta, arrays = load_npz(path, "twin-native-checkpoint/1", EngineError, "checkpoint")
    change(arrays)
    meta = {k: v for k, v in meta.items() if k not in ("format", "sha256")}
    return save_npz(tmp_path / "bad.npz", "twin-native-checkpoint/1", meta, arrays, compress=False)


def test_checkpoint_restores_and_runs(checkpoint):
    path, city, demand = checkpoint
    eng = NativeEngine.restore(path, city, demand)
    eng.advance(600.0)
    assert eng.observe().arrived > 0


@pytest.mark.parametrize("change, message", [
    (lambda a: a["lane"].__setitem__(np.flatnonzero(a["state"] == 2)[0], 10_000), "lane index"),
    (lambda a: a.__setitem__("pos", a["pos"][:-5]), "'pos' has shape"),
    (lambda a: a["state"].__setitem__(0, 77), "trip state"),
    (lambda a: a["route_edges"].__setitem__(0, -3), "edge index"),
    (lambda a: a["route_off"].__setitem__(3, 10 ** 6), "route offset"),
    (lambda a: a.__setitem__("speed", a["speed"].astype(np.float32)), "type float32"),
    (lambda a: a.pop("e_dist"), "'e_dist' is missing"),
])
def test_bad_checkpoint_is_an_engine_error_naming_it(checkpoint, tmp_path, change, message):
    _, city, demand = checkpoint
    bad = _tampered(checkpoint, tmp_path, change)
    with pytest.raises(EngineError, match="bad checkpoint") as err:
        NativeEngine.restore(bad, city, demand)
    assert message in str(err.value)


def test_changed_checkpoint_fails_its_checksum(checkpoint, tmp_path):
    path, city, demand = checkpoint
    meta, arrays = load_npz(path, "twin-native-checkpoint/1", EngineError, "checkpoint")
    arrays["lane"][np.flatnonzero(arrays["state"] == 2)[0]] = 10_000
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)  # the old checksum kept
    np.savez(tmp_path / "bad.npz", __meta__=header, **arrays)
    with pytest.raises(EngineError, match="checksum mismatch"):
        NativeEngine.restore(tmp_path / "bad.npz", city, demand)


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.0])
def test_truncated_checkpoint_is_an_engine_error(checkpoint, tmp_path, keep):
    path, city, demand = checkpoint
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EngineError, match="damaged/truncated|not a twin"):
        NativeEngine.restore(tmp_path / "cut.npz", city, demand)


def test_kernels_never_run_on_a_bad_checkpoint(checkpoint, tmp_path):
    """In a subprocess: a segfault would show as a negative return code."""
    bad = _tampered(checkpoint, tmp_path, lambda a: a["lane"].__setitem__(slice(None), 10 ** 6))
    code = ("import sys; sys.path.insert(0, 'tests'); from conftest import make_trips\n"
            "from twin.city import corridor_city; from twin.demand import route_demand\n"
            "from twin.engines.native import NativeEngine; from twin.engines.base import EngineError\n"
            "city = corridor_city(3, 500.0)\n"
            "demand = route_demand(city, make_trips(city, [('e0', 'e2', 2.0 * k) for k in range(200)]))\n"
            f"try:\n    NativeEngine.restore({str(bad)!r}, city, demand).advance(300.0)\n"
            "except EngineError as e:\n    print('EngineError', e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "EngineError" in r.stdout and "lane index" in r.stdout


# ------------------------------------------------------------------ files
def test_attrs_netcdf_cannot_hold_are_stored(tmp_path):
    from twin.results.io import open_results, write_results

    ds = xr.Dataset({"x": ("t", np.arange(3.0), {"flag": True, "none": None})},
                    attrs={"seed": 10 ** 30, "partial": True, "none": None, "nested": {"a": {"b": [1, None]}},
                           "name": "a\x00b", "mixed": [1, "x"], "ints": [1, 2]})
    write_results(tmp_path, ds, {}, {})
    back = open_results(tmp_path)
    assert back.attrs["seed"] == str(10 ** 30)
    assert back.attrs["partial"] == 1 and back["x"].attrs["flag"] == 1
    assert json.loads(back.attrs["nested"]) == {"a": {"b": [1, None]}}
    assert back.attrs["none"] == "null" and back.attrs["name"] == "a\ufffdb"
    assert list(back.attrs["ints"]) == [1, 2] and json.loads(back.attrs["mixed"]) == [1, "x"]
    assert sorted(os.listdir(tmp_path)) == ["kpis.json", "manifest.json", "results.nc"]  # no temporary left


def test_safe_names_stay_in_the_results_folder():
    from twin.results.io import RESULTS_ROOT, default_output, safe_name

    for name in ("../../../../x", "/etc/passwd", "a\x00b", "..", "a/../../b", "C:\\x\\y", " .hidden", "\n"):
        s = safe_name(name)
        assert s and "/" not in s and "\\" not in s and "\x00" not in s and not s.startswith("."), (name, s)
        out = default_output(name).resolve()
        assert RESULTS_ROOT.resolve() in out.parents, (name, out)


def test_lock_refuses_a_second_writer(tmp_path):
    from twin.results.io import ResultsError, prepare_output

    folder, lock = prepare_output(tmp_path / "out", "x")
    code = ("import sys; from twin.results.io import prepare_output, ResultsError\n"
            f"try:\n    prepare_output({str(folder)!r}, 'x')\nexcept ResultsError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert f"pid {os.getpid()}" in r.stdout and "another run" in r.stdout, r.stdout + r.stderr
    lock.release()
    again, lock2 = prepare_output(folder, "x")  # free again
    lock2.release()
    with pytest.raises(ResultsError, match="is a file"):
        (tmp_path / "f").write_text("x")
        prepare_output(tmp_path / "f", "x")


def test_save_leaves_the_old_file_when_interrupted_midway(tmp_path):
    from twin.core.files import atomic_path

    target = tmp_path / "kpis.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["kpis.json"]
