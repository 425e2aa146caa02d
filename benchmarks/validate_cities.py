#!/usr/bin/env python3
"""``run_sim.py validate`` on every real city: one table, and a JSON last line.

    python benchmarks/validate_cities.py                      # every city in ../shared/data
    python benchmarks/validate_cities.py CITY_DIR [CITY_DIR…] # any city folder, checked the same way
    python benchmarks/validate_cities.py --quick              # 10 simulated minutes per city (OSM: 300 trips)

A city folder holds one of:

- a SUMO configuration (``run.sumocfg``, else the only ``*.sumocfg``): validated as it is, so
  the travel-time ratio is against SUMO on that configuration as shipped;
- a network (``*.net.xml[.gz]``) and route/flow files (``*.rou.xml[.gz]``): a SUMO configuration is
  written for them, one hour from the earliest departure or flow begin (stretched over the counted
  period where the folder has real counts), and validated as shipped;
- an OpenStreetMap extract (``*.osm[.xml][.gz]``): imported with ``run_sim.py import`` and its
  default demand (2,000 OD trips).

Optional data in the folder are used when present: turning counts (an XML file whose root is
``<data>`` with ``<edgeRelation>`` elements) for turn-level GEH against the observed counts, and
real edge counts (``measurements.xml`` of Cadyts, anywhere below the folder) for GEH against them.

Each city runs in its own process (``run_sim.py validate``, with a time limit); a city that
fails is a row with its error, never a traceback. Per city, against SUMO as shipped where the city
is a configuration (else against SUMO with twin's vehicle types, marked "same vehicles"): GEH < 5
share of hourly edge counts, the mean travel-time ratio, trips completed and teleports in each
engine; beside them the same figures against SUMO with twin's vehicle types on the same trips;
GEH < 5 of the induction-loop counts where the city has detectors (native against SUMO), turn-level
GEH < 5 (native against SUMO, and against observed turning counts where there are some), the
speed-up, and the issue's targets (:data:`twin.validate.TARGETS`, as ``validate`` checks them on
the headline reference) as pass/miss:

- GEH < 5 on at least 90 % of hourly edge counts;
- mean travel time within ±10 %;
- trips completed within 3 %;
- teleports at most SUMO's + 1 % of the trips.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
QUICK_S = 600.0
QUICK_OSM_TRIPS = 300


# ----------------------------------------------------------------- the cities
def find_scenario(folder: Path, work: Path, quick: bool) -> tuple[Path, str]:
    """The scenario to validate for a city folder and how it was found (raises ValueError if none)."""
    cfgs = sorted(folder.glob("*.sumocfg"))
    if cfgs:
        cfg = folder / "run.sumocfg" if (folder / "run.sumocfg").is_file() else cfgs[0]
        return cfg, f"configuration {cfg.name}"
    nets = sorted(p for p in folder.glob("*.net.xml*") if p.name.endswith((".net.xml", ".net.xml.gz")))
    routes = sorted(p for p in folder.glob("*.rou.xml*") if p.name.endswith((".rou.xml", ".rou.xml.gz")))
    if nets and routes:
        begin = earliest_begin(routes)
        end = begin + 3600.0
        counts = edge_count_file(folder)
        if counts is not None:  # the run covers the counted period
            b, e = count_span(counts)
            begin, end = min(begin, b), max(end, e)
        scen = work / f"{folder.name}.sumocfg"  # the configuration SUMO would run on these files, as shipped
        work.mkdir(parents=True, exist_ok=True)
        files = ",".join(str(r) for r in routes)
        scen.write_text(f'<configuration><input><net-file value="{nets[0]}"/><route-files value="{files}"/>'
                        f'</input><time><begin value="{begin:g}"/><end value="{end:g}"/></time></configuration>\n',
                        encoding="utf-8")
        return scen, f"network {nets[0].name} + {len(routes)} route file(s), {begin:g}-{end:g} s"
    osm = sorted(p for p in folder.iterdir() if re.search(r"\.osm(\.xml)?(\.gz)?$", p.name))
    if osm:
        out = work / "import"
        trips = QUICK_OSM_TRIPS if quick else 2000
        r = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), "import", str(osm[0]), "--out", str(out),
                            "--trips", str(trips)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise ValueError(f"import of {osm[0].name} failed: {last_line(r.stderr or r.stdout)}")
        return out / "scenario.yaml", f"OSM {osm[0].name} imported, {trips} OD trips"
    raise ValueError("no .sumocfg, no network with route files and no OSM extract in it")


def earliest_begin(routes: list[Path]) -> float:
    """The earliest ``depart``/``begin`` [s] in route files (SUMO times, ``hh:mm:ss`` too); 0 if none."""
    from twin.city.sumo_net import open_xml
    from twin.demand.sumo_routes import sumo_time

    best = None
    for path in routes:
        with open_xml(path) as fh:
            text = fh.read().decode("utf-8", "replace")
        for m in re.finditer(r'\b(?:depart|begin)\s*=\s*"([^"]+)"', text):
            try:
                t = sumo_time(m.group(1))
            except ValueError:
                continue
            best = t if best is None else min(best, t)
    return float(best or 0.0)


def count_span(path: Path) -> tuple[float, float]:
    """Earliest start and latest end [s] of the records of a Cadyts measurements file."""
    text = _head(path, 10_000_000)
    starts = [float(x) for x in re.findall(r'\bstart\s*=\s*"([0-9.]+)"', text)]
    ends = [float(x) for x in re.findall(r'\bend\s*=\s*"([0-9.]+)"', text)]
    return (min(starts), max(ends)) if starts and ends else (float("inf"), float("-inf"))


def turning_count_file(folder: Path) -> Path | None:
    """An XML file in the folder with SUMO turning counts (``<data>`` … ``<edgeRelation``), if any."""
    for p in sorted(folder.rglob("*.xml*")):
        if p.is_file() and p.name.endswith((".xml", ".xml.gz")):
            head = _head(p)
            if "<data" in head and "<edgeRelation" in head:
                return p
    return None


def edge_count_file(folder: Path) -> Path | None:
    """Real edge counts: Cadyts ``measurements.xml`` anywhere below the folder."""
    found = sorted(folder.rglob("measurements.xml"))
    return found[0] if found else None


def _head(path: Path, n: int = 20000) -> str:
    from twin.city.sumo_net import open_xml

    try:
        with open_xml(path) as fh:
            return fh.read(n).decode("utf-8", "replace")
    except (OSError, EOFError):
        return ""


def last_line(text: str) -> str:
    """The line that says what went wrong: the CLI's ``error:`` line, else the last exception line of a
    traceback, else the last line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("error:") or re.match(r"^[\w.]+(Error|Exception)\b", ln):
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


