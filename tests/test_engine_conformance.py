"""The Engine protocol's conformance suite: the same cases on every registered engine.

A third-party engine registered through the ``twin.engines`` entry point is picked up here too
(``available_engines()``), so running this file checks it against what twin's callers rely on.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from twin.city import corridor_city
from twin.config.base import EngineConfig
from twin.config.models import engine_config
from twin.demand import route_demand
from twin.engines import Action, Engine, UnsupportedActionError, available_engines
from twin.engines.base import (
    AddVehicle, Capability, Checkpoint, RouteGraph, SetSpeedLimit, UnsupportedCapabilityError, require,
)
from twin.engines.registry import engine_class

from conftest import ROOT, make_trips

ENGINES = available_engines()


@pytest.fixture(scope="module")
def city():
    return corridor_city(n_edges=3, length=300.0, lanes=1)


@pytest.fixture(scope="module")
def demand(city):
    specs = [("e0", "e2", float(t)) for t in range(0, 240, 8)]
    return route_demand(city, make_trips(city, specs))


def _engine(name: str, **cfg):
    cls = engine_class(name)
    return cls.from_config(engine_config({"type": name, **cfg}), record_interval_s=60.0, loops=[("L1", 1, 150.0)])


def _run(name, city, demand, until, seed=7):
    eng = _engine(name)
    eng.start(city, demand, seed=seed)
    eng.advance(until)
    return eng


@pytest.mark.parametrize("name", ENGINES)
def test_the_engine_declares_its_config_and_satisfies_the_protocol(name):
    cls = engine_class(name)
    assert cls.name == name
    assert issubclass(cls.Config, EngineConfig)
    cfg = engine_config({"type": name})
    assert isinstance(cfg, cls.Config) and cfg.type == name
    eng = _engine(name)
    assert isinstance(eng, Engine)
    assert eng.loop_ids == ["L1"]
    for c in cls.capabilities:  # actions it applies and features it has, nothing else
        assert issubclass(c, (Action, Capability)), c


@pytest.mark.parametrize("name", ENGINES)
def test_vehicles_are_conserved_and_the_trip_table_reads_mid_run_and_after_close(name, city, demand):
    eng = _run(name, city, demand, 120.0)
    snap = eng.observe()
    n = len(demand.trips)
    assert snap.time == pytest.approx(120.0)
    assert snap.scheduled + snap.waiting + snap.running + snap.arrived == n
    assert snap.edge_entered.shape == (city.n_edges,) and snap.loop_count.shape == (1,)
    mid = eng.trip_table()  # mid-run: the mesa step of a population reads it while the engine runs
    assert (mid.state == 3).sum() == snap.arrived
    assert (mid.state == 2).sum() == snap.running
    assert np.all(np.isfinite(mid.arrival[mid.state == 3]))
    assert np.all(np.isnan(mid.arrival[mid.state < 3]))
    eng.advance(600.0)
    later = eng.observe()
    assert later.arrived == n and later.running == 0  # a short corridor: everyone arrives
    assert np.all(later.edge_entered >= snap.edge_entered)
    assert later.loop_count[0] == n  # every vehicle passes the loop on e1
    eng.close()
    table = eng.trip_table()
    assert np.all(table.state == 3)
    np.testing.assert_allclose(table.arrival[mid.state == 3], mid.arrival[mid.state == 3], atol=eng.step_length)
    assert np.all(table.arrival > table.depart)


@pytest.mark.parametrize("name", ENGINES)
def test_the_same_seed_gives_the_same_run(name, city, demand):
    a = _run(name, city, demand, 400.0, seed=3)
    a.close()  # (libsumo runs one simulation per process at a time)
    b = _run(name, city, demand, 400.0, seed=3)
    b.close()
    np.testing.assert_array_equal(a.trip_table().arrival, b.trip_table().arrival)


@pytest.mark.parametrize("name", ENGINES)
def test_what_it_cannot_do_is_a_clear_error(name, city, demand):
    class Teleport(Action):
        pass

    class Telepathy(Capability):
        """reading drivers' minds"""

    eng = _run(name, city, demand, 10.0)
    try:
        with pytest.raises(UnsupportedActionError, match=f"engine '{name}' cannot apply action Teleport"):
            eng.apply(Teleport())
        with pytest.raises(UnsupportedCapabilityError, match=f"engine '{name}' does not support telepathy"):
            require(eng, Telepathy)
        for cap in (Checkpoint, RouteGraph):
            if cap not in eng.capabilities:
                with pytest.raises(UnsupportedCapabilityError):
                    require(eng, cap)
    finally:
        eng.close()


