"""Data assimilation of loop counts into the live twin's demand (twin.live.assimilation)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from twin.config.assimilation import AssimilationConfig
from twin.live.assimilation import expand_reserve, kalman_update, route_incidence, route_progress, trip_groups

# four crossing flows on a 3 × 3-block grid, one loop on the middle edge of each
FLOWS = [("n0_0-n1_0", "n2_0-n3_0"), ("n3_1-n2_1", "n1_1-n0_1"), ("n1_0-n1_1", "n1_2-n1_3"),
         ("n2_3-n2_2", "n2_1-n2_0")]
LOOPS = ["n1_0-n2_0", "n2_1-n1_1", "n1_1-n1_2", "n2_2-n2_1"]


def small_scenario(factors, assimilation=None, n=150, end=1200.0, duration=1500.0):
    from twin.config.models import ScenarioConfig

    trips = [{"origin": o, "destination": d, "count": int(round(n * f)), "headway_s": end / round(n * f)}
             for (o, d), f in zip(FLOWS, factors)]
    return ScenarioConfig.model_validate({
        "name": "small-twin", "seed": 1, "city": {"type": "grid", "blocks_x": 3, "blocks_y": 3},
        "demand": {"type": "trips", "trips": trips}, "run": {"duration_s": duration, "record_interval_s": 60},
        "sensors": {"loops": [{"id": e, "lane": f"{e}_0", "pos_m": 100} for e in LOOPS]},
        "assimilation": assimilation})


# ------------------------------------------------------------------ unit
def test_kalman_update_scalar_matches_the_formula():
    m, P = np.array([1.0]), np.array([[0.09]])
    H, y, r = np.array([[10.0]]), np.array([15.0]), np.array([10.0])
    m1, P1, innov = kalman_update(m, P, H, y, r)
    K = 0.09 * 10 / (0.09 * 100 + 10)
    assert innov[0] == pytest.approx(5.0)
    assert m1[0] == pytest.approx(1.0 + K * 5.0)
    assert P1[0, 0] == pytest.approx((1 - K * 10) * 0.09)
    # clipped to the bounds; no observation = prediction only (P grows by the process variance)
    assert kalman_update(m, P, H, np.array([500.0]), r, hi=2.0)[0][0] == 2.0
    m2, P2, _ = kalman_update(m, P, np.zeros((0, 1)), np.zeros(0), np.zeros(0), process_var=0.01)
    assert m2[0] == 1.0 and P2[0, 0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="variances"):
        kalman_update(m, P, H, y, np.array([0.0]))


def test_kalman_splits_a_shared_count_by_what_else_is_seen():
    # station 0 sees groups 0 and 1, station 1 only group 1 (which is right): the excess goes to group 0
    m, P = np.ones(2), np.eye(2) * 0.09
    H = np.array([[10.0, 10.0], [0.0, 20.0]])
    m1, _, _ = kalman_update(m, P, H, np.array([26.0, 20.0]), np.array([2.0, 2.0]))
    assert m1[0] > 1.4 and abs(m1[1] - 1.0) < 0.1


def test_expand_reserve_keeps_the_prior_and_ranks_it_first():
    from twin.city import corridor_city
    from twin.demand import route_demand

    from conftest import make_trips

    city = corridor_city(3, 300.0)
    demand = route_demand(city, make_trips(city, [("e0", "e2", 10.0 * k) for k in range(50)]))
    full, rank, src = expand_reserve(demand, 2.5, np.random.default_rng(0), jitter_s=30.0)
    n = len(full.trips)
    assert 100 <= n <= 150 and np.all(np.diff(full.trips.depart) >= 0)
    prior = rank < 1 / 2.5
    assert prior.sum() == 50 and set(np.array(full.trips.ids)[prior]) == set(demand.trips.ids)
    assert all("~r" in i for i in np.array(full.trips.ids)[~prior])
    assert np.all(full.trips.depart[~prior] >= 1.0)
    assert all(np.array_equal(full.route(i), demand.route(int(src[i]))) for i in range(n))
    with pytest.raises(ValueError, match=">= 1"):
        expand_reserve(demand, 0.5, np.random.default_rng(0))


def test_groups_incidence_and_route_progress():
    from twin.city import grid_city
    from twin.demand import route_demand

    from conftest import make_trips

    city = grid_city(3, 3)
    demand = route_demand(city, make_trips(city, [(o, d, 0.0) for o, d in FLOWS] * 2))
    g, names = trip_groups(city, demand, "route")
    assert len(names) == 4 and np.array_equal(g[:4], g[4:])
    assert sorted(trip_groups(city, demand, "origin")[1]) == sorted({o for o, _ in FLOWS})
    assert trip_groups(city, demand, "all")[1] == ["all"]
    with pytest.raises(ValueError, match="grouping"):
        trip_groups(city, demand, "zone")
    loops = [(e, int(city.edge_lane_start[city.edge_index[e]]), 100.0) for e in LOOPS]
    inc = route_incidence(city, demand, loops)
    assert inc.trip.size == 8 and np.all(inc.route_pos == 1)  # each flow's loop is its middle edge
    assert [inc.station_edges[s] for s in inc.station[:4]] == LOOPS
    # vehicle 0 on its third edge, vehicle 1 on its first
    e = np.array([city.edge_index[FLOWS[0][1]], city.edge_index[FLOWS[1][0]]])
    prog = route_progress(demand.route_offsets, demand.route_edges.astype(np.int64), np.array([0, 1]), e,
                          np.zeros(2, dtype=np.int64))
    assert prog.tolist() == [2, 0]


def test_bad_assimilation_config_is_one_clear_error(tmp_path):
    from twin.config import ConfigError, load_scenario

    with pytest.raises(ValidationError, match="gain"):
        AssimilationConfig.model_validate({"gain": 0.5})
    with pytest.raises(ValidationError, match="min_multiplier"):
        AssimilationConfig(min_multiplier=1.2)
    with pytest.raises(ValidationError, match="reserve_factor"):
        AssimilationConfig(reserve_factor=0.5)
    for share in (0.0, 1.5):  # a share of the window: (0, 1]
        with pytest.raises(ValidationError, match="jam_loss_share"):
            AssimilationConfig(jam_loss_share=share)
    (tmp_path / "s.yaml").write_text("name: s\ncity: {type: corridor}\ndemand: {type: trips, trips: []}\n"
                                     "assimilation: {interval_s: 300, reserve: 2}\n")
    with pytest.raises(ConfigError, match="reserve"):
        load_scenario(tmp_path / "s.yaml")


def test_interval_must_fit_the_recording(tmp_path):
    from twin.config import ConfigError
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    cfg = small_scenario([1, 1, 1, 1], {"interval_s": 90})
    city, demand = prepare(cfg)
    with pytest.raises(ConfigError, match="multiple of run.record_interval_s"):
        LiveTwin(cfg, city, demand, tmp_path)


# ----------------------------------------------------- twin experiment
def _run_twin(cfg, feed, out):
    from twin.live.feed import read_feed
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, out, speed=1e6)
    return twin, twin.run(read_feed(feed))


def _truth_feed(tmp_path):
    """The truth (the flows as given) run natively, its loop counts ``(time, sensor)`` and written as a feed."""
    from twin.runner import run_scenario

    truth_ds = run_scenario(small_scenario([1, 1, 1, 1])).dataset
    truth = truth_ds["sensor_count"].values
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps({"sensor": str(s), "time": float(t), "count": float(c)}) + "\n"
                            for t, row in zip(truth_ds["time"].values, truth)
                            for s, c in zip(truth_ds["sensor"].values, row)))
    return truth, feed


def _rmse_5min(ds, truth):
    """RMSE of counts per 5 minutes over the first 25 min [veh] (per-minute counts follow the signal cycle)."""
    return float(np.sqrt(np.mean((ds["sensor_count"].values[:25].reshape(5, 5, -1).sum(1)
                                  - truth[:25].reshape(5, 5, -1).sum(1)) ** 2)))


def test_small_twin_experiment_halves_the_count_error(tmp_path):
    truth, feed = _truth_feed(tmp_path)
    wrong = [0.7, 1.3, 0.75, 1.25]  # the twin's demand per flow, against the truth's
    frozen = {"interval_s": 120, "groups": "route", "prior_std": 0.0, "process_std": 0.0}
    _, open_loop = _run_twin(small_scenario(wrong, frozen), feed, tmp_path / "open")
    # the prior says how far off the demand may be: here up to 1/0.7 = 1.43
    twin, assim = _run_twin(small_scenario(wrong, {"interval_s": 120, "groups": "route", "prior_std": 0.4}), feed,
                            tmp_path / "assim")

    # open loop runs exactly the prior demand: every reserve trip is cancelled, no prior trip is
    ol = open_loop.dataset
    reserve = np.array(["~r" in str(i) for i in ol["trip"].values])
    assert np.all(ol["trip_state"].values[reserve] == 4) and np.all(ol["trip_state"].values[~reserve] != 4)
    e_open, e_assim = _rmse_5min(ol, truth), _rmse_5min(assim.dataset, truth)
    print(f"count RMSE per 5 min: open loop {e_open:.2f}, assimilated {e_assim:.2f} veh")
    assert e_assim <= 0.5 * e_open, (e_open, e_assim)
    # the multipliers moved the right way: up where the twin had too little demand, down where too much
    m = assim.dataset["demand_multiplier"].values[-1]
    assert np.all(np.sign(m - 1.0) == np.sign(1.0 / np.array(wrong) - 1.0))
    assert assim.dataset.sizes["assimilation_time"] == 12
    st = json.loads((tmp_path / "assim" / "state.json").read_text())["assimilation"]
    assert st["updates"] == 12 and st["last_update_s"] == 1440.0 and len(st["multipliers"]) == 4
    assert st["trips_admitted"] > 0 and st["trips_cancelled"] > 0
    assert 0.0 <= st["last"]["held_share"] < 0.5  # the grid's flows run freely: little is held as queued
    assert assim.manifest["assimilation"]["method"] == "kalman-demand-multipliers"


def test_initial_multipliers_start_the_twin_from_a_known_estimate(tmp_path):
    from twin.config import ConfigError
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    truth, feed = _truth_feed(tmp_path)
    wrong = [0.7, 1.3, 0.75, 1.25]
    frozen = {"interval_s": 120, "groups": "origin", "prior_std": 0.0, "process_std": 0.0}
    known = {o: round(1.0 / f, 3) for (o, _), f in zip(FLOWS, wrong)}  # the true multipliers
    _, open_loop = _run_twin(small_scenario(wrong, frozen), feed, tmp_path / "open")
    twin, started = _run_twin(small_scenario(wrong, {**frozen, "initial_multipliers": known}), feed,
                              tmp_path / "known")
    ds = started.dataset
    groups = [str(g) for g in ds["demand_group"].values]
    assert np.allclose(ds["demand_multiplier"].values, [[known[g] for g in groups]] * 12)  # frozen: they hold
    # the trips in force follow them: per origin about the truth's 150 trips (reserve copies drawn by rank)
    state = dict(zip(ds["trip"].values.astype(str), ds["trip_state"].values))
    origin = [twin.city.edge_ids[int(e)] for e in twin.demand.trips.origin]
    for o, _ in FLOWS:
        kept = sum(state[t] != 4 for t, ot in zip(twin.demand.trips.ids, origin) if ot == o)
        assert 120 <= kept <= 180, (o, kept)
    e_open, e_known = _rmse_5min(open_loop.dataset, truth), _rmse_5min(ds, truth)
    assert e_known <= 0.5 * e_open, (e_open, e_known)
    # a group the demand does not have, or a multiplier the reserves cannot give, is one clear error
    cfg = small_scenario(wrong, {**frozen, "initial_multipliers": {"nowhere": 1.2}})
    city, demand = prepare(cfg)
    with pytest.raises(ConfigError, match="unknown origin groups.*'nowhere'"):
        LiveTwin(cfg, city, demand, tmp_path / "bad")
    with pytest.raises(ValidationError, match="outside"):
        AssimilationConfig(initial_multipliers={"n0_0-n1_0": 3.0})


def test_inflow_nudging_alone_pulls_the_counts_towards_the_feed(tmp_path):
    """``method: kalman+inflow`` with the multipliers frozen: only the inflow nudging acts, and it must."""
    from twin.config import ConfigError
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    truth, feed = _truth_feed(tmp_path)
    wrong = [0.7, 1.3, 0.75, 1.25]
    frozen = {"interval_s": 120, "groups": "route", "prior_std": 0.0, "process_std": 0.0}
    _, open_loop = _run_twin(small_scenario(wrong, frozen), feed, tmp_path / "open")
    twin, nudged = _run_twin(small_scenario(wrong, {**frozen, "method": "kalman+inflow", "inflow_interval_s": 60}),
                             feed, tmp_path / "nudged")

    e_open, e_nudged = _rmse_5min(open_loop.dataset, truth), _rmse_5min(nudged.dataset, truth)
    print(f"count RMSE per 5 min: open loop {e_open:.2f}, inflow nudging only {e_nudged:.2f} veh")
    assert e_nudged <= 0.85 * e_open, (e_open, e_nudged)
    # the multipliers stayed at 1: the gain is the nudging's
    assert np.allclose(nudged.dataset["demand_multiplier"].values, 1.0)
    st = twin.assimilator.state()
    assert st["method"] == "kalman-demand-multipliers+inflow-nudging" and st["inflow_nudges"] == 25
    assert st["inflow_trips_admitted"] > 0 and st["inflow_trips_cancelled"] > 0
    assert st["trips_admitted"] == st["trips_cancelled"] == 0
    # the nudging interval must fit the recording too
    cfg = small_scenario([1, 1, 1, 1], {"interval_s": 120, "method": "kalman+inflow", "inflow_interval_s": 90})
    city, demand = prepare(cfg)
    with pytest.raises(ConfigError, match="inflow_interval_s"):
        LiveTwin(cfg, city, demand, tmp_path / "bad")


def test_dispersion_grows_only_with_unexplained_scatter():
    from twin.live.assimilation import adapt_dispersion

    H, P = np.array([[10.0], [10.0]]), np.array([[0.01]])
    base = np.array([10.0, 10.0])
    # innovations the prior uncertainty explains (H P Hᵀ = 1 veh²): stays at the floor
    assert adapt_dispersion(2.0, np.array([1.0, -1.0]), base, H, P, floor=2.0) == 2.0
    # scatter of ±10 vehicles on counts of 10: λ̂ = 9.9, blended half-way
    assert adapt_dispersion(2.0, np.array([10.0, -10.0]), base, H, P, floor=2.0) == pytest.approx(5.95)
    # per station: only the station whose counts the demand does not explain gets a larger dispersion
    per = adapt_dispersion(np.array([2.0, 2.0]), np.array([1.0, -10.0]), base, H, P, floor=2.0, weight=0.3)
    assert per[0] == 2.0 and per[1] == pytest.approx(0.7 * 2.0 + 0.3 * 9.9)


def test_a_group_queued_at_its_origin_is_held():
    from twin.city import corridor_city
    from twin.demand import route_demand
    from twin.engines.base import TripTable
    from twin.live.assimilation import DemandAssimilator

    from conftest import make_trips

    city = corridor_city(3, 300.0)
    demand = route_demand(city, make_trips(city, [("e0", "e2", 10.0 * k) for k in range(20)]
                                           + [("e1", "e2", 10.0 * k) for k in range(20)]).sorted_by_depart())
    groups, names = trip_groups(city, demand, "origin")
    loops = [("l", int(city.edge_lane_start[city.edge_index["e2"]]), 10.0)]
    asm = DemandAssimilator(AssimilationConfig(), demand, np.zeros(40), groups, names,
                            route_incidence(city, demand, loops))
    n = len(demand.trips)
    nan = np.full(n, np.nan)
    # e0's trips entered 2 minutes late (a queue at the origin), e1's on time
    late = np.where(groups == names.index("e0"), 120.0, 0.0)
    table = TripTable(demand.trips.depart, demand.trips.depart + late, nan, nan, nan, nan, nan,
                      np.zeros(n, dtype=np.int32), np.full(n, 2, dtype=np.int8))
    rho = asm.responsiveness(300.0, 300.0, table)
    assert rho.shape == (1, 2) and rho[0, names.index("e0")] == 0.0 and rho[0, names.index("e1")] == 1.0


def test_a_group_held_up_on_the_way_is_held():
    """Running vehicles whose time loss grew by more than jam_loss_share of the window are in a queue: their
    group's counts do not follow its multiplier (else a queue in the twin would call for more demand)."""
    from twin.city import corridor_city
    from twin.demand import route_demand
    from twin.engines.base import TripTable
    from twin.live.assimilation import DemandAssimilator

    from conftest import make_trips

    city = corridor_city(3, 300.0)
    demand = route_demand(city, make_trips(city, [("e0", "e2", 10.0 * k) for k in range(20)]
                                           + [("e1", "e2", 10.0 * k) for k in range(20)]).sorted_by_depart())
    groups, names = trip_groups(city, demand, "origin")
    loops = [("l", int(city.edge_lane_start[city.edge_index["e2"]]), 10.0)]
    n = len(demand.trips)
    nan = np.full(n, np.nan)
    e0 = groups == names.index("e0")
    running = np.full(n, 2, dtype=np.int8)
    running[np.flatnonzero(e0)[::2]] = 3  # half of e0's trips have arrived: only the running ones count

    def table(loss):
        return TripTable(demand.trips.depart, demand.trips.depart, nan, nan, nan, loss, nan,
                         np.zeros(n, dtype=np.int32), running)

    for share, expect_e0 in ((0.25, 0.0), (1.0, 1.0)):  # 1 turns the rule off
        asm = DemandAssimilator(AssimilationConfig(jam_loss_share=share), demand, np.zeros(n), groups, names,
                                route_incidence(city, demand, loops))
        # over a 300 s window e0's vehicles lost 200 s (a queue), e1's 60 s (a red light)
        loss = np.where(e0, 200.0, 60.0)
        rho = asm.responsiveness(300.0, 300.0, table(loss))
        assert rho[0, names.index("e0")] == expect_e0 and rho[0, names.index("e1")] == 1.0
        # the next window the queue has cleared: time loss is counted from the last update on
        rho = asm.responsiveness(600.0, 300.0, table(loss + 30.0))
        assert rho.tolist() == [[1.0, 1.0]]


