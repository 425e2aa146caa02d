"""How a run's results are kept while it runs and written: per-interval series, the routes, text in results.nc."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from twin.demand import route_demand
from twin.engines.native import NativeEngine
from twin.results.io import open_results, write_results
from twin.results.recorder import SERIES, IntervalSeries, Recorder, build_dataset

from conftest import make_trips


def _run(corridor, records: int):
    """A corridor run sampled every 30 s for 300 s by a Recorder with room for ``records`` samples, and every
    snapshot it saw, whole."""
    trips = make_trips(corridor, [("e0", "e2", float(t)) for t in range(0, 240, 7)])
    demand = route_demand(corridor, trips)
    eng = NativeEngine()
    eng.start(corridor, demand, seed=1)
    rec = Recorder(corridor, eng, records)
    whole = [eng.observe()]
    for t in range(30, 301, 30):
        eng.advance(float(t))
        whole.append(rec.sample(float(t)))
    return eng, demand, rec, whole


@pytest.mark.parametrize("records", [0, 3, 11])  # grown from one row, grown from 3, room made once
def test_the_recorder_keeps_each_intervals_differences_as_the_snapshots_give_them(corridor, records):
    eng, demand, rec, whole = _run(corridor, records)
    series = rec._series
    assert series.n == 10 and all(name in series for name in SERIES)
    for name in SERIES:  # the same values as the differences of the stacked cumulative snapshots
        np.testing.assert_array_equal(series.get(name), np.diff(np.stack([getattr(s, name) for s in whole]), axis=0))
    assert series.get("edge_entered").sum() > 0 and series.get("edge_emission").sum() > 0
    snaps = rec.snapshots  # the earlier snapshots keep their counts, the last two their per-edge arrays
    assert [s.time for s in snaps] == [s.time for s in whole]
    assert all(s.edge_entered is None and s.edge_emission is None and s.turn_entered is None for s in snaps[:-2])
    assert all(s.edge_entered is not None and s.turn_entered is not None for s in snaps[-2:])
    assert [s.running for s in snaps] == [s.running for s in whole] and snaps[-1].loop_count is not None
    # the Dataset from the series is the one the whole snapshots give
    trips = eng.trip_table()
    ds = rec.to_dataset(demand, trips, {})
    xr.testing.assert_identical(ds.drop_vars(["turn_count", "turn_from", "turn_to"]),
                                build_dataset(corridor, demand, whole, trips, {}, eng.loop_ids))
    np.testing.assert_array_equal(ds["turn_count"].values, series.get("turn_entered"))
    with pytest.raises(ValueError, match="read-only"):  # views of the recorder's rows, not copies
        ds["entered"].values[0, 0] = 1.0


def test_a_series_some_snapshot_lacks_is_not_kept(corridor):
    _, _, _, whole = _run(corridor, 0)
    from dataclasses import replace

    gap = [whole[0], replace(whole[1], turn_entered=None), *whole[2:]]
    s = IntervalSeries.of(gap)
    assert "turn_entered" not in s and s.get("turn_entered") is None and "edge_dist" in s and s.n == 10
    with pytest.raises(ValueError, match="9 intervals recorded for 11 snapshots"):
        build_dataset(corridor, route_demand(corridor, make_trips(corridor, [])), whole, None, {},
                      series=IntervalSeries.of(whole[:-1]))


def test_the_engine_runs_on_the_demands_routes_without_copying_them(corridor):
    demand = route_demand(corridor, make_trips(corridor, [("e0", "e2", 0.0), ("e1", "e2", 5.0)]))
    eng = NativeEngine()
    eng.start(corridor, demand, seed=1)
    assert np.shares_memory(eng.route_edges, demand.route_edges)
    before = demand.route_edges.copy()
    eng.advance(200.0)
    assert eng.trip_table().state.tolist() == [3, 3]
    np.testing.assert_array_equal(demand.route_edges, before)


def test_text_is_written_as_compressed_characters_and_read_back_as_before(tmp_path):
    """Text variables go to results.nc as UTF-8 character arrays (not variable-length strings) and come back from
    open_results as the fixed-width unicode arrays variable-length strings gave; empty and non-text object
    variables are written as before."""
    import netCDF4

    ids = np.array([f"t{i}" for i in range(5000)], dtype=object)
    ds = xr.Dataset({"trip_origin": (("trip",), np.array(["e0", "Straße-2", "e0", "", "e1"] * 1000, dtype=object)),
                     "trip_co2": (("trip",), np.arange(5000.0)),
                     "blank": (("b",), np.array(["", ""], dtype=object)),
                     "none": (("u",), np.zeros(0, dtype=object))},
                    coords={"trip": ("trip", ids), "trip_vtype": ("trip", np.array(["car"] * 5000, dtype=object))})
    cache = netCDF4.get_chunk_cache()
    write_results(tmp_path, ds, {}, {})
    assert netCDF4.get_chunk_cache() == cache  # (a small one only while it wrote)
    with netCDF4.Dataset(tmp_path / "results.nc") as nc:
        for name in ("trip", "trip_origin", "trip_vtype"):
            v = nc[name]
            assert v.dtype == np.dtype("S1") and v.getncattr("_Encoding") == "utf-8" and v.filters()["zlib"], name
        assert nc["blank"].dtype is str
    back = open_results(tmp_path)
    for name in ("trip", "trip_origin", "trip_vtype"):
        assert back[name].dtype.kind == "U", name
    assert back["trip_origin"].values.tolist() == ds["trip_origin"].values.tolist()
    assert back.indexes["trip"].tolist() == ids.tolist() and back["trip_vtype"].values[0] == "car"
    assert list(back.coords) == list(ds.coords) and list(back.data_vars) == list(ds.data_vars)
    assert back["blank"].values.tolist() == ["", ""] and back.sizes["u"] == 0
