"""Signal greens timed from the routed demand (twin/demand/webster.py): Webster's cycle and splits."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_trips
from twin.city import grid_city
from pydantic import ValidationError

from twin.config.models import ScenarioConfig
from twin.demand import route_demand
from twin.demand.webster import webster_plans


@pytest.fixture(scope="module")
def city():
    return grid_city(6, 6, arterial_every=3)  # signals where the arterials cross (two-phase, 27 s + 3 s)


def _demand(city, north: int, east: int):
    """``north`` trips northbound and ``east`` eastbound along the arterials through n3_3, evenly over 07-08 h."""
    specs = [("n3_0-n3_1", "n3_5-n3_6", 7 * 3600.0 + 3600.0 * k / north) for k in range(north)]
    specs += [("n0_3-n1_3", "n5_3-n6_3", 7 * 3600.0 + 3600.0 * k / east) for k in range(east)]
    return route_demand(city, make_trips(city, specs))


def _program(city, tls):
    k = city.tls_index[tls]
    return k, slice(int(city.tls_phase_offsets[k]), int(city.tls_phase_offsets[k + 1]))


def test_webster_cycle_and_splits_follow_the_critical_flow_ratios(city):
    timing = webster_plans(city, _demand(city, 900, 300), hour_begin_s=7 * 3600.0)
    k, ph = _program(city, "n3_3")
    assert timing.timed[k] and not timing.oversaturated[k]
    # the routed flows: 900 veh/h on the northbound arterial's 2 lanes, 300 on the eastbound's (the peak-hour
    # factor from the 15-min counts scales both); their critical flow ratios y = q / (lanes * s)
    phf = timing.peak_hour_factor[k]
    assert timing.flow_vph[k] == pytest.approx(1200, abs=60) and 0.8 < phf <= 1.0
    y_ns, y_ew = 900 / phf / (2 * 1800.0), 300 / phf / (2 * 1800.0)
    assert timing.flow_ratio_sum[k] == pytest.approx(y_ns + y_ew, rel=0.06)
    lost = 6.0  # the two 3-s change intervals
    assert timing.lost_time_s[k] == lost
    Y = timing.flow_ratio_sum[k]
    c0 = (1.5 * lost + 5.0) / (1.0 - Y)  # Webster's optimum cycle
    assert timing.cycle_s[k] == pytest.approx(max(c0, 30.0), rel=1e-9)
    d = timing.phase_duration[ph]  # green NS (the first stage holds the north-south links), 3, green EW, 3
    assert d[1] == d[3] == 3.0
    assert d[0] + d[2] == pytest.approx(timing.cycle_s[k] - lost)
    assert d[0] / d[2] == pytest.approx(y_ns / y_ew, rel=0.1)  # greens in proportion to the critical ratios
    # a signal no routed trip passes keeps its program; the re-timed city runs the new greens
    k0, ph0 = _program(city, "n0_3")
    assert not timing.timed[k0] and np.array_equal(timing.phase_duration[ph0], city.phase_duration[ph0])
    timed = timing.apply(city)
    assert np.array_equal(timed.phase_duration, timing.phase_duration)
    assert np.array_equal(timed.phase_min_dur, timing.phase_duration) and timed.phase_state is not None


def test_webster_heavier_flows_give_a_longer_cycle_up_to_the_bound(city):
    light = webster_plans(city, _demand(city, 400, 400))
    heavy = webster_plans(city, _demand(city, 1500, 1500))
    over = webster_plans(city, _demand(city, 3500, 3500), cycle_max_s=120.0)
    k, ph = _program(city, "n3_3")
    assert light.cycle_s[k] < heavy.cycle_s[k] < 150.0
    assert light.hour_begin_s[k] == heavy.hour_begin_s[k] == 7 * 3600.0  # each signal's busiest hour
    assert over.oversaturated[k] and over.cycle_s[k] == pytest.approx(120.0)
    d = over.phase_duration[ph]
    assert d[0] == pytest.approx(d[2], rel=0.05)  # equal flows, equal greens
    assert over.summary()["oversaturated"] == 1


def test_scenario_signal_plans_option(tmp_path):
    from twin.runner import prepare

    base = {"name": "w", "seed": 1, "city": {"type": "grid", "blocks_x": 6, "blocks_y": 6},
            "demand": {"type": "od", "trips": 1500, "end_s": 3600.0}, "run": {"duration_s": 600}}
    city0, _ = prepare(ScenarioConfig.model_validate(base))
    city1, _ = prepare(ScenarioConfig.model_validate({**base, "signal_plans": {"method": "webster", "min_green_s": 6}}))
    assert city1.phase_duration.shape == city0.phase_duration.shape
    assert not np.array_equal(city1.phase_duration, city0.phase_duration)
    assert np.array_equal(city1.phase_state, city0.phase_state)  # only the greens change
    green = ~np.any(city1.phase_state == 1, axis=1)
    assert city1.phase_duration[green].min() >= 6.0
    with pytest.raises(ValidationError, match="cycle_min_s"):
        ScenarioConfig.model_validate({**base, "signal_plans": {"cycle_min_s": 200}})


# time-of-day plans (signal_plans: {periods}): northbound trips in the first hour, eastbound in the second
def _two_hours(city, north: int = 1200, east: int = 1200):
    specs = [("n3_0-n3_1", "n3_5-n3_6", 3600.0 * k / north) for k in range(north)]
    specs += [("n0_3-n1_3", "n5_3-n6_3", 3600.0 + 3600.0 * k / east) for k in range(east)]
    return route_demand(city, make_trips(city, specs))


def test_period_plans_follow_each_periods_flows(city):
    from twin.demand.webster import period_plans

    demand = _two_hours(city)
    plans = period_plans(city, demand, [0.0, 3600.0])
    k, ph = _program(city, "n3_3")
    morning, later = (t.phase_duration[ph] for t in plans.timings)
    assert plans.timings[0].hour_begin_s[k] == 0.0 and plans.timings[1].hour_begin_s[k] >= 3600.0
    assert morning[0] > 2 * morning[2] and later[2] > 2 * later[0]  # the north-south green, then the east-west
    timed = plans.apply(city)
    assert np.array_equal(timed.phase_duration, plans.timings[0].phase_duration)  # the first period's plans
    assert city.tls_ids[k] in [city.tls_ids[i] for i in plans.switching(city)]
    sw = [s for s in timed.attrs["tls_switches"] if s[2] == "n3_3"]
    assert sw == [[3600.0, 0.0, "n3_3", "webster_1"]]
    prog = timed.attrs["tls_programs"]["n3_3"]["webster_1"]
    assert [d for d, _ in prog["phases"]] == later.tolist()
    # a signal no trip passes has one plan and does not switch
    assert "n0_3" not in timed.attrs["tls_programs"]


def test_period_plans_switch_at_the_period_start_in_a_native_run(city):
    from twin.demand.webster import period_plans
    from twin.engines.native import NativeEngine

    demand = _two_hours(city)
    plans = period_plans(city, demand, [0.0, 3600.0])
    timed = plans.apply(city)
    k, ph = _program(city, "n3_3")
    eng = NativeEngine()
    eng.start(timed, demand, seed=1)
    trace = []
    try:
        eng.advance(3000.0)
        for t in range(3001, 4201):
            eng.advance(float(t))
            trace.append(int(eng.observe().signal_phase[k]) - int(city.tls_phase_offsets[k]))
    finally:
        eng.close()
    trace = np.array(trace)
    starts = [i for i in range(1, trace.size) if trace[i] != trace[i - 1]]
    greens = [(3001 + i, trace[i], j - i) for i, j in zip(starts[:-1], starts[1:]) if trace[i] in (0, 2)]
    before = [(p, n) for t, p, n in greens if t + n <= 3600]
    after = [(p, n) for t, p, n in greens if t > 3600]
    for durs, seen in ((plans.timings[0].phase_duration[ph], before), (plans.timings[1].phase_duration[ph], after)):
        assert seen and all(abs(n - durs[p]) <= 1.0 for p, n in seen), (durs, seen)
    green = lambda seen, p: max(n for q, n in seen if q == p)  # noqa: E731
    assert green(before, 0) > 2 * green(before, 2) and green(after, 2) > 2 * green(after, 0)  # NS, then EW


def test_one_period_is_todays_plan_bit_for_bit(city):
    from twin.config.models import SignalPlansConfig
    from twin.demand.webster import period_plans, timing_from_config

    demand = _two_hours(city, 900, 600)
    today = webster_plans(city, demand)
    for plans in (period_plans(city, demand, [0.0]),
                  timing_from_config(city, demand, SignalPlansConfig(periods=[0])),
                  timing_from_config(city, demand, SignalPlansConfig())):
        (one,) = plans.timings
        for f in ("phase_duration", "timed", "hour_begin_s", "cycle_s", "flow_ratio_sum"):
            assert np.array_equal(getattr(one, f), getattr(today, f)), f
        assert plans.apply(city).attrs == city.attrs and plans.summary() == today.summary()


@pytest.mark.parametrize("periods, message", [
    ([6, 10], "the first period starts at hour 0"), ([0, 10, 6], "from hour 10 to 6 is shorter than an hour"),
    ([0, 0.5], "shorter than an hour"), ([0, 6.1], "quarter hours"), ([], "starts at hour 0")])
def test_bad_periods_are_one_clear_error(periods, message):
    from twin.config.models import SignalPlansConfig

    with pytest.raises(ValidationError, match=message):
        SignalPlansConfig(periods=periods)
    with pytest.raises(ValidationError, match="exclude each other"):
        SignalPlansConfig(periods=[0, 6], hour_begin_s=3600.0)
