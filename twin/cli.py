"""The command line: parse → load → run → save. No simulation logic lives here.

``python run_sim.py`` with no arguments runs ``scenarios/default.yaml``.
User errors (a bad config, a missing file) print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from twin import __version__

COMMANDS = ("run", "import", "validate", "compare", "calibrate", "render", "report", "live", "fork")
EXIT_USAGE = 2
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_scenario() -> Path:
    here = Path("scenarios/default.yaml")
    return here if here.is_file() else PROJECT_ROOT / "scenarios" / "default.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_sim.py", description="twin: a city digital twin. "
                                "Run without arguments to simulate scenarios/default.yaml.")
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
    k.add_argument("config", type=Path, help="calibration YAML (see the README)")
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
                                             "'serial' (default: a local Dask cluster per fork)")

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

    r4 = sub.add_parser("report", help="one self-contained HTML report of a run or a comparison")
    r4.add_argument("results", type=Path, help="a results directory (run) or a compare output directory")
    r4.add_argument("--out", type=Path, help="HTML file (default: RESULTS/report.html)")
    return p


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("native", "sumo"), help="traffic engine (overrides the scenario's)")
    p.add_argument("--sumo-api", choices=("libsumo", "traci"), help="how to drive SUMO (default libsumo)")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def format_kpis(kpis: dict) -> str:
    from twin.results.kpis import KPI_UNITS

    width = max(len(k) for k in kpis)
    lines = []
    for k, v in kpis.items():
        if isinstance(v, float):
            v = "n/a" if math.isnan(v) else f"{v:,.2f}"
        else:
            v = f"{v:,}"
        lines.append(f"  {k:<{width}}  {v:>14}  {KPI_UNITS.get(k, '')}")
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


def _days_progress(cfg, city, quiet: bool):
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
    progress, bar = make_progress(offset + cfg.run.duration_s, f"simulating {days} days", quiet)
    components = build_components(cfg, city)
    if progress is None:
        return None, None, components
    for comp in components:
        if hasattr(comp, "progress"):  # the population or epidemic component
            comp.progress = progress
    return (lambda t, running: progress(offset + t, running)), bar, components


def make_progress(total: float, desc: str, quiet: bool):
    """A tqdm bar over simulated seconds and its callback ``(t, running)``; (None, None) when quiet."""
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="s", desc=desc, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")

    def progress(t: float, running: int) -> None:
        bar.update(t - bar.n)
        bar.set_postfix_str(f"{running} running", refresh=False)

    return progress, bar


def cmd_run(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError

    scenario = args.scenario or default_scenario()
    try:
        cfg, city, demand = _load(args, scenario)
        from twin.runner import run_scenario
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    out = args.out or Path("results") / cfg.name
    print(f"twin {__version__}: scenario {cfg.name!r} — city {city.name} ({city.n_edges} edges, "
          f"{city.n_tls} signals), {len(demand.trips):,} trips, {cfg.run.duration_s:,.0f} s, "
          f"engine {cfg.run.engine.type}, seed {cfg.seed}", flush=True)
    if demand.unroutable:
        print(f"warning: {len(demand.unroutable)} trips have no route; they are listed in results.nc")
    from twin.engines.base import UnsupportedActionError

    components = None
    if cfg.epidemic is not None or cfg.population is not None:  # one bar over all the days
        if cfg.epidemic is None:
            print(f"population: residents at scale {cfg.population.scale:g} over {cfg.population.days} days; each "
                  f"day their car trips join the {len(demand.trips):,} trips above", flush=True)
        progress, bar, components = _days_progress(cfg, city, args.quiet)
    else:
        progress, bar = make_progress(cfg.run.duration_s, "simulating", args.quiet)
    try:
        result = run_scenario(cfg, progress=progress, city=city, demand=demand, components=components)
    except UnsupportedActionError as exc:
        return _fail(str(exc))
    finally:
        if bar is not None:
            bar.close()
    result.save(out)
    print(f"\nKPIs ({cfg.name}):")
    print(format_kpis(result.kpis))
    m = result.manifest
    print(f"\nwrote {out}/results.nc, kpis.json, manifest.json "
          f"(simulated in {m['simulate_s']:.1f} s, {m['vehicle_updates_per_s'] or 0:,} vehicle updates/s)")
    if result.error:
        print(f"error: the engine failed: {result.error} (results up to then are saved)", file=sys.stderr)
        return 1
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.importer import import_path

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

    args.engine = None
    try:
        cfg, city, demand = _load(args, args.scenario)
        turns = _turn_counts(args.turn_counts, cfg, city) if args.turn_counts else None
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    from twin.validate import validate

    out = args.out or Path("results") / f"{cfg.name}-validation"
    print(f"validating {cfg.name!r}: {city.n_edges} edges, {len(demand.trips):,} trips, "
          f"{cfg.run.duration_s:,.0f} s — native engine, then SUMO ({args.sumo_api})", flush=True)
    shipped = args.scenario if args.scenario.suffix == ".sumocfg" else None
    report = validate(cfg, city, demand, out, sumo_api=args.sumo_api, sumocfg=shipped, turn_counts=turns,
                      progress=lambda desc: make_progress(cfg.run.duration_s, desc, args.quiet))
    print(report["markdown_summary"])
    print(f"wrote {out}/validation.json, validation.md, validation_scatter.png, native/, sumo/"
          + (", shipped/" if shipped else ""))
    return 1 if report.get("error") else 0


def _turn_counts(path: Path, cfg, city):
    from twin.calibration.observations import read_turn_counts

    return read_turn_counts(path, city, time_offset=getattr(cfg.demand, "begin_s", 0.0) or 0.0,
                            duration=cfg.run.duration_s)


def cmd_compare(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError

    if args.replications < 1:
        return _fail(f"--replications must be >= 1, got {args.replications}")
    args.engine, args.sumo_api = None, None
    args_seed, args.seed = args.seed, None
    try:
        policy_cfg, city, _ = _load(args, args.scenario)
        if args.baseline:
            base_cfg, _, _ = _load(args, args.baseline)
        else:
            base_cfg = policy_cfg.model_copy(update={"policies": [], "name": f"{policy_cfg.name}-baseline"})
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    if base_cfg.name == policy_cfg.name:
        base_cfg = base_cfg.model_copy(update={"name": f"{base_cfg.name}-baseline"})
    from twin.compare import compare

    out = args.out or Path("results") / f"{policy_cfg.name}-compare"
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
    print(report["markdown"])
    print(f"wrote {out}/compare.json, compare.nc, compare.md")
    if report["failed"]:
        print(f"error: {len(report['failed'])} replications failed (listed above and in compare.json)",
              file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from twin.city.model import CityError
    from twin.config import ConfigError
    from twin.config.calibration import CalibrationConfig
    from twin.config.loader import load_model

    try:
        cfg = load_model(args.config, CalibrationConfig, "calibration")
        from twin.calibration.run import calibrate

        out = args.out or Path("results") / f"{cfg.name}-calibration"
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
                                       camera=args.camera, color_by=args.color_by, size=(w, h)))
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
    if args.speed <= 0:
        return _fail(f"--speed must be > 0, got {args.speed}")
    try:
        cfg, city, demand = _load(args, args.scenario)
        from twin.live.session import LiveTwin

        out = args.out or Path("results") / f"{cfg.name}-live"
        twin = LiveTwin(cfg, city, demand, out, speed=args.speed, fork_scheduler=args.fork_scheduler)
    except (ConfigError, CityError, FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    server = None
    if args.listen:
        from twin.live.server import Server

        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit():
            return _fail(f"--listen must be HOST:PORT, got {args.listen!r}")
        server = Server(twin, host, int(port))
        try:
            server.start()
        except OSError as exc:
            return _fail(str(exc))
        print(f"live twin {cfg.name!r} at {args.speed:g}× real time; API on http://{host}:{port} "
              "(POST /observations, GET /state, GET /stream, POST /fork, GET /forks/ID)", flush=True)
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
    f = result.manifest["feed"]
    print(f"records: {f['received']} received, {f['accepted']} accepted, {f['rejected']} rejected "
          f"{f['rejected_by_reason'] or ''}")
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

    args.engine = args.sumo_api = args.seed = args.duration = None
    if args.at <= 0 or args.horizon <= 0:
        return _fail("--at and --horizon must be > 0 seconds")
    try:
        cfg, city, demand = _load(args, args.scenario)
        branches = {load_scenario(b).name: load_scenario(b).policies for b in args.branch}
        from twin.core.rng import RngStreams
        from twin.engines.native import NativeEngine
        from twin.live.fork import fork

        out = args.out or Path("results") / f"{cfg.name}-fork"
        out.mkdir(parents=True, exist_ok=True)
        eng = NativeEngine(step_length=cfg.run.engine.step_length_s, teleport_time=cfg.run.engine.teleport_time_s)
        eng.start(city, demand, seed=RngStreams(cfg.seed).seed_for("engine"))
        eng.advance(round(args.at / eng.step_length) * eng.step_length)
        eng.checkpoint(out / "checkpoint.npz")
        res = fork(out / "checkpoint.npz", cfg, branches, eng.time, args.horizon, scheduler=args.scheduler)
    except (ConfigError, CityError, FileNotFoundError) as exc:
        return _fail(str(exc))
    from twin.results.io import write_json

    write_json(out / "fork.json", res)
    print(f"forked {cfg.name!r} at {res['fork_time_s']:g} s for {args.horizon:g} s:")
    keys = ("trips_completed", "mean_travel_time_s", "vehicle_hours_travelled", "co2_kg", "running_at_end")
    print("  " + "branch".ljust(28) + "".join(k.rjust(26) for k in keys))
    for name, r in res["branches"].items():
        print("  " + name.ljust(28) + "".join(f"{r[k]:>26,.2f}" if isinstance(r[k], float) else f"{r[k]:>26,}"
                                            for k in keys))
    print(f"wrote {out}/fork.json (and checkpoint.npz)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from twin.viz.report import report

    out = args.out or args.results / "report.html"
    try:
        path = report(args.results, out)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, images embedded)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version", "-v", "--verbose")):
        argv.insert(0, "run")
    if argv and argv[0] in ("-v", "--verbose") and (len(argv) == 1 or argv[1] not in COMMANDS):
        argv.insert(1, "run")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="twin: %(levelname)s: %(name)s: %(message)s")
    logging.getLogger("MESA").setLevel(logging.WARNING)  # mesa logs every model step at INFO
    if not args.verbose:  # Dask sets its own loggers to INFO; its chatter is for --verbose only
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("distributed"))
    if args.command == "run":
        return cmd_run(args)
    if args.command == "import":
        return cmd_import(args)
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "calibrate":
        return cmd_calibrate(args)
    if args.command == "render":
        return cmd_render(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "live":
        return cmd_live(args)
    if args.command == "fork":
        return cmd_fork(args)
    build_parser().print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