# ----------------------------------------------------------------- one city
def validate_city(folder: Path, out: Path, quick: bool, timeout: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {"city": folder.name}
    t0 = time.perf_counter()
    try:
        scen, how = find_scenario(folder, out / "scenario", quick)
    except (ValueError, OSError) as exc:
        return {**row, "error": str(exc)}
    row["scenario"] = how
    cmd = [sys.executable, str(ROOT / "run_sim.py"), "validate", str(scen), "--out", str(out), "-q", *extra]
    if quick:
        cmd += ["--duration", f"{QUICK_S:g}"]
    turns = turning_count_file(folder)
    if turns is not None:
        cmd += ["--turn-counts", str(turns)]
        row["turning_counts"] = turns.name
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"validate took more than {timeout:g} s"}
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    vpath = out / "validation.json"
    if r.returncode not in (0, 1) or not vpath.is_file():
        return {**row, "error": f"validate exited {r.returncode}: {last_line(r.stderr or r.stdout)}"}
    v = json.loads(vpath.read_text(encoding="utf-8"))
    if r.returncode == 1 or v.get("error"):  # an engine failed or ended early: there is no comparison
        row["error"] = v.get("error") or last_line(r.stderr or r.stdout)
        row["partial"] = figures(v, out, folder)  # what was measured before it failed, not a result
        return row
    row.update(figures(v, out, folder))
    return row


