"""Configs fail loudly: one line naming the file, the key and what was expected."""
from __future__ import annotations

import textwrap

import pytest

from twin.config import ConfigError, config_hash, load_scenario

from conftest import ROOT, run_cli

GOOD = """
name: t
city: {type: corridor, edges: 2}
demand: {type: trips, trips: [{origin: e0, destination: e1}]}
run: {duration_s: 120}
"""


def write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_default_scenario_loads():
    cfg = load_scenario(ROOT / "scenarios" / "default.yaml")
    assert cfg.city.type == "grid" and cfg.demand.type == "od" and cfg.run.duration_s == 3600


def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, GOOD.replace("run: {duration_s: 120}", "run: {duration_s: 120, durations: 5}"))
    with pytest.raises(ConfigError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert str(p) in msg and "run.durations" in msg and "unknown key" in msg and "\n" not in msg


def test_wrong_type_says_what_was_expected(tmp_path):
    p = write(tmp_path, GOOD.replace("duration_s: 120", "duration_s: soon"))
    with pytest.raises(ConfigError, match=r"run\.duration_s: Input should be a valid number.*'soon'"):
        load_scenario(p)


def test_error_in_a_section_file_names_that_file(tmp_path):
    (tmp_path / "run.yaml").write_text("duration_s: -5\n")
    p = write(tmp_path, GOOD.replace("run: {duration_s: 120}", "run: run.yaml"))
    with pytest.raises(ConfigError) as exc:
        load_scenario(p)
    assert str(tmp_path / "run.yaml") in str(exc.value) and "duration_s" in str(exc.value)


def test_missing_section_file(tmp_path):
    p = write(tmp_path, GOOD.replace("run: {duration_s: 120}", "run: nope.yaml"))
    with pytest.raises(ConfigError, match=r"run: file not found: nope\.yaml"):
        load_scenario(p)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario(tmp_path / "absent.yaml")


def test_invalid_yaml_gives_the_line(tmp_path):
    p = write(tmp_path, "name: t\ncity: {type: grid\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_scenario(p)


def test_wrong_discriminator(tmp_path):
    p = write(tmp_path, GOOD.replace("type: corridor", "type: hexagon"))
    with pytest.raises(ConfigError, match=r"city.*hexagon"):
        load_scenario(p)


def test_extends_merges_and_overrides(tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    p = write(tmp_path, "extends: base.yaml\nname: child\nrun: {record_interval_s: 30}\n")
    cfg = load_scenario(p)
    assert cfg.name == "child" and cfg.run.duration_s == 120 and cfg.run.record_interval_s == 30
    assert cfg.city.edges == 2


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_scenario(tmp_path / "a.yaml")


def test_unknown_edge_in_trips(tmp_path):
    from twin.runner import prepare

    cfg = load_scenario(write(tmp_path, GOOD.replace("destination: e1", "destination: e9")))
    with pytest.raises(ConfigError, match=r"demand.trips.0.destination: unknown edge 'e9'"):
        prepare(cfg)


def test_config_hash_changes_with_content(tmp_path):
    a = load_scenario(write(tmp_path, GOOD))
    b = load_scenario(write(tmp_path, GOOD), overrides={"seed": 7})
    assert config_hash(a) == config_hash(load_scenario(write(tmp_path, GOOD)))
    assert config_hash(a) != config_hash(b)


@pytest.mark.parametrize("mutation, needle", [
    (("run: {duration_s: 120}", "run: {duration_s: 120, speed: 3}"), "run.speed: unknown key"),
    (("edges: 2", "edges: two"), "city.edges"),
    (("run: {duration_s: 120}", "run: missing.yaml"), "file not found"),
])
def test_cli_bad_config_exit_2_one_line_no_traceback(tmp_path, mutation, needle):
    p = write(tmp_path, GOOD.replace(*mutation))
    r = run_cli("run", p, "--out", tmp_path / "out", "-q")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_missing_scenario_exit_2(tmp_path):
    r = run_cli("run", tmp_path / "nope.yaml", "-q")
    assert r.returncode == 2 and "scenario file not found" in r.stderr and "Traceback" not in r.stderr
