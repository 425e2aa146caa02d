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

COMMANDS = ("run",)
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
    return p


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


def cmd_run(args: argparse.Namespace) -> int:
    from twin.config import ConfigError, load_scenario

    scenario = args.scenario or default_scenario()
    overrides: dict = {}
    if args.seed is not None:
        if args.seed < 0:
            return _fail(f"--seed must be >= 0, got {args.seed}")
        overrides["seed"] = args.seed
    if args.duration is not None:
        if not args.duration > 0:
            return _fail(f"--duration must be > 0 seconds, got {args.duration}")
        overrides["run"] = {"duration_s": args.duration}
        if args.duration < 60:
            overrides["run"]["record_interval_s"] = args.duration
    try:
        cfg = load_scenario(scenario, overrides=overrides)
        from twin.runner import prepare, run_scenario

        city, demand = prepare(cfg)
    except ConfigError as exc:
        return _fail(str(exc))
    out = args.out or Path("results") / cfg.name
    print(f"twin {__version__}: scenario {cfg.name!r} — city {city.name} ({city.n_edges} edges, "
          f"{city.n_tls} signals), {len(demand.trips):,} trips, {cfg.run.duration_s:,.0f} s, "
          f"engine {cfg.run.engine.type}, seed {cfg.seed}", flush=True)
    if demand.unroutable:
        print(f"warning: {len(demand.unroutable)} trips have no route; they are listed in results.nc")
    progress = None
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.run.duration_s, unit="s", desc="simulating", dynamic_ncols=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")

        def progress(t: float, running: int) -> None:
            bar.update(t - bar.n)
            bar.set_postfix_str(f"{running} running", refresh=False)

    try:
        result = run_scenario(cfg, progress=progress, city=city, demand=demand)
    finally:
        if bar is not None:
            bar.close()
    result.save(out)
    print(f"\nKPIs ({cfg.name}):")
    print(format_kpis(result.kpis))
    m = result.manifest
    print(f"\nwrote {out}/results.nc, kpis.json, manifest.json "
          f"(simulated in {m['simulate_s']:.1f} s, {m['vehicle_updates_per_s'] or 0:,} vehicle updates/s)")
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
    if args.command == "run":
        return cmd_run(args)
    build_parser().print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