def figures(v: dict[str, Any], out: Path, folder: Path) -> dict[str, Any]:
    """The table's figures for one validation (its validation.json and the two runs it saved)."""
    import xarray as xr

    h = v.get("headline") or {}
    ref = (h.get("mean_travel_time_ratio") or {}).get("reference")
    f: dict[str, Any] = {"reference": "shipped" if ref == "SUMO as shipped" else "same vehicles",
                         "speedup": v.get("speedup"), "trips_native": v.get("trips_native")}
    if h:
        f.update({"geh_lt5_share": h["geh_lt5_share"]["value"],
                  "travel_time_ratio": h["mean_travel_time_ratio"]["value"],
                  "trips_completed_native": h["trips_completed"]["value"]["native"],
                  "trips_completed_sumo": h["trips_completed"]["value"]["sumo"],
                  "teleports_native": h["teleports"]["value"]["native"],
                  "teleports_sumo": h["teleports"]["value"]["sumo"],
                  "targets_validate": {k: t["met"] for k, t in (v.get("targets") or {}).items()}})
    f["same_vehicles"] = {"geh_lt5_share": v.get("geh_lt5_share"),
                          "travel_time_ratio": v.get("mean_travel_time_ratio"),
                          "trips_completed_sumo": v.get("trips_completed_sumo"),
                          "teleports_sumo": v.get("teleports_sumo")}
    f["turn_geh_lt5_share"] = (v.get("turns") or {}).get("turn_geh_lt5_share")
    o = v.get("observed_turns")
    if o:
        f["observed_turn_geh_lt5_share"] = o["native"].get("geh_lt5_share")
    try:
        n, s = (xr.open_dataset(out / eng / "results.nc") for eng in ("native", "sumo"))
    except (OSError, ValueError):
        return f
    with n, s:
        if "sensor_count" in n and "sensor_count" in s and n.sizes.get("sensor", 0):
            from twin.calibration.objectives import geh
            from twin.results.validation import hourly_counts

            cn, cs = hourly_counts(n, var="sensor_count"), hourly_counts(s, var="sensor_count")
            m = (cn + cs) > 0
            f["loops"] = int(n.sizes["sensor"])
            f["loop_geh_lt5_share"] = round(float((geh(cn, cs)[m] < 5).mean()), 4) if m.any() else None
        counts = edge_count_file(folder)
        if counts is not None:
            f["observed_count_geh_lt5_share"] = _observed_edge_geh(n, counts, out)
    return f


