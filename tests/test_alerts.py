"""An abnormal stop of a monitored vehicle raises exactly one alert; stops at allowed places none."""
from __future__ import annotations

from twin.config import ConfigError, load_scenario
from twin.runner import run_scenario

import pytest

SCEN = """name: hazmat
city: {{type: corridor, edges: 3, length_m: 300}}
demand:
  type: trips
  vtypes: {{hazmat_truck: {{vclass: hazmat, length: 12, accel: 1.0, decel: 2.5, max_speed: 25}}}}
  trips:
    - {{origin: e0, destination: e2, depart_s: 0, vtype: hazmat_truck}}
    - {{origin: e0, destination: e2, depart_s: 5, vtype: car}}
run: {{duration_s: 900, record_interval_s: 60, engine: {{teleport_time_s: 2000}}}}
policies: [{{type: incident, edge: e1, lanes: [0], start_s: 10, duration_s: 500}}]
monitoring: {{vtypes: [hazmat_truck], probe_interval_s: 10, max_stop_s: 120, allowed_edges: [{allowed}]}}
"""


def _run(tmp_path, allowed=""):
    p = tmp_path / "s.yaml"
    p.write_text(SCEN.format(allowed=allowed))
    return run_scenario(load_scenario(p)).dataset


def test_abnormal_stop_raises_exactly_one_alert(tmp_path):
    ds = _run(tmp_path)
    assert ds.attrs["alerts"] == 1
    assert ds["alert_vehicle"].values.tolist() == ["t0"] and ds["alert_edge"].values.tolist() == ["e0"]  # queued before the blocked lane
    since, at = float(ds["alert_stopped_since_s"][0]), float(ds["alert_time_s"][0])
    assert at - since >= 120 and at - since < 130
    assert set(ds["probe_vehicle"].values) == {"t0"}  # probe traces of the monitored vehicle only


def test_no_alert_at_an_allowed_place(tmp_path):
    ds = _run(tmp_path, allowed="e0")
    assert ds.attrs["alerts"] == 0


def test_monitoring_unknown_type(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SCEN.format(allowed="").replace("vtypes: [hazmat_truck]", "vtypes: [tanker]"))
    with pytest.raises(ConfigError, match="unknown vehicle type 'tanker'"):
        run_scenario(load_scenario(p))
