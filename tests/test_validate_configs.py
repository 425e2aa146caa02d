"""`validate` on any SUMO configuration: begin != 0, no additional files, and no comparison when a run fails."""
from __future__ import annotations

import json

import pytest

from conftest import SHARED, run_cli

COLOGNE = SHARED / "resco-cologne1"


def cologne_cfg(tmp_path, *, additional: str | None = None, end: int = 26100):
    """RESCO Cologne 1 (begin 25200, no additional files), shortened to ``end``."""
    add = f'<additional-files value="{additional}"/>' if additional else ""
    p = tmp_path / "cologne1.sumocfg"
    p.write_text(f'<configuration><input><net-file value="{COLOGNE / "cologne1.net.xml"}"/>'
                 f'<route-files value="{COLOGNE / "cologne1.rou.xml"}"/>{add}</input>'
                 f'<time><begin value="25200"/><end value="{end}"/></time></configuration>')
    return p


def test_begin_25200_without_additional_files_validates(tmp_path):
    r = run_cli("validate", cologne_cfg(tmp_path), "--out", tmp_path / "v", "-q", timeout=600)
    assert r.returncode == 0, r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["comparison"] and v["duration_s"] == 900
    sh = v["shipped"]
    # the shipped run covers the same window of SUMO's clock: the same trips complete in both
    assert sh["trips_compared"] > 300 and 0.8 < sh["mean_travel_time_ratio"] < 1.25, sh
    assert sh["edges_compared"] > 5 and 0 <= sh["geh_lt5_share"] <= 1
    assert v["headline"]["mean_travel_time_ratio"]["reference"] == "SUMO as shipped"
    md = (tmp_path / "v" / "validation.md").read_text()
    assert "against SUMO as shipped" in md and "against SUMO with twin's vehicle types" in md


def test_validate_with_a_sumo_that_dies_says_there_is_no_comparison(tmp_path):
    bad = tmp_path / "bad.add.xml"  # twin reads it (nothing it uses); SUMO stops on the unknown lane
    bad.write_text('<additional><busStop id="b" lane="no_such_edge_0" startPos="0" endPos="10"/></additional>')
    r = run_cli("validate", cologne_cfg(tmp_path, additional=str(bad)), "--out", tmp_path / "v", "-q", timeout=600)
    assert r.returncode == 1
    assert "no comparison" in r.stderr and "as shipped failed" in r.stderr and "Traceback" not in r.stderr
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["comparison"] is False and not v["targets_met"] and "geh_lt5_share" not in v
    assert "No comparison" in (tmp_path / "v" / "validation.md").read_text()