def test_the_held_share_is_per_station_among_the_vehicles_whose_route_passes_it():
    """One origin, two routes: vehicles of the long one are held up; the station only the long route passes
    does not follow the origin's multiplier, the station both pass follows it for the free half."""
    from twin.city import corridor_city
    from twin.demand import route_demand
    from twin.engines.base import TripTable
    from twin.live.assimilation import DemandAssimilator

    from conftest import make_trips

    city = corridor_city(3, 300.0)
    demand = route_demand(city, make_trips(city, [("e0", "e1", 10.0 * k) for k in range(10)]
                                           + [("e0", "e2", 10.0 * k) for k in range(10)]).sorted_by_depart())
    groups, names = trip_groups(city, demand, "origin")
    loops = [(f"l{e}", int(city.edge_lane_start[city.edge_index[e]]), 10.0) for e in ("e1", "e2")]
    inc = route_incidence(city, demand, loops)
    n = len(demand.trips)
    nan = np.full(n, np.nan)
    long_route = np.array([demand.route(i).size == 3 for i in range(n)])
    table = TripTable(demand.trips.depart, demand.trips.depart, nan, nan, nan, np.where(long_route, 200.0, 0.0),
                      nan, np.zeros(n, dtype=np.int32), np.full(n, 2, dtype=np.int8))
    asm = DemandAssimilator(AssimilationConfig(), demand, np.zeros(n), groups, names, inc)
    rho = asm.responsiveness(300.0, 300.0, table)
    e1, e2 = inc.station_edges.index("e1"), inc.station_edges.index("e2")
    assert rho[e1, 0] == pytest.approx(0.5) and rho[e2, 0] == 0.0


def test_live_cli_reports_the_assimilation(tmp_path):
    from conftest import run_cli
    from twin.runner import run_scenario

    truth = run_scenario(small_scenario([1, 1, 1, 1], duration=600.0)).dataset
    feed = tmp_path / "feed.csv"
    feed.write_text("sensor,time,count\n" + "".join(
        f"{s},{t:g},{c:g}\n" for t, row in zip(truth["time"].values, truth["sensor_count"].values)
        for s, c in zip(truth["sensor"].values, row)))
    cfg = small_scenario([0.7, 1.3, 0.75, 1.25], {"interval_s": 120, "groups": "route"}, duration=600.0)
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    r = run_cli("live", tmp_path / "s.yaml", "--feed", feed, "--speed", "1000000", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "assimilation: 5 updates every 120 s, 4 route groups" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text((tmp_path / "s.yaml").read_text().replace("interval_s: 120", "interval_s: 90"))
    r = run_cli("live", bad, "--feed", feed, "--out", tmp_path / "out2")
    assert r.returncode == 2 and "multiple of run.record_interval_s" in r.stderr and "Traceback" not in r.stderr