def _observed_edge_geh(native, counts: Path, out: Path) -> float | None:
    """GEH < 5 share of the native run against real edge counts (records outside the run set aside)."""
    from twin.calibration.observations import read_observations
    from twin.city.model import CityModel
    from twin.config.loader import ConfigError
    from twin.results.turns import observed_turn_geh

    manifest = _json(out / "native" / "manifest.json")
    begin = float(((manifest.get("config") or {}).get("demand") or {}).get("begin_s") or 0.0)
    try:
        city = CityModel.load(out / "native" / "city.npz")
        obs = read_observations(counts, city, time_offset=begin, duration=float(native["time"].values[-1]))
    except (ConfigError, OSError, ValueError):
        return None
    return observed_turn_geh({"native": native}, obs, turns=False)["native"]["geh_lt5_share"]


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------- targets and table
def targets(row: dict[str, Any]) -> dict[str, str]:
    """pass/miss per target, as ``validate`` checked it on the headline reference (n/a where a city
    has no comparison)."""
    met = row.get("targets_validate") or {}
    keys = {"geh": "geh_lt5_share", "travel_time": "mean_travel_time_ratio", "completed": "trips_completed",
            "teleports": "teleports"}
    return {k: "n/a" if met.get(m) is None else ("pass" if met[m] else "miss") for k, m in keys.items()}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if pct:
        return f"{100 * v:.1f} %"
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["city", "reference", "GEH<5 edges", "TT ratio", "completed native / SUMO", "teleports native / SUMO",
            "same vehicles: GEH<5 / TT ratio / completed / teleports SUMO", "loops GEH<5", "turns GEH<5",
            "observed turns GEH<5", "speed-up", "targets GEH / TT / done / tele"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        if r.get("geh_lt5_share") is None:
            lines.append(f"| {r['city']} | error: {r.get('error', '?')} |" + " |" * (len(head) - 2))
            continue
        t, sv = r["targets"], r.get("same_vehicles") or {}
        lines.append(" | ".join([
            f"| {r['city']}" + (f" (error: {r['error']})" if r.get("error") else ""), r.get("reference", "—"),
            _fmt(r["geh_lt5_share"], True), _fmt(r.get("travel_time_ratio")),
            f"{_fmt(r.get('trips_completed_native'))} / {_fmt(r.get('trips_completed_sumo'))}",
            f"{_fmt(r.get('teleports_native'))} / {_fmt(r.get('teleports_sumo'))}",
            f"{_fmt(sv.get('geh_lt5_share'), True)} / {_fmt(sv.get('travel_time_ratio'))} / "
            f"{_fmt(sv.get('trips_completed_sumo'))} / {_fmt(sv.get('teleports_sumo'))}",
            _fmt(r.get("loop_geh_lt5_share"), True), _fmt(r.get("turn_geh_lt5_share"), True),
            _fmt(r.get("observed_turn_geh_lt5_share"), True), _fmt(r.get("speedup")),
            f"{t['geh']} / {t['travel_time']} / {t['completed']} / {t['teleports']} |"]))
    return "\n".join(lines)


def cities(args: list[Path]) -> list[Path]:
    if args:
        return args
    return sorted(p for p in SHARED.iterdir() if p.is_dir())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cities", nargs="*", type=Path, help=f"city folders (default: every folder in {SHARED})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_S:g} simulated seconds per city, "
                                                       f"{QUICK_OSM_TRIPS} trips for an OSM extract")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "validate_cities", help="output directory")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per city before it counts as failed")
    p.add_argument("--junction-blocking", action="store_true",
                   help="the native engine's blocking inside junctions and keep-clear (docs/models.md, 'Junctions')")
    p.add_argument("--no-keep-clear", dest="keep_clear", action="store_false",
                   help="the native engine without its keep-clear rule (docs/models.md, 'Junctions')")
    p.add_argument("--no-insertion-back-gap", dest="insertion_back_gap", action="store_false",
                   help="the native insertion without its check of the vehicle behind (docs/models.md, 'Insertion')")
    p.add_argument("--diverging-paths", action="store_true",
                   help="the native engine's leaders on other paths from the same lane, time to clear an "
                        "internal junction and right of way per link (docs/models.md, 'Junctions')")
    a = p.parse_args(argv)
    missing = [str(c) for c in a.cities if not c.is_dir()]
    if missing:
        print(f"error: not a city folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = []
    t0 = time.perf_counter()
    for folder in cities(a.cities):
        print(f"validating {folder.name} …", file=sys.stderr, flush=True)
        row = validate_city(folder.resolve(), a.out / folder.name, a.quick, a.timeout,
                            ("--junction-blocking",) * a.junction_blocking + ("--no-keep-clear",) * (not a.keep_clear)
                            + ("--no-insertion-back-gap",) * (not a.insertion_back_gap)
                            + ("--diverging-paths",) * a.diverging_paths)
        row["targets"] = targets(row)
        rows.append(row)
        print(f"  {row.get('error') or 'done'} ({row.get('wall_s', 0)} s)", file=sys.stderr, flush=True)
    print(f"# Native engine against SUMO on {len(rows)} cities" + (" (quick)" if a.quick else ""))
    print()
    print(table(rows))
    print()
    met = sum(all(v == "pass" for v in r["targets"].values()) for r in rows)
    failed = [r["city"] for r in rows if r.get("error")]
    print(f"{met} of {len(rows)} cities meet every target; {len(failed)} failed: {', '.join(failed) or 'none'} "
          f"({time.perf_counter() - t0:.0f} s)")
    print(json.dumps({"quick": a.quick, "cities": rows, "meet_all_targets": met, "failed": failed}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
