#!/usr/bin/env python3
"""Micro-benchmark: does a kernel that hands typed records to its helper run as fast as one that hands arrays?

    python benchmarks/bench_records.py [--vehicles 200000] [--repeat 7]

The kernels' helpers (:mod:`twin.engines.native.kernels`) take the records
(:mod:`~twin.engines.native.kernels.records`: NamedTuples of arrays) rather than
long lists of arrays. This times a compiled loop over vehicles that calls a route helper
(the first connection of the vehicle's lane into its next route edge, as
:func:`~twin.engines.native.kernels.choose_connection` walks it) with the records, against the
same loop calling it with positional arrays, on a grid city with a two-edge route per vehicle. Both loops are compiled first; the rounds alternate
(records, arrays, records, ...) and each variant's best round counts. Both must return the
same connections (the script stops with an error otherwise). The last line is JSON with
``records_ns``, ``arrays_ns`` (per call) and ``ratio`` (records / arrays).

Numba counts references to each array taken out of a record (``NRT_incref``/``NRT_decref`` calls, not
inlined, atomic), so the records loop's machine code makes about three times as many calls as the arrays
loop, and a helper called per vehicle with records is markedly slower: this is why the kernels take the
records but pass their helpers arrays (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from twin.city import grid_city  # noqa: E402
from twin.engines.native.kernels import records as R  # noqa: E402
from twin.engines.native.engine import part_rows  # noqa: E402


@numba.njit(cache=False)
def _first_conn_arrays(l, k, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
                       lane_allow):
    """The first connection of lane ``l`` into the route's next edge (positional arrays)."""
    if k + 1 >= n_route:
        return -1
    nxt = route_edges[base + k + 1]
    for c in range(lane_conn_offsets[l], lane_conn_offsets[l + 1]):
        tl = conn_to_lane[c]
        if lane_edge[tl] == nxt and (lane_allow[tl] & class_bit) != 0:
            return c
    return -1


@numba.njit(cache=False)
def _first_conn_records(l, k, i, veh, vt, net, ctl):
    """The same, called with the records as the kernels' helpers are: the fields it uses first, then the walk."""
    route_edges = veh.route_edges
    base = veh.route_off[i]
    n_route = veh.route_n[i]
    class_bit = vt.class_bit[veh.vtype[i]]
    lane_conn_offsets = net.lane_conn_offsets
    conn_to_lane = net.conn_to_lane
    lane_edge = net.lane_edge
    lane_allow = ctl.lane_allow
    return _first_conn_arrays(l, k, route_edges, base, n_route, class_bit, lane_conn_offsets, conn_to_lane, lane_edge,
                              lane_allow)


@numba.njit(cache=False)
def loop_arrays(n, lane, ridx, route_edges, route_off, route_n, vtype, vt_class_bit, lane_conn_offsets,
                conn_to_lane, lane_edge, lane_allow, out):
    for i in range(n):
        out[i] = _first_conn_arrays(lane[i], ridx[i], route_edges, route_off[i], route_n[i], vt_class_bit[vtype[i]],
                                    lane_conn_offsets, conn_to_lane, lane_edge, lane_allow)


@numba.njit(cache=False)
def loop_records(n, veh, vt, net, ctl, out):
    lane = veh.lane
    ridx = veh.ridx
    for i in range(n):
        out[i] = _first_conn_records(lane[i], ridx[i], i, veh, vt, net, ctl)


def build(n: int, seed: int):
    """A 10 × 10 grid city and ``n`` vehicles, each on a lane of its two-edge route's first edge."""
    city = grid_city(10, 10)
    rng = np.random.default_rng(seed)
    lanes = rng.integers(0, city.n_lanes, n).astype(np.int32)
    route_edges = np.empty(2 * n, dtype=np.int32)
    for i, l in enumerate(lanes):
        cs = range(city.lane_conn_offsets[l], city.lane_conn_offsets[l + 1])
        e0 = city.lane_edge[l]
        e1 = city.lane_edge[city.conn_to_lane[rng.choice(cs)]] if len(cs) else e0
        route_edges[2 * i:2 * i + 2] = (e0, e1)
    z = np.zeros(n)
    veh = R.Vehicles(np.full(n, 2, np.int8), lanes, z, z, np.zeros(n, np.int32), np.ones(n), np.zeros(n, np.int32),
                     np.arange(0, 2 * n, 2, dtype=np.int64), np.full(n, 2, np.int32), route_edges, z, z, z, z, z,
                     np.zeros(n, np.int32), z, z, np.full(n, -1, np.int32), z, z, z, np.zeros(n, np.int32), z,
                     np.zeros(n, np.bool_), np.arange(n, dtype=np.int32))
    one = np.ones(1)
    vt = R.VehicleTypes(one * 5.0, one * 2.5, one, one, one, one * 50.0, one, np.ones(1, np.int64))
    net = R.Network(city.lane_edge, city.lane_index, city.lane_length, city.edge_lane_start, city.edge_num_lanes,
                    city.lane_conn_offsets, city.conn_to_lane, city.conn_length, city.conn_speed,
                    city.conn_foe_offsets, city.conn_foe_lanes, city.conn_foe_links,
                    np.zeros(len(city.conn_to_lane) + 1, np.int32),
                    np.zeros(0, np.int32), np.zeros(len(city.conn_to_lane), np.bool_), city.conn_from_lane,
                    np.zeros(city.n_lanes + 1, np.int32), np.zeros(0, np.int32), city.conn_yield_dist,
                    *part_rows(city, False))
    ctl = R.Control(np.full(city.n_lanes, 13.9), np.full(city.n_lanes, -1, np.int64),
                    np.full(len(city.conn_to_lane), 4, np.int8), np.zeros(city.n_lanes),
                    np.zeros(city.n_lanes, np.int8), np.zeros(city.n_lanes), 0)
    return veh, vt, net, ctl


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vehicles", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    n = a.vehicles
    veh, vt, net, ctl = build(n, a.seed)
    out_a = np.empty(n, np.int64)
    out_r = np.empty(n, np.int64)

    def run_arrays():
        loop_arrays(n, veh.lane, veh.ridx, veh.route_edges, veh.route_off, veh.route_n, veh.vtype, vt.class_bit,
                    net.lane_conn_offsets, net.conn_to_lane, net.lane_edge, ctl.lane_allow, out_a)

    def run_records():
        loop_records(n, veh, vt, net, ctl, out_r)

    run_arrays()
    run_records()
    if not np.array_equal(out_a, out_r):
        print("error: records and arrays gave different connections", file=sys.stderr)
        return 1
    best = {"records": np.inf, "arrays": np.inf}
    for _ in range(a.repeat):
        for name, f in (("records", run_records), ("arrays", run_arrays)):
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    rec_ns, arr_ns = best["records"] / n * 1e9, best["arrays"] / n * 1e9
    print(f"{n:,} helper calls, best of {a.repeat} alternated rounds: records {rec_ns:.2f} ns/call, "
          f"arrays {arr_ns:.2f} ns/call, ratio {rec_ns / arr_ns:.3f}")
    print(json.dumps({"vehicles": n, "records_ns": round(rec_ns, 3), "arrays_ns": round(arr_ns, 3),
                      "ratio": round(rec_ns / arr_ns, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
