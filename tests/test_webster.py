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
