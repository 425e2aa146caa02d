#!/usr/bin/env python3
"""Where the native engine's vehicles teleport: the edge, the junction it ends at, and why the vehicle stood.

    python benchmarks/teleport_sites.py SCENARIO [--duration S] [--no-keep-clear]   # a scenario YAML or a .sumocfg

Runs the scenario's city and demand on the native engine step by step; one step before a vehicle reaches
the gridlock rule's time (``teleport_time_s``) it records where it stands and what holds it: a leader on its
lane, the end of a lane that does not lead on along its route (a lane change it could not make), or the
stop line of the connection it wants (the signal state there, and how full the target lane is). Prints the
sites ranked by teleports and a JSON last line. Compare with SUMO's "Teleporting vehicle ..." warnings for
the same scenario (``sumo -c run.sumocfg``) to see whether the engines jam at the same junctions.

At the end it lists the trips not completed: those still waiting to enter, by origin edge (with the depart
lane and speed they wait for), and those still running, by the edge they are on.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from twin.city.model import CityError  # noqa: E402
from twin.config import ConfigError  # noqa: E402
from twin.config.sumocfg import load_any  # noqa: E402
from twin.core.rng import RngStreams  # noqa: E402
from twin.engines.native import NativeEngine  # noqa: E402  (the engine this looks into)
from twin.engines.native.kernels import RUNNING, choose_connection  # noqa: E402
from twin.engines.registry import build_engine  # noqa: E402
from twin.runner import prepare  # noqa: E402

SIGNALS = {0: "red", 1: "yellow", 2: "green", 3: "green-minor", 4: "uncontrolled"}


def what_holds(eng: NativeEngine, i: int) -> str:
    """Why vehicle ``i`` stands: 'leader', 'lane change' or the connection ahead ('signal ..., target ...')."""
    c = eng.city
    lane, pos = int(eng.lane[i]), float(eng.pos[i])
    running = eng.state == RUNNING
    if np.any(running & (eng.lane == lane) & (eng.pos > pos)):
        return "leader"
    k, off, n = int(eng.ridx[i]), int(eng.route_off[i]), int(eng.route_n[i])
    if k + 1 >= n:
        return "destination edge"
    cb = int(eng._vt["class_bit"][eng.vtype[i]])
    conn = choose_connection(lane, k, eng.route_edges, off, n, cb, c.lane_conn_offsets, c.conn_to_lane,
                             c.lane_edge, eng._lane_allow, c.edge_lane_start, c.lane_length)
    if conn < 0:
        return "lane change"
    tl = int(c.conn_to_lane[conn])
    on = running & (eng.lane == tl)
    return (f"signal {SIGNALS.get(int(eng._conn_signal[conn]), '?')}, target {c.edge_ids[c.lane_edge[tl]]}_"
            f"{c.lane_index[tl]} holds {int(on.sum())}")


def not_completed(eng: NativeEngine, demand) -> dict:
    """Print and return the trips not completed at the end: waiting to enter by origin edge, running by edge."""
    from twin.engines.native.kernels import WAITING

    c = eng.city
    first = demand.route_edges[demand.route_offsets[:-1]]
    wait = collections.Counter(c.edge_ids[first[i]] for i in np.flatnonzero(eng.state == WAITING))
    run = collections.Counter(c.edge_ids[c.lane_edge[eng.lane[i]]] for i in np.flatnonzero(eng.state == RUNNING))
    print(f"# at the end: {sum(wait.values())} trips waiting to enter, {sum(run.values())} running")
    for edge, n in wait.most_common(8):
        lanes = int(c.edge_num_lanes[c.edge_index[edge]])
        print(f"{n:4d}  waiting to enter edge {edge} ({lanes} lane(s))")
    for edge, n in run.most_common(8):
        print(f"{n:4d}  running on edge {edge}")
    return {"waiting_by_edge": dict(wait.most_common(20)), "running_by_edge": dict(run.most_common(20))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", type=Path)
    p.add_argument("--duration", type=float, default=None, help="simulated seconds (default: the scenario's)")
    p.add_argument("--no-keep-clear", dest="keep_clear", action="store_false",
                   help="the native engine without its keep-clear rule (docs/models.md, 'Junctions')")
    a = p.parse_args(argv)
    try:
        cfg = load_any(a.scenario)
        city, demand = prepare(cfg)
    except (ConfigError, CityError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.run.engine.type != "native":
        print(f"error: {a.scenario}: run.engine is {cfg.run.engine.type!r}; this looks at the native engine",
              file=sys.stderr)
        return 2
    if not a.keep_clear:
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(
            update={"engine": cfg.run.engine.model_copy(update={"keep_clear": False})})})
    eng = build_engine(cfg, city)
    eng.start(city, demand, seed=RngStreams(cfg.seed).seed_for("engine"))  # the seed a run of it uses
    dt, limit = eng.step_length, eng._teleport_time
    sites: collections.Counter = collections.Counter()
    reasons: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for s in range(int(round((a.duration or cfg.run.duration_s) / dt))):
        due = np.flatnonzero((eng.state == RUNNING) & (eng.wait >= limit - dt))  # teleport this step if halted
        before = [(int(i), int(eng.lane[i]), what_holds(eng, int(i)), int(eng.teleports[i])) for i in due]
        eng.advance((s + 1) * dt)
        for i, lane, why, n in before:
            if eng.teleports[i] > n:
                e = int(city.lane_edge[lane])
                key = (city.edge_ids[e], city.node_ids[city.edge_to[e]])
                sites[key] += 1
                reasons[key][why] += 1
    total = int(eng.teleports.sum())
    print(f"# {total} teleports in the native run of {a.scenario.name}; where the vehicles stood")
    rows = []
    for (edge, node), n in sites.most_common():
        why = "; ".join(f"{r} ({k})" for r, k in reasons[(edge, node)].most_common(3))
        print(f"{n:4d}  edge {edge}  → junction {node[:40]}  {why}")
        rows.append({"edge": edge, "junction": node, "teleports": n, "held_by": dict(reasons[(edge, node)])})
    waiting = not_completed(eng, demand)
    print(json.dumps({"scenario": str(a.scenario), "teleports": total, "sites": rows, **waiting}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
