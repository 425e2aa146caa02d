"""The command line: parse → load → run → save. No simulation logic lives here.

``python run_sim.py`` with no arguments runs ``scenarios/default.yaml``.
User errors (a bad config, a missing file, an unwritable results folder) print
one line and exit with 2. Exit codes: 0 done; 1 the engine failed (results up
to then saved) or the results had to be saved elsewhere; 2 bad input; 130/143
SIGINT/SIGTERM (the results so far saved, marked partial; docs/robustness.md).
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from twin import __version__

EXIT_USAGE = 2
# the optional packages twin's commands load, and the extra that installs each
EXTRAS = {"pyvista": "viz", "vtk": "viz", "imageio": "viz", "imageio_ffmpeg": "viz", "trame": "viz",
          "matplotlib": "plot", "mesa": "agents", "fastapi": "live", "uvicorn": "live", "starlette": "live",
          "dask": "ensemble", "distributed": "ensemble", "scipy": "ensemble", "libsumo": "sumo", "traci": "sumo",
          "sumolib": "sumo", "sumo": "sumo", "pyproj": "sumo"}


def default_scenario() -> Path:
    """``scenarios/default.yaml`` in the current folder if there is one, else the default shipped with twin."""
    here = Path("scenarios/default.yaml")
    if here.is_file():
        return here
    from importlib.resources import files

    return Path(str(files("twin") / "data" / "default.yaml"))


def _compiling_notice() -> None:
    print("twin: compiling the numba kernels (once: about a minute; later runs load them from the cache; "
          "`make warm` or `python -m twin.warm` does this ahead)", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_sim.py", description="twin: a city digital twin. "
                                "Run without arguments to simulate scenarios/default.yaml.",
                                epilog="exit codes: 0 done, 1 engine failure (results so far saved), 2 bad input, "
                                       "130/143 interrupted by SIGINT/SIGTERM (results so far saved, partial)")
    p.add_argument("--version", action="version", version=f"twin {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run a scenario and write results.nc, kpis.json, manifest.json",
                       description="Run a scenario; writes DIR/results.nc, DIR/kpis.json, DIR/manifest.json.")
    r.add_argument("scenario", nargs="?", type=Path, help="scenario YAML (default: scenarios/default.yaml)")
    r.add_argument("--out", type=Path, help="results directory (default: results/<scenario name>)")
    r.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    r.add_argument("--duration", type=float, metavar="SECONDS", help="simulated time (overrides the scenario's)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _engine_options(r)

    i = sub.add_parser("import", help="import a SUMO network/configuration or an OpenStreetMap extract",
                       description="Import PATH (.net.xml[.gz], .sumocfg, .osm[.gz]) into DIR: city.npz, "
                                   "demand.npz (where the input has demand) and scenario.yaml for `run`.")
    i.add_argument("path", type=Path)
    i.add_argument("--out", type=Path, required=True, help="output directory")
    i.add_argument("--trips", type=int, default=2000,
                   help="OD trips for the scenario of an input without demand (default 2000)")

    v = sub.add_parser("validate", help="run the native engine and SUMO on one scenario and compare them",
                       description="Run both engines on the same city and demand; write validation.json, "
                                   "validation.md, validation_scatter.png and both runs' results to DIR.")
    v.add_argument("scenario", type=Path, help="scenario YAML or .sumocfg")
    v.add_argument("--out", type=Path, help="output directory (default: results/<scenario>-validation)")
    v.add_argument("--seed", type=int)
    v.add_argument("--duration", type=float, metavar="SECONDS")
    v.add_argument("--sumo-api", choices=("libsumo", "traci"), default="libsumo")
    v.add_argument("--turn-counts", type=Path, metavar="FILE",
                   help="observed turning counts (SUMO edgeRelation data) for turn-level GEH")
    v.add_argument("--junction-blocking", action="store_true",
                   help="native engine: vehicles block inside junctions and keep them clear (docs/models.md)")
    v.add_argument("--no-keep-clear", dest="keep_clear", action="store_false",
                   help="native engine: without SUMO's keep-clear rule (docs/models.md, 'Junctions')")
    v.add_argument("--no-insertion-back-gap", dest="insertion_back_gap", action="store_false",
                   help="native engine: insertion without the check of the vehicle behind (docs/models.md)")
    v.add_argument("--diverging-paths", action="store_true",
                   help="native engine: a vehicle on another path from the same lane is a leader until the paths "
                        "part, and one at its internal junction needs the time to clear it (docs/models.md, "
                        "'Junctions')")
    v.add_argument("-q", "--quiet", action="store_true")

    c = sub.add_parser("compare", help="a policy scenario against its baseline over replications (Dask)",
                       description="Run baseline and policy N times each with common random numbers on a Dask "
                                   "cluster; write compare.json, compare.nc and compare.md to DIR.")
    c.add_argument("scenario", type=Path, help="the policy scenario")
    c.add_argument("--baseline", type=Path, help="baseline scenario (default: the scenario without its policies)")
    c.add_argument("--replications", type=int, default=5, help="seeds per scenario (default 5)")
    c.add_argument("--seed", type=int, default=0, help="first seed (replication i uses seed + i)")
    c.add_argument("--out", type=Path, help="output directory (default: results/<scenario>-compare)")
    c.add_argument("--scheduler", help="Dask scheduler address; 'serial' runs in this process "
                                       "(default: a local cluster, one worker per core)")
    c.add_argument("--duration", type=float, metavar="SECONDS")
    c.add_argument("-q", "--quiet", action="store_true")

    k = sub.add_parser("calibrate", help="fit demand, driver behaviour or signal offsets to observed counts",
                       description="Calibrate a scenario against observations; writes calibration.json, "
                                   "calibration.md (+ PNGs) and calibrated.yaml to DIR.")
    k.add_argument("config", type=Path, help="calibration YAML (see docs/calibration.md)")
    k.add_argument("--out", type=Path, help="output directory (default: results/<name>-calibration)")
    k.add_argument("--scheduler", help="Dask scheduler address, or 'serial' (default: a local cluster)")
    k.add_argument("-q", "--quiet", action="store_true")

    r3 = sub.add_parser("render", help="3D views of a run: PNG stills, a movie, comparisons, an interactive page",
                        description="Render RESULTS_DIR (as written by run) with pyvista off-screen into DIR.")
    r3.add_argument("results", type=Path)
    r3.add_argument("--out", type=Path, required=True, help="output directory")
    r3.add_argument("--time", type=float, metavar="T", help="simulated time [s] (default: the busiest moment)")
    r3.add_argument("--camera", choices=("overview", "street", "follow"), default="overview")
    r3.add_argument("--color-by", choices=("congestion", "speed"), default="congestion")
    r3.add_argument("--air", metavar="POLLUTANT", help="lay this concentration (e.g. NO2) on the ground of the still")
    r3.add_argument("--movie", action="store_true", help="a time-lapse over the vehicle snapshots")
    r3.add_argument("--format", choices=("mp4", "gif"), default="mp4", help="movie format")
    r3.add_argument("--start", type=float, help="movie start [s]")
    r3.add_argument("--end", type=float, help="movie end [s]")
    r3.add_argument("--fps", type=int, default=4)
    r3.add_argument("--compare", type=Path, metavar="OTHER_RESULTS_DIR", help="policy run to show beside this one")
    r3.add_argument("--diff", action="store_true", help="with --compare: one scene coloured by the speed change")
    r3.add_argument("--html", action="store_true", help="also an interactive 3D page (scene.html)")
    r3.add_argument("--size", default="1600x1000", help="image size WxH (default 1600x1000)")

    lv = sub.add_parser("live", help="run the twin on the real-time clock, fed by a recorded feed or over HTTP",
                        description="Run SCENARIO in real time (or --speed X faster); sensor records come from "
                                    "--feed FILE (CSV or JSON lines) or are POSTed to --listen HOST:PORT.")
    lv.add_argument("scenario", type=Path)
    src = lv.add_mutually_exclusive_group(required=True)
    src.add_argument("--feed", type=Path, help="recorded feed to replay")
    src.add_argument("--listen", metavar="HOST:PORT", help="serve the HTTP API here (e.g. 127.0.0.1:8765)")
    lv.add_argument("--speed", type=float, default=1.0, help="times faster than real time (default 1)")
    lv.add_argument("--out", type=Path, help="output directory (default: results/<scenario>-live)")
    lv.add_argument("--duration", type=float, metavar="SECONDS")
    lv.add_argument("--fork-scheduler", help="where POST /fork runs its branches: a Dask scheduler address, or "
                                             "'serial' (default: one local Dask cluster, started at the first fork)")
    lv.add_argument("--fork-max-horizon", type=float, default=86400.0, metavar="SECONDS",
                    help="longest horizon_s a POST /fork may ask for (default 86400)")
    lv.add_argument("--token", help="the API's bearer token (default: $TWIN_TOKEN, else a random one, printed "
                                    "and written to OUT/api_token)")
    lv.add_argument("--protect-reads", action="store_true", help="GET endpoints need the token too")
    lv.add_argument("--future-tolerance", type=float, default=60.0, metavar="SECONDS",
                    help="records more than this ahead of the twin's clock are rejected (default 60)")

    fk = sub.add_parser("fork", help="what-if branches from a moment of a run: one per policy scenario",
                        description="Run SCENARIO to --at, checkpoint it, then run a no-action branch and one branch "
                                    "per --branch scenario file (its policies) for --horizon seconds on Dask.")
    fk.add_argument("scenario", type=Path)
    fk.add_argument("--at", type=float, required=True, metavar="T", help="fork time [s]")
    fk.add_argument("--horizon", type=float, default=3600.0, metavar="SECONDS")
    fk.add_argument("--branch", type=Path, action="append", required=True,
                    help="a scenario file whose policies make a branch (repeat for several)")
    fk.add_argument("--out", type=Path, help="output directory (default: results/<scenario>-fork)")
    fk.add_argument("--scheduler", help="Dask scheduler address, or 'serial' (default: a local cluster)")

    vw = sub.add_parser("view", help="the command-center dashboard on a finished run or comparison, in a browser",
                        description="Serve the dashboard on RESULTS_DIR (run, live or compare output) with a time "
                                    "slider over the run; open the printed address in a browser. Ctrl-C stops it.")
    vw.add_argument("results", type=Path)
    vw.add_argument("--listen", default="127.0.0.1:8766", metavar="HOST:PORT", help="default 127.0.0.1:8766")

    ex = sub.add_parser("export", help="results as GIS files (WGS84) or as SUMO files for sumo-gui",
                        description="Write RESULTS_DIR's edges (time-aggregated and per interval) and vehicle "
                                    "trajectories as GeoJSON or GeoParquet in WGS84, or the network, routes, "
                                    "tripinfo.xml and edgedata.xml for SUMO (docs/gis.md).")
    ex.add_argument("results", type=Path)
    ex.add_argument("--to", choices=("geojson", "geoparquet", "sumo"), required=True)
    ex.add_argument("--out", type=Path, help="output directory (default: RESULTS_DIR/<format>)")

    r4 = sub.add_parser("report", help="one self-contained HTML report of a run or a comparison")
    r4.add_argument("results", type=Path, help="a results directory (run) or a compare output directory")
    r4.add_argument("--out", type=Path, help="HTML file (default: RESULTS/report.html)")
    return p


def _engine_options(p: argparse.ArgumentParser) -> None:
    from twin.engines.registry import available_engines

    p.add_argument("--engine", choices=available_engines(),
                   help="traffic engine (overrides the scenario's): any registered engine")
    p.add_argument("--sumo-api", choices=("libsumo", "traci"), help="how to drive SUMO (default libsumo)")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def format_kpis(kpis: dict, units: dict[str, str]) -> str:
    width = max(len(k) for k in kpis)
    lines = []
    for k, v in kpis.items():
        if isinstance(v, float):
            v = "n/a" if math.isnan(v) else f"{v:,.2f}"
        else:
            v = f"{v:,}"
        lines.append(f"  {k:<{width}}  {v:>14}  {units.get(k, '')}")
    return "\n".join(lines)


def _overrides(args: argparse.Namespace) -> dict | str:
    """Scenario overrides from CLI options, or an error message."""
    overrides: dict = {}
    if args.seed is not None:
        if args.seed < 0:
            return f"--seed must be >= 0, got {args.seed}"
        overrides["seed"] = args.seed
    run: dict = {}
    if args.duration is not None:
        if not args.duration > 0:
            return f"--duration must be > 0 seconds, got {args.duration}"
        run["duration_s"] = args.duration
    engine = getattr(args, "engine", None)
    api = getattr(args, "sumo_api", None)
    if api and engine != "sumo" and args.command == "run":
        return "--sumo-api needs --engine sumo"
    if engine:
        run["engine"] = {"type": engine, **({"api": api} if api else {})}
    if run:
        overrides["run"] = run
    return overrides


def _load(args: argparse.Namespace, scenario: Path):
    from twin.config.sumocfg import load_any
    from twin.runner import prepare

    overrides = _overrides(args)
    if isinstance(overrides, str):
        from twin.config import ConfigError

        raise ConfigError(overrides)
    duration = overrides.get("run", {}).get("duration_s")
    if duration is not None:  # a shorter run records at most once per its duration
        base = load_any(scenario, overrides={k: v for k, v in overrides.items() if k != "run"})
        overrides["run"]["record_interval_s"] = min(base.run.record_interval_s, duration)
    cfg = load_any(scenario, overrides=overrides)
    city, demand = prepare(cfg)
    return cfg, city, demand


def _days_progress(cfg, city, quiet: bool, compiling=None):
    """One progress bar over all days of a population or outbreak scenario.

    Returns ``(progress, bar, components)`` for :func:`twin.runner.run_scenario`:
    the earlier days report into the bar through the component (its ``progress``,
    time from the first midnight), the last day (the run itself) through ``progress``.
    An outbreak's earlier days last a whole day; a population's each last the run.
    """
    from twin.runner import build_components

    if cfg.epidemic is not None:
        from twin.agents.population import DAY_S

        days, day_s = cfg.epidemic.days, DAY_S
    else:
        days, day_s = cfg.population.days, cfg.run.duration_s
    offset = (days - 1) * day_s
    progress, bar = make_progress(offset + cfg.run.duration_s, f"simulating {days} days", quiet, compiling)
    components = build_components(cfg, city)
    if progress is None:
        return None, None, components
    for comp in components:
        if hasattr(comp, "progress"):  # the population or epidemic component
            comp.progress = progress
    return (lambda t, running: progress(offset + t, running)), bar, components


def make_progress(total: float, desc: str, quiet: bool, compiling=None):
    """A tqdm bar over simulated seconds and its callback ``(t, running)``; (None, None) when quiet.

    The bar shows from the first report on, so not while the first steps compile kernels (the CLI prints one
    line for that), and time spent compiling (``compiling``: the command's :class:`twin.jit.CompileWatch`) is
    left out of its elapsed time and rate, so its ETA is the simulation's.
    """
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="s", desc=desc, dynamic_ncols=True, delay=math.inf,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
    seen = [compiling.compiles if compiling is not None else 0]

    def progress(t: float, running: int) -> None:
        bar.delay = 0.0
        if compiling is not None and compiling.compiles != seen[0]:  # kernels compiled since the last report
            seen[0] = compiling.compiles
            bar.unpause()
        bar.update(t - bar.n)
        bar.set_postfix_str(f"{running} running", refresh=False)

    return progress, bar


def _output(args: argparse.Namespace, cfg, city=None, n_trips: int = 0, suffix: str = ""):
    """The checked, locked results folder (see :func:`twin.results.io.prepare_output`)."""
    from twin.results.io import estimate_results_bytes, prepare_output

    need = 0
    if city is not None:
        need = estimate_results_bytes(city.n_edges, n_trips, cfg.run.duration_s, cfg.run.record_interval_s,
                                      len(cfg.sensors.loops))
    return prepare_output(args.out, cfg.name, suffix=suffix, need_bytes=need)


def _interrupted(stop, what: str) -> int:
    print(f"interrupted ({stop.name}) {what}", file=sys.stderr)
    return stop.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from twin.core.interrupt import stop_on_signals

    with stop_on_signals() as stop:
        return _run(args, stop)


def _run(args: argparse.Namespace, stop) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.core.interrupt import Interrupted
    from twin.results.io import ResultsError, save_or_rescue

    scenario = args.scenario or default_scenario()
    try:
        cfg, city, demand = _load(args, scenario)
        from twin.runner import run_scenario

        out, lock = _output(args, cfg, city, len(demand.trips))
    except (ConfigError, CityError, FileNotFoundError, ResultsError) as exc:
        return _fail(str(exc))
    except Interrupted:
        return _interrupted(stop, "before the simulation started; nothing to save")
    with lock:
        print(f"twin {__version__}: scenario {cfg.name!r} — city {city.name} ({city.n_edges} edges, "
              f"{city.n_tls} signals), {len(demand.trips):,} trips, {cfg.run.duration_s:,.0f} s, "
              f"engine {cfg.run.engine.type}, seed {cfg.seed}", flush=True)
        if demand.unroutable:
            print(f"warning: {len(demand.unroutable)} trips have no route; they are listed in results.nc")
        from twin.engines.base import UnsupportedActionError

        components = None
        if cfg.epidemic is not None or cfg.population is not None:  # one bar over all the days
            if cfg.epidemic is None:
                print(f"population: residents at scale {cfg.population.scale:g} over {cfg.population.days} days; "
                      f"each day their car trips join the {len(demand.trips):,} trips above", flush=True)
            progress, bar, components = _days_progress(cfg, city, args.quiet, args.compiling)
        else:
            progress, bar = make_progress(cfg.run.duration_s, "simulating", args.quiet, args.compiling)
        try:
            result = run_scenario(cfg, progress=progress, city=city, demand=demand, components=components)
        except UnsupportedActionError as exc:
            return _fail(str(exc))
        except Interrupted:
            return _interrupted(stop, "before the recorded run started (a population's or outbreak's earlier "
                                      "days are not recorded); nothing to save")
        finally:
            if bar is not None:
                bar.close()
        with stop.deferred():  # a signal now waits for the files to be whole
            where, failed = save_or_rescue(result.save, out, cfg.name)
    if failed:
        print(f"error: cannot write the results to {out} ({failed}); they are saved in {where}", file=sys.stderr)
        return 1
    if result.interrupted:
        m = result.manifest
        return _interrupted(stop, f"at t={m['end_time_s']:g} s of {cfg.run.duration_s:g} s; the results so far "
                                  f"are in {out} (marked partial)")
    print(f"\nKPIs ({cfg.name}):")
    from twin.results.kpis import kpi_units

    print(format_kpis(result.kpis, kpi_units(result.dataset)))
    m = result.manifest
    compiled = f", {m['compile_s']:.0f} s compiling kernels before" if m.get("compile_s", 0) >= 1 else ""
    print(f"\nwrote {out}/results.nc, kpis.json, manifest.json "
          f"(simulated in {m['simulate_s']:.1f} s, {m['vehicle_updates_per_s'] or 0:,} vehicle updates/s{compiled})")
    if result.error:
        print(f"error: the engine failed: {result.error} (results up to then are saved)", file=sys.stderr)
        return 1
    if stop.signum:  # the signal came while saving: the results are whole
        return _interrupted(stop, f"while saving; the results in {out} are complete")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.importer import import_path

    from twin.config.models import MAX_TRIPS

    if not 0 <= args.trips <= MAX_TRIPS:
        return _fail(f"--trips must be between 0 and {MAX_TRIPS:,}, got {args.trips:,}")
    try:
        summary = import_path(args.path, args.out, od_trips=args.trips)
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    print(f"imported {args.path} → {args.out}")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    print(f"run it with: python run_sim.py run {args.out / 'scenario.yaml'}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.core.interrupt import Interrupted, stop_on_signals
    from twin.results.io import ResultsError

    args.engine = None
    with stop_on_signals() as stop:
        try:
            cfg, city, demand = _load(args, args.scenario)
            turns = _turn_counts(args.turn_counts, cfg, city) if args.turn_counts else None
            out, lock = _output(args, cfg, suffix="-validation")
        except (ConfigError, CityError, FileNotFoundError, ResultsError) as exc:
            return _fail(str(exc))
        except Interrupted:
            return _interrupted(stop, "before the simulation started; nothing to save")
        from twin.validate import validate

        print(f"validating {cfg.name!r}: {city.n_edges} edges, {len(demand.trips):,} trips, "
              f"{cfg.run.duration_s:,.0f} s — native engine, then SUMO ({args.sumo_api})", flush=True)
        shipped = args.scenario if args.scenario.suffix == ".sumocfg" else None
        with lock:
            report = validate(cfg, city, demand, out, sumo_api=args.sumo_api, sumocfg=shipped,
                              turn_counts=turns, junction_blocking=args.junction_blocking,
                              insertion_back_gap=args.insertion_back_gap, keep_clear=args.keep_clear,
                              diverging_paths=args.diverging_paths,
                              progress=lambda desc: make_progress(cfg.run.duration_s, desc, args.quiet, args.compiling))
        if report.get("partial"):
            runs = report["runs_saved"]
            return _interrupted(stop, f"during the {runs[-1]} run: no comparison; {out}/validation.json and "
                                      f"{', '.join(f'{r}/' for r in runs)} ({runs[-1]}/ partial) are saved")
        print(report["markdown_summary"])
        if not report["comparison"]:
            print(f"validate: no comparison: {report['error']}", file=sys.stderr)
            return 1
        print(f"wrote {out}/validation.json, validation.md, validation_scatter.png, native/, sumo/"
              + (", shipped/" if shipped else ""))
        return 1 if report.get("error") else stop.exit_code


def _turn_counts(path: Path, cfg, city):
    from twin.calibration.observations import read_turn_counts

    return read_turn_counts(path, city, time_offset=getattr(cfg.demand, "begin_s", 0.0) or 0.0,
                            duration=cfg.run.duration_s)


def cmd_compare(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.core.interrupt import Interrupted, stop_on_signals
    from twin.results.io import ResultsError

    if args.replications < 1:
        return _fail(f"--replications must be >= 1, got {args.replications}")
    args.engine, args.sumo_api = None, None
    args_seed, args.seed = args.seed, None
    with stop_on_signals() as stop:
        try:
            policy_cfg, city, _ = _load(args, args.scenario)
            if args.baseline:
                base_cfg, _, _ = _load(args, args.baseline)
            else:
                base_cfg = policy_cfg.model_copy(update={"policies": [], "name": f"{policy_cfg.name}-baseline"})
            out, lock = _output(args, policy_cfg, suffix="-compare")
        except (ConfigError, CityError, FileNotFoundError, ResultsError) as exc:
            return _fail(str(exc))
        except Interrupted:
            return _interrupted(stop, "before the replications started; nothing to save")
        with lock:
            return _compare(args, args_seed, policy_cfg, base_cfg, city, out, stop)


def _compare(args, args_seed, policy_cfg, base_cfg, city, out, stop) -> int:
    if base_cfg.name == policy_cfg.name:
        base_cfg = base_cfg.model_copy(update={"name": f"{base_cfg.name}-baseline"})
    from twin.compare import compare

    n = args.replications
    print(f"comparing {policy_cfg.name!r} with {base_cfg.name!r}: {n} replications each "
          f"(seeds {args_seed}..{args_seed + n - 1}), scheduler {args.scheduler or 'local cluster'}", flush=True)
    bar = None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=2 * n, unit="run", desc="replications")

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

    try:
        report = compare(policy_cfg, base_cfg, n, out, base_seed=args_seed, scheduler=args.scheduler,
                         progress=progress, city=city)
    except OSError as exc:
        return _fail(f"cannot reach the Dask scheduler {args.scheduler!r}: {exc}")
    finally:
        if bar is not None:
            bar.close()
    if report.get("partial"):
        return _interrupted(stop, f"after {len(report['paired_replications'])} of {n} paired replications; "
                                  f"{out}/compare.json, compare.md (marked partial) hold those")
    print(report["markdown"])
    print(f"wrote {out}/compare.json, compare.nc, compare.md")
    if report["failed"]:
        print(f"error: {len(report['failed'])} replications failed (listed above and in compare.json)",
              file=sys.stderr)
        return 1
    return stop.exit_code


def cmd_calibrate(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.config.calibration import CalibrationConfig
    from twin.config.loader import load_model

    try:
        cfg = load_model(args.config, CalibrationConfig, "calibration")
        from twin.calibration.run import calibrate

        from twin.results.io import default_output

        out = args.out or default_output(cfg.name, "-calibration")
        bar = None
        progress = None
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=cfg.optimizer.iterations, unit="it", desc=f"calibrating ({cfg.optimizer.type})")

            def progress(it: int, best: float) -> None:
                bar.update(it - bar.n)
                bar.set_postfix_str(f"best {cfg.objective.type} {best:.3f}")
        try:
            r = calibrate(cfg, args.config.resolve().parent, out, scheduler=args.scheduler, progress=progress)
        finally:
            if bar is not None:
                bar.close()
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    print(f"{r['counters']} counters: GEH < 5 for {r['geh_lt5_share_before']:.0%} before, "
          f"{r['geh_lt5_share_after']:.0%} after; count RMSE {r['rmse_before']} → {r['rmse_after']} veh/h "
          f"({r['simulations']} simulations, {r['wall_s']} s)")
    if r["observations_set_aside"]:
        print(f"{len(r['observations_set_aside'])} observations set aside (reasons in calibration.json)")
    print(f"wrote {out}/calibration.json, calibration.md (+ PNGs), calibrated.yaml")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        return _fail(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    from twin.city.model import CityError
    from twin.viz import render as R
    from twin.viz.scene import OffscreenError

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    done = []
    try:
        if args.compare:
            mode = "diff" if args.diff else "side"
            done.append(R.render_compare(args.results, args.compare, out / f"compare_{mode}.png", time_s=args.time,
                                         camera=args.camera, color_by=args.color_by, mode=mode))
        else:
            done.append(R.render_still(args.results, out / f"{args.camera}.png", time_s=args.time,
                                       camera=args.camera, color_by=args.color_by, size=(w, h), air=args.air))
        if args.movie:
            done.append(R.render_movie(args.results, out / f"movie.{args.format}", start=args.start, end=args.end,
                                       camera=args.camera, color_by=args.color_by, fps=args.fps,
                                       size=(min(w, 1280) // 16 * 16, min(h, 800) // 16 * 16)))
        if args.html:
            done.append(R.export_html(args.results, out / "scene.html", time_s=args.time, color_by=args.color_by))
    except (FileNotFoundError, ValueError, CityError, OffscreenError) as exc:
        return _fail(str(exc))
    for d in done:
        extra = ", ".join(f"{k} {v}" for k, v in d.items() if k != "file")
        print(f"wrote {d['file']} ({extra})")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError

    args.engine = args.sumo_api = args.seed = None
    for opt, v in (("--speed", args.speed), ("--fork-max-horizon", args.fork_max_horizon)):
        if not (math.isfinite(v) and v > 0):
            return _fail(f"{opt} must be a finite number > 0, got {v}")
    if not (math.isfinite(args.future_tolerance) and args.future_tolerance >= 0):
        return _fail(f"--future-tolerance must be a finite number of seconds >= 0, got {args.future_tolerance}")
    if args.listen:
        from twin.live.auth import Access, is_loopback, resolve_token

        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            return _fail(f"--listen must be HOST:PORT with a port in 1..65535, got {args.listen!r}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:8765
        try:
            token, generated = resolve_token(args.token)
        except ValueError as exc:
            return _fail(str(exc))
    try:
        cfg, city, demand = _load(args, args.scenario)
        from twin.live.session import LiveTwin

        from twin.results.io import default_output

        out = args.out or default_output(cfg.name, "-live")
        twin = LiveTwin(cfg, city, demand, out, speed=args.speed, fork_scheduler=args.fork_scheduler,
                        future_s=args.future_tolerance, fork_limits={"max_horizon_s": args.fork_max_horizon})
    except (ConfigError, CityError, FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    server = None
    if args.listen:
        from twin.live.server import Server

        server = Server(twin, host, int(port), Access(token, protect_reads=args.protect_reads))
        try:
            server.start()
        except OSError as exc:
            return _fail(str(exc))
        if not is_loopback(host):
            print(f"warning: the API listens on {host}, reachable from other machines: serve it through a TLS "
                  "reverse proxy (see docs/live.md)", file=sys.stderr)
        shown = "as given"
        if generated:  # written for scripts on this machine, readable by its owner only
            (out / "api_token").unlink(missing_ok=True)
            (out / "api_token").touch(mode=0o600)
            (out / "api_token").write_text(token + "\n")
            shown = f"{token} (random; also in {out}/api_token)"
        print(f"live twin {cfg.name!r} at {args.speed:g}× real time; API on http://{args.listen} "
              "(dashboard at /; POST /observations, GET /state, GET /stream, POST /fork, GET /forks/ID); "
              f"token: {shown}", flush=True)
        records = None
    else:
        from twin.live.feed import read_feed

        if not args.feed.is_file():
            return _fail(f"{args.feed}: feed file not found")
        records = read_feed(args.feed)
        print(f"live twin {cfg.name!r}: replaying {args.feed} at {args.speed:g}× real time", flush=True)
    try:
        result = twin.run(records)
    finally:
        if server is not None:
            server.stop()
    if result.manifest.get("partial"):
        m = result.manifest
        print(f"interrupted by {m['interrupted_by']} at {m['interrupted_at_s']:g} s: partial results saved in "
              f"{out} (\"partial\": true)", file=sys.stderr)
        return 128 + twin.stop_signal
    f = result.manifest["feed"]
    print(f"records: {f['received']} received, {f['accepted']} accepted, {f['rejected']} rejected "
          f"{f['rejected_by_reason'] or ''}")
    if "air" in f:  # air-quality station and weather readings (twin.air.live)
        a = f["air"]
        print(f"air records: {a['received']} received, {a['accepted']} accepted, {a['rejected']} rejected "
              f"{a['rejected_by_reason'] or ''}")
    if "assimilation" in result.manifest:  # see twin.live.assimilation
        a = result.manifest["assimilation"]
        m = sorted(a["multipliers"].values())
        print(f"assimilation: {a['updates']} updates every {a['interval_s']:g} s, {len(m)} {a['groups']} groups, "
              f"multipliers {m[0]:.2f}–{m[-1]:.2f}; {a['trips_admitted']} trips admitted, "
              f"{a['trips_cancelled']} cancelled (demand_multiplier in results.nc)")
        ls = a.get("lane_steering")
        if ls and ls["stations"]:
            err = "n/a" if ls["share_error"] is None else f"{ls['share_error']:.1%}"
            print(f"lane steering: {ls['steered_lanes']} lanes of {ls['stations']} stations steered; vehicles in "
                  f"another lane than counted: {err} (lane_share_error in results.nc)")
    print(f"wrote {out}/results.nc (observed_count beside sensor_count), state.json, dead_letters.jsonl")
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError, load_scenario
    from twin.config.models import MAX_DURATION_S
    from twin.results.io import ResultsError, write_json

    from twin.live.fork import MAX_HORIZON_S

    args.engine = args.sumo_api = args.seed = args.duration = None
    if args.horizon > MAX_HORIZON_S:
        return _fail(f"--horizon must be at most {MAX_HORIZON_S:g} s, got {args.horizon:g}")
    if not (0 < args.at <= MAX_DURATION_S and 0 < args.horizon <= MAX_DURATION_S):
        return _fail(f"--at and --horizon must be > 0 and <= {MAX_DURATION_S:,.0f} seconds, "
                     f"got --at {args.at:g}, --horizon {args.horizon:g}")
    try:
        cfg, city, demand = _load(args, args.scenario)
        if args.at >= cfg.run.duration_s:
            raise ConfigError(f"--at {args.at:g} s is not before the end of {cfg.name!r} "
                              f"(duration_s {cfg.run.duration_s:g} s)")
        branches = {load_scenario(b).name: load_scenario(b).policies for b in args.branch}
        out, lock = _output(args, cfg, suffix="-fork")
    except (ConfigError, CityError, FileNotFoundError, ResultsError) as exc:
        return _fail(str(exc))
    from twin.engines.base import Checkpoint, EngineError, require
    from twin.engines.registry import engine_class
    from twin.live.fork import fork
    from twin.runner import Twin

    with lock:
        try:
            require(engine_class(cfg.run.engine.type), Checkpoint)  # each branch restores the running state
            step = cfg.run.engine.step_length_s
            at = max(1, round(args.at / step)) * step
            # the scenario's engine, without its policies, to the fork time (the branches bring theirs)
            run = cfg.run.model_copy(update={"duration_s": at, "snapshot_interval_s": 0.0,
                                             "record_interval_s": min(cfg.run.record_interval_s, at)})
            twin = Twin(cfg.model_copy(update={"policies": [], "monitoring": None, "run": run}), city=city,
                        demand=demand, components=[])
            eng = twin.engine
            try:
                twin.sim.run()
                eng.checkpoint(out / "checkpoint.npz")
            finally:
                eng.close()  # (libsumo runs one simulation per process)
            res = fork(out / "checkpoint.npz", cfg, branches, eng.time, args.horizon, scheduler=args.scheduler)
        except (ConfigError, CityError, FileNotFoundError, EngineError) as exc:
            return _fail(str(exc))
        write_json(out / "fork.json", res)
    print(f"forked {cfg.name!r} at {res['fork_time_s']:g} s for {args.horizon:g} s:")
    keys = ("trips_completed", "mean_travel_time_s", "vehicle_hours_travelled", "co2_kg", "trips_running")
    print("  " + "branch".ljust(28) + "".join(k.rjust(26) for k in keys))
    for name, r in res["branches"].items():
        print("  " + name.ljust(28) + "".join(f"{r[k]:>26,.2f}" if isinstance(r[k], float) else f"{r[k]:>26,}"
                                            for k in keys))
    print(f"wrote {out}/fork.json (and checkpoint.npz)")
    return 0


def _host_port(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def cmd_view(args: argparse.Namespace) -> int:
    from twin.city.model import CityError

    hp = _host_port(args.listen)
    if hp is None:
        return _fail(f"--listen must be HOST:PORT, got {args.listen!r}")
    try:
        import uvicorn

        from twin.web.view import make_view_app

        app = make_view_app(args.results)
    except (FileNotFoundError, CityError, KeyError, ValueError) as exc:
        return _fail(str(exc).strip("'\""))
    except ImportError as exc:
        return _fail(f"view needs the live extra (pip install 'twin[live]'): {exc}")
    print(f"dashboard of {args.results} on http://{hp[0]}:{hp[1]}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=hp[0], port=hp[1], log_level="warning")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError

    out = args.out or args.results / args.to
    try:
        if args.to == "sumo":
            from twin.results.export import write_sumo

            files = write_sumo(args.results, out)
        else:
            from twin.results.export import write_gis
            from twin.results.io import load_run

            ds, city = load_run(args.results)
            files = write_gis(ds, city, out, args.to)
    except (FileNotFoundError, CityError, ConfigError, ValueError) as exc:
        return _fail(str(exc))
    except ImportError as exc:
        return _fail(f"export --to {args.to} needs the gis extra (pip install 'twin[gis]'): {exc}")
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from twin.viz.report import report

    out = args.out or args.results / "report.html"
    try:
        path = report(args.results, out)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, images embedded)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMAND_FUNCTIONS and argv[0] not in ("-h", "--help", "--version", "-v", "--verbose")):
        argv.insert(0, "run")
    if argv and argv[0] in ("-v", "--verbose") and (len(argv) == 1 or argv[1] not in COMMAND_FUNCTIONS):
        argv.insert(1, "run")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="twin: %(levelname)s: %(name)s: %(message)s")
    logging.getLogger("MESA").setLevel(logging.WARNING)  # mesa logs every model step at INFO
    if not args.verbose:  # Dask sets its own loggers to INFO; its chatter is for --verbose only
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("distributed"))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside a run's own handling
        print("interrupted", file=sys.stderr)
        return 130


def console(argv: list[str] | None = None) -> None:
    """The ``twin`` command, ``run_sim.py`` and ``python -m twin``: :func:`main`, then a quick exit.

    Python's teardown of a run's modules and objects (numba's compiled code, xarray, dask) takes about half a
    second of CPU after the work is done. The results are written and closed by then, so the process runs
    its exit handlers (logging, temporary folders), flushes its output and leaves without that teardown;
    if a library left threads running, it exits the usual way instead, which stops them. (:func:`main`
    itself returns, for callers in the same process.)
    """
    import atexit
    import os
    import threading

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)  # threads still running (e.g. a 3D export's event loop): Python's own shutdown stops them
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # (CPython's; without it, the usual exit)
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    command = COMMAND_FUNCTIONS.get(args.command)
    if command is None:
        build_parser().print_help()
        return EXIT_USAGE
    from twin.jit import CompileWatch

    try:
        with CompileWatch(on_first=_compiling_notice) as args.compiling:  # the progress bars leave it out
            return command(args)
    except ModuleNotFoundError as exc:  # an optional feature whose extra is not installed
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        return _fail(f"'{args.command}' needs the optional package {top!r}, which is not installed: "
                     f"pip install 'twin[{EXTRAS[top]}]'")


COMMAND_FUNCTIONS = {"run": cmd_run, "import": cmd_import, "validate": cmd_validate, "compare": cmd_compare,
                     "calibrate": cmd_calibrate, "render": cmd_render, "report": cmd_report, "live": cmd_live,
                     "fork": cmd_fork, "view": cmd_view, "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
