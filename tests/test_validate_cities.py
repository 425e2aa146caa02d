"""benchmarks/validate_cities.py: validate over city folders, one table, a JSON last line, failures as rows."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, SHARED


def _bench(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validate_cities.py"), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_quick_mode_on_two_small_cities_and_a_bare_network_folder(tmp_path):
    bare = tmp_path / "cologne-bare"  # a network and a route file, no configuration
    bare.mkdir()
    for name in ("cologne1.net.xml", "cologne1.rou.xml"):
        (bare / name).symlink_to(SHARED / "resco-cologne1" / name)
    r = _bench("--quick", SHARED / "resco-cologne1", SHARED / "resco-ingolstadt1", bare, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["quick"] and [c["city"] for c in res["cities"]] == ["resco-cologne1", "resco-ingolstadt1",
                                                                   "cologne-bare"]
    for row in res["cities"]:
        assert set(row["targets"].values()) <= {"pass", "miss", "n/a"}
        if row.get("error"):  # a city validate cannot run (yet) is a row with its error and no figures
            assert "\n" not in row["error"] and f"| {row['city']} | error: " in r.stdout
            assert row["city"] in res["failed"] and "geh_lt5_share" not in row
            assert set(row["targets"].values()) == {"n/a"}
        else:
            assert 0.0 <= row["geh_lt5_share"] <= 1.0 and row["speedup"] > 0
    bare_row = res["cities"][2]
    assert bare_row["scenario"] == "network cologne1.net.xml + 1 route file(s), 25205-28805 s"
    assert bare_row["trips_completed_native"] > 100 and bare_row["teleports_native"] is not None
    # validated as SUMO runs those files as shipped: every target against that run, the same vehicles beside it
    assert bare_row["reference"] == "shipped" and 0.5 < bare_row["travel_time_ratio"] < 2.0
    assert 0.5 < bare_row["same_vehicles"]["travel_time_ratio"] < 2.0
    assert bare_row["trips_completed_sumo"] > 100 and bare_row["teleports_sumo"] is not None
    assert 0.0 < bare_row["turn_geh_lt5_share"] <= 1.0
    assert "| cologne-bare | " in r.stdout and (tmp_path / "out" / "cologne-bare" / "validation.json").is_file()


def test_a_folder_that_is_not_a_city_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _bench("--quick", tmp_path / "empty", "--out", tmp_path / "out")
    assert r.returncode == 0
    row = json.loads(r.stdout.strip().splitlines()[-1])["cities"][0]
    assert row["error"] == "no .sumocfg, no network with route files and no OSM extract in it"
    r = _bench(tmp_path / "nowhere")
    assert r.returncode == 2 and "not a city folder" in r.stderr and "Traceback" not in r.stderr