@pytest.mark.parametrize("name", ENGINES)
def test_speed_limits_slow_traffic(name, city, demand):
    if SetSpeedLimit not in engine_class(name).capabilities:
        pytest.skip(f"{name} does not apply speed limits")
    free = _run(name, city, demand, 600.0)
    free.close()
    slow = _engine(name)
    slow.start(city, demand, seed=7)
    slow.apply(SetSpeedLimit(edges=("e1",), speed=4.0))
    slow.advance(600.0)
    slow.close()
    tt = lambda e: np.nanmean(e.trip_table().arrival - e.trip_table().depart)  # noqa: E731
    assert tt(slow) > tt(free) + 300.0 / 4.0 - 300.0 / city.edge_speed[1] - 5.0


@pytest.mark.parametrize("name", ENGINES)
def test_an_added_vehicle_can_be_followed(name, city, demand):
    if AddVehicle not in engine_class(name).capabilities:
        pytest.skip(f"{name} does not add vehicles")
    eng = _run(name, city, demand, 30.0)
    try:
        eng.apply(AddVehicle(vid="unit1", route=("e0", "e1", "e2"), vtype=demand.trips.vtypes[0].name))
        eng.advance(300.0)
        st = eng.vehicle_status(["unit1"])
        assert st["state"][0] == 3 and np.isfinite(st["arrival"][0]) and st["distance"][0] > 600.0
    finally:
        eng.close()


@pytest.mark.parametrize("name", ENGINES)
def test_a_checkpoint_resumes_the_same_run(name, city, demand, tmp_path):
    cls = engine_class(name)
    if Checkpoint not in cls.capabilities:
        pytest.skip(f"{name} has no checkpoints")
    whole = _run(name, city, demand, 400.0)
    whole.close()
    part = _run(name, city, demand, 100.0)
    part.checkpoint(tmp_path / "state.npz")
    part.close()
    resumed = cls.restore(tmp_path / "state.npz", city, demand)
    resumed.advance(400.0)
    resumed.close()
    np.testing.assert_array_equal(resumed.trip_table().arrival, whole.trip_table().arrival)


def test_an_unknown_engine_is_one_line_listing_the_registered_ones(tmp_path):
    from twin.config import ConfigError, load_scenario

    p = tmp_path / "s.yaml"
    p.write_text(f"extends: {ROOT / 'scenarios' / 'default.yaml'}\nrun: {{engine: {{type: warp}}}}\n")
    with pytest.raises(ConfigError, match="unknown engine 'warp'; registered engines: native, sumo"):
        load_scenario(p)


def test_a_third_party_engine_registered_by_entry_point_runs_from_yaml_and_the_cli(tmp_path):
    """A real entry point (a dist-info on the path), not a patched registry."""
    site = tmp_path / "site"
    (site / "toy_engine-1.0.dist-info").mkdir(parents=True)
    (site / "toy_engine-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine\n"
                                                                "Version: 1.0\n")
    (site / "toy_engine-1.0.dist-info" / "entry_points.txt").write_text("[twin.engines]\ntoy = toy_engine:ToyEngine\n")
    (site / "toy_engine.py").write_text(textwrap.dedent('''
        from typing import Literal
        from twin.engines.native import NativeEngine
        from twin.engines.native.engine import NativeEngineConfig

        class ToyConfig(NativeEngineConfig):
            type: Literal["toy"] = "toy"
            slowness: float = 1.0

        class ToyEngine(NativeEngine):
            name = "toy"
            Config = ToyConfig

            @classmethod
            def from_config(cls, cfg, *, record_interval_s, loops=None):
                print(f"toy engine, slowness {cfg.slowness}")
                return cls(step_length=cfg.step_length_s, teleport_time=cfg.teleport_time_s, loops=loops)
    '''))
    scen = tmp_path / "toy.yaml"
    scen.write_text(f"extends: {ROOT / 'scenarios' / 'default.yaml'}\nname: toy\n"
                    "run: {duration_s: 300, engine: {type: toy, slowness: 2.5}}\n")
    env = {"PYTHONPATH": f"{site}:{ROOT}"}
    import os

    e = {**os.environ, **env}
    r = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), "run", str(scen), "--out", str(tmp_path / "o"),
                        "-q"], capture_output=True, text=True, env=e, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "toy engine, slowness 2.5" in r.stdout and "engine toy" in r.stdout
    r = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), "run", "--engine", "toy", "--duration", "120",
                        "--out", str(tmp_path / "o2"), "-q"], capture_output=True, text=True, env=e, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "toy engine, slowness 1.0" in r.stdout
