#!/usr/bin/env python3
"""The roofline: bytes the native engine moves per vehicle update against this machine's memory bandwidth.

    python benchmarks/roofline.py                 # 256 MiB arrays; the 100,000-trip size of bench_scaling.py
    python benchmarks/roofline.py --quick         # 64 MiB arrays; 10,000 trips (tests/test_bench_scaling.py)

Three parts, printed, then one JSON object as the last line:

1. **Bandwidth.** STREAM's copy (``a[i] = b[i]``: 16 bytes an element) and triad (``a[i] = b[i] + s·c[i]``: 24
   bytes) in numba over float64 arrays of ``--mib`` MiB each (far larger than the 32 MiB L3 cache), on 1 and 2
   threads, the best of ``--repeat`` passes; and a random gather (``s += x[idx[k]]`` over a random permutation:
   every access a new 64-byte cache line) over the same array, the access pattern of the kernels' per-vehicle
   look-ups, in cache lines per second and ns per access.
2. **Bytes per vehicle update**, counted from the kernels' code (the table ``ACCESSES`` below): every element a
   kernel reads or writes for one vehicle on the common path, its size from the engine's own arrays (their
   dtypes), split by how it is indexed: ``k`` sequential over the running vehicles in lane order (``order``,
   ``new_pos``...: streamed), ``i``/``j`` a gather by the vehicle's (or its leader's) index into the per-vehicle
   arrays, ``l``/``e``/``c`` a gather by lane, edge or connection; ``L``/``C``: a sweep over every lane or
   connection of the city once a step (sort, lane-change requests, commit's lane tails; the signal states),
   charged per update as (lanes or connections) / (vehicles on the road); ``v``: vehicle-type tables (a few
   rows, always in L1) are not counted. The look-ahead through one junction of the vehicle at the front of its
   lane, and the lane-change evaluation of a vehicle on a multi-lane edge, are charged by the fraction of such
   vehicles sampled from the run. Two figures: *counted* (the bytes the code touches) and *as cache lines* (every
   gather a whole 64-byte line, as if nothing were cached: the most the memory system could have to move).
3. **Where the engine sits**: it runs bench_scaling.py's scenario for ``--trips`` (no kernel timers), sampling
   every minute the vehicles on the road, those at the front of their lane, on multi-lane edges, and the span of
   vehicle indices on the road (trips are ordered by departure, so the running vehicles occupy a window of the
   per-vehicle arrays: the hot working set). Bytes/update × updates/s (per wall and per CPU second) against the
   measured bandwidth, and the arithmetic intensity (floating-point operations per byte, from the flops counted
   per update in ``FLOPS``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import prange  # noqa: E402

from twin.jit import parallel_kernel  # noqa: E402

LINE = 64  # [B] cache line

# (kernel, array, reads, writes, index): one vehicle update's accesses on the common path (a vehicle following
# a leader on its lane, not on a junction, no stop, not halting). ``array`` names a record field
# (kernels/records.py) or one of EXTRA below; its element size comes from the engine's arrays.
ACCESSES = [
    # sort_vehicles, up to twice a step (at its start and after lane changes): two passes over order (count,
    # place: state, lane and the lane's counter each), the placed index written, then the insertion sort
    # (the vehicle's position against its predecessor's, mostly in order already)
    ("sort_vehicles ×2", "order", 2, 0, "k"), ("sort_vehicles ×2", "veh.state", 2, 0, "i"),
    ("sort_vehicles ×2", "veh.lane", 2, 0, "i"), ("sort_vehicles ×2", "lane_start", 2, 2, "l"),
    ("sort_vehicles ×2", "order", 2, 2, "k"), ("sort_vehicles ×2", "veh.pos", 1, 0, "i"),
    ("sort_vehicles ×2", "veh.pos", 1, 0, "j"),
    # change_lanes: new_lane and the lane's occupancy, then the target lane (none on a one-lane edge)
    ("change_lanes", "order", 3, 0, "k"), ("change_lanes", "veh.lane", 3, 0, "i"),
    ("change_lanes", "veh.vtype", 2, 0, "i"), ("change_lanes", "scr.new_lane", 2, 2, "k"),
    ("change_lanes", "scr.lane_occ", 1, 1, "l"), ("change_lanes", "net.lane_edge", 2, 0, "l"),
    ("change_lanes", "net.lane_index", 1, 0, "l"), ("change_lanes", "net.edge_lane_start", 1, 0, "e"),
    ("change_lanes", "net.edge_num_lanes", 2, 0, "e"), ("change_lanes", "ctl.lane_allow", 1, 0, "l"),
    # move: own state, the leader's, the lane's limit and lane-change requests, the per-vehicle sums, the
    # per-vehicle scratch of the step (written, then summed into the edges in order)
    ("move", "order", 2, 0, "k"), ("move", "veh.lane", 1, 0, "i"), ("move", "veh.vtype", 1, 0, "i"),
    ("move", "veh.speed", 1, 0, "i"), ("move", "veh.pos", 1, 0, "i"), ("move", "veh.vfactor", 1, 0, "i"),
    ("move", "veh.stop_at", 1, 0, "i"), ("move", "lane_start", 1, 0, "l"), ("move", "ctl.lane_speed", 1, 0, "l"),
    ("move", "scr.req_back", 2, 0, "l"), ("move", "veh.pos", 1, 0, "j"), ("move", "veh.vtype", 1, 0, "j"),
    ("move", "veh.speed", 1, 0, "j"), ("move", "scr.new_pos", 0, 1, "k"), ("move", "scr.new_speed", 1, 1, "k"),
    ("move", "veh.dist", 1, 1, "i"), ("move", "veh.wait", 0, 1, "i"), ("move", "veh.time_loss", 1, 1, "i"),
    ("move", "move.steps", 1, 1, "k"), ("move", "move.edges", 1, 1, "k"), ("move", "move.queue", 0, 1, "k"),
    ("move", "net.lane_edge", 1, 0, "l"), ("move", "stats.veh_time", 1, 1, "e"), ("move", "stats.dist", 1, 1, "e"),
    # emissions.emit: speeds and positions before and after, the vehicle's and its edge's pollutant rows
    ("emit", "order", 1, 0, "k"), ("emit", "eclass", 1, 0, "i"), ("emit", "veh.speed", 1, 0, "i"),
    ("emit", "veh.pos", 1, 0, "i"), ("emit", "veh.lane", 1, 0, "i"), ("emit", "scr.new_speed", 1, 0, "k"),
    ("emit", "scr.new_pos", 1, 0, "k"), ("emit", "net.lane_edge", 1, 0, "l"), ("emit", "emission_row", 1, 1, "i"),
    ("emit", "edge_emission_row", 1, 1, "e"),
    # commit: the new position written back, the lane's length (crossing check), halting clock
    ("commit", "order", 1, 0, "k"), ("commit", "veh.pos", 1, 1, "i"), ("commit", "scr.new_pos", 1, 0, "k"),
    ("commit", "scr.new_speed", 1, 0, "k"), ("commit", "veh.lane", 1, 1, "i"), ("commit", "veh.vtype", 1, 0, "i"),
    ("commit", "veh.state", 1, 0, "i"), ("commit", "veh.speed", 0, 1, "i"), ("commit", "veh.wait", 1, 0, "i"),
    ("commit", "net.lane_length", 1, 0, "l"),
    # count_turns: the route position against the last step's
    ("count_turns", "order", 1, 0, "k"), ("count_turns", "veh.ridx", 1, 0, "i"),
    ("count_turns", "turn_ridx", 1, 1, "i"),
]
# once a step over every lane: sort (counters zeroed, prefix sum, fill copy, segment bounds; twice), lane-change
# requests and occupancy, commit's lane tails; and over every connection: update_signals' state
SWEEPS = [
    ("sort_vehicles ×2", "lane_start", 5, 3, "L"), ("change_lanes", "scr.req_back", 0, 1, "L"),
    ("change_lanes", "scr.lane_occ", 0, 1, "L"), ("commit", "lane_start", 2, 0, "L"),
    ("commit", "scr.tail_pos", 0, 1, "L"), ("commit", "scr.tail_len", 0, 1, "L"),
    ("update_signals", "conn_tls", 1, 0, "C"), ("update_signals", "ctl.conn_signal", 0, 1, "C"),
]
# the vehicle at the front of its lane looks through the next junction (move): its route, the lane's
# connections (about three), the signal, the path, the next lane's last vehicle
FRONT = [
    ("move look-ahead", "veh.ridx", 2, 0, "i"), ("move look-ahead", "veh.route_off", 2, 0, "i"),
    ("move look-ahead", "veh.route_n", 2, 0, "i"), ("move look-ahead", "veh.route_edges", 2, 0, "r"),
    ("move look-ahead", "net.lane_length", 2, 0, "l"), ("move look-ahead", "net.lane_conn_offsets", 2, 0, "l"),
    ("move look-ahead", "net.conn_to_lane", 4, 0, "c"), ("move look-ahead", "net.lane_edge", 3, 0, "l"),
    ("move look-ahead", "ctl.lane_allow", 4, 0, "l"), ("move look-ahead", "ctl.conn_signal", 1, 0, "c"),
    ("move look-ahead", "net.conn_speed", 1, 0, "c"), ("move look-ahead", "net.conn_length", 1, 0, "c"),
    ("move look-ahead", "ctl.lane_speed", 1, 0, "l"), ("move look-ahead", "lane_start", 2, 0, "l"),
    ("move look-ahead", "order", 1, 0, "k"), ("move look-ahead", "veh.pos", 1, 0, "j"),
    ("move look-ahead", "veh.vtype", 1, 0, "j"), ("move look-ahead", "veh.speed", 1, 0, "j"),
]
# a vehicle on a multi-lane edge evaluates the lane beside it (change_lanes): cached lane scores, the target
# lane's leader and follower (binary search), the speed-gain wishes
MULTI = [
    ("change_lanes multi-lane", "veh.ridx", 2, 0, "i"), ("change_lanes multi-lane", "scr.score_ridx", 2, 0, "i"),
    ("change_lanes multi-lane", "scr.score_row", 1, 0, "i"), ("change_lanes multi-lane", "veh.route_off", 1, 0, "i"),
    ("change_lanes multi-lane", "veh.route_n", 1, 0, "i"), ("change_lanes multi-lane", "veh.speed", 1, 0, "i"),
    ("change_lanes multi-lane", "veh.pos", 1, 0, "i"), ("change_lanes multi-lane", "ctl.steer_dir", 2, 0, "l"),
    ("change_lanes multi-lane", "ctl.steer_until", 1, 0, "l"), ("change_lanes multi-lane", "lane_start", 2, 0, "l"),
    ("change_lanes multi-lane", "order", 3, 0, "k"), ("change_lanes multi-lane", "veh.pos", 3, 0, "j"),
    ("change_lanes multi-lane", "veh.speed", 2, 0, "j"), ("change_lanes multi-lane", "veh.vtype", 2, 0, "j"),
    ("change_lanes multi-lane", "veh.vfactor", 1, 0, "i"), ("change_lanes multi-lane", "ctl.lane_speed", 2, 0, "l"),
    ("change_lanes multi-lane", "veh.sg_prob", 1, 1, "i"), ("change_lanes multi-lane", "veh.kr_prob", 1, 1, "i"),
]
# floating-point operations of one update on the common path (counted from the code: IDM ~20 with its
# sqrt and division, move's bounds and sums ~25, emissions' polynomial in v and a over 8 pollutants ~70,
# commit ~5, lane-change wishes of a multi-lane vehicle ~40)
FLOPS = {"common": 120, "multi": 40, "front": 25}


def element_sizes(engine) -> tuple[dict[str, int], set[str]]:
    """Bytes of one element of each array the tables name, from the engine's arrays; and the names of the
    float64 ones."""
    veh, vtr, net, ctl, scr, stats, *_ = engine._records()
    arrays = {"order": engine._order, "lane_start": engine._lane_start, "eclass": engine._v_eclass,
              "turn_ridx": engine._turn_ridx, "conn_tls": engine.city.conn_tls}
    for prefix, rec in (("veh", veh), ("net", net), ("ctl", ctl), ("scr", scr), ("stats", stats)):
        arrays.update({f"{prefix}.{f}": getattr(rec, f) for f in rec._fields
                       if isinstance(getattr(rec, f), np.ndarray)})
    sizes = {k: a.itemsize for k, a in arrays.items()}
    f64 = {k for k, a in arrays.items() if a.dtype == np.float64}
    sizes.update({"move.steps": 8, "move.edges": 8, "move.queue": 8,  # move's float64 / int64 scratch (np.empty(n))
                  "emission_row": engine._v_emission.itemsize * engine._v_emission.shape[1],
                  "edge_emission_row": engine.e_emission.itemsize * engine.e_emission.shape[1],
                  "scr.score_row": scr.score_cache.itemsize * scr.score_cache.shape[1]})
    f64 |= {"move.steps", "move.queue", "emission_row", "edge_emission_row"}
    return sizes, f64


def tally(rows, sizes: dict[str, int], f64: set[str], weight: float) -> dict[str, dict[str, float]]:
    """Per kernel, × ``weight``: ``counted`` bytes; ``float32``: the same with every float64 array in float32;
    ``lines``: bytes as cache lines (a gather a line each); ``hot_lines``: as lines with each vehicle's fields
    that the kernel gathers in one record of at most a line (one line for the vehicle, one for its neighbour);
    ``gathers``: accesses by a vehicle, lane, edge or connection index (each a cache miss at worst)."""
    out: dict[str, dict[str, float]] = {}
    seen: dict[str, set[str]] = {}
    for kern, arr, r, w, idx in rows:
        size = sizes[arr]
        n = r + w
        mult = 2 if kern.endswith("×2") else 1
        d = out.setdefault(kern, {"counted": 0.0, "float32": 0.0, "lines": 0.0, "hot_lines": 0.0, "gathers": 0.0})
        d["gathers"] += mult * n * weight if idx in "ijlecr" else 0.0
        d["counted"] += mult * n * size * weight
        d["float32"] += mult * n * (size // 2 if arr in f64 else size) * weight
        d["lines"] += mult * (n * LINE if idx in "ijlecr" else n * size) * weight
        if idx in "ij":  # the vehicle's (or its neighbour's) record: one line for all its fields in the kernel
            if idx not in seen.setdefault(kern, set()):
                seen[kern].add(idx)
                d["hot_lines"] += mult * LINE * weight
        else:
            d["hot_lines"] += mult * (n * LINE if idx in "lecr" else n * size) * weight
    return out


@parallel_kernel
def _copy(a, b):
    for i in prange(a.size):
        a[i] = b[i]


@parallel_kernel
def _triad(a, b, c, s):
    for i in prange(a.size):
        a[i] = b[i] + s * c[i]


@parallel_kernel
def _gather(x, idx, parts, out):
    """out[p] = sum of x[idx[k]] over part p of idx (the parts in parallel)."""
    n = idx.size
    for p in prange(parts):
        s = 0.0
        for k in range(p * n // parts, (p + 1) * n // parts):
            s += x[idx[k]]
        out[p] = s


def bandwidth(mib: int, threads: list[int], repeat: int) -> dict:
    """STREAM copy and triad [GB/s] and random gather [cache lines/s, ns per access] per thread count."""
    n = mib * 2 ** 20 // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    idx = np.random.default_rng(0).permutation(n).astype(np.int64)
    out = np.zeros(64)
    res = {}
    for th in threads:
        numba.set_num_threads(th)
        _copy(a, b), _triad(a, b, c, 3.0), _gather(b, idx[:1000], 64, out)  # compile (or load) first
        best = {"copy": np.inf, "triad": np.inf, "gather": np.inf}
        for _ in range(repeat):
            for name, fn in (("copy", lambda: _copy(a, b)), ("triad", lambda: _triad(a, b, c, 3.0)),
                             ("gather", lambda: _gather(b, idx, 64, out))):
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        res[str(th)] = {"copy_gb_s": round(16 * n / best["copy"] / 1e9, 2),
                        "triad_gb_s": round(24 * n / best["triad"] / 1e9, 2),
                        "gather_lines_per_s": round(n / best["gather"]),
                        "gather_gb_s_as_lines": round(LINE * n / best["gather"] / 1e9, 2),
                        "gather_ns_per_access": round(best["gather"] / n * 1e9, 2)}
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return res


def sample_run(trips: int, threads: int) -> tuple[dict, dict, dict]:
    """bench_scaling's scenario of ``trips`` on ``threads``: its figures, the sampled shares of vehicles at the
    front of their lane / on multi-lane edges / the index span on the road, the element sizes and the float64
    arrays' names."""
    import bench_scaling as bs
    from twin.engines.native.kernels.state import RUNNING

    samples, sizes, f64 = [], {}, set()

    def start(twin) -> None:
        eng = twin.engine

        def look(t: float) -> None:
            run = np.flatnonzero(eng.state == RUNNING)
            if run.size:
                lanes = eng.lane[run]
                e = eng.city.lane_edge[lanes]
                samples.append((run.size, np.unique(lanes).size, int((eng.city.edge_num_lanes[e] > 1).sum()),
                                int(run[-1] - run[0] + 1)))
            if not sizes:
                sz, fl = element_sizes(eng)
                sizes.update(sz)
                f64.update(fl)
        twin.sim.add_reader(60.0, look)

    r = bs.one(trips, threads, False, on_start=start)
    s = np.array(samples, dtype=np.float64)
    w = s[:, 0] / s[:, 0].sum()  # weighted by vehicles on the road, as the updates are
    shares = {"front": float((s[:, 1] / s[:, 0]) @ w), "multi_lane": float((s[:, 2] / s[:, 0]) @ w),
              "index_span": float(s[:, 3] @ w), "samples": len(samples)}
    return r, shares, sizes, f64


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--quick", action="store_true", help="64 MiB arrays, 10,000 trips")
    p.add_argument("--mib", type=int, help="MiB per array of the bandwidth test (default 256; quick 64)")
    p.add_argument("--trips", type=int, help="bench_scaling.py's size to run (default 100000; quick 10000)")
    p.add_argument("--threads", default="1,2", help="thread counts of the bandwidth test (default 1,2)")
    p.add_argument("--engine-threads", type=int, default=2, help="threads of the engine run (default 2)")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    mib = a.mib or (64 if a.quick else 256)
    trips = a.trips or (10_000 if a.quick else 100_000)
    counts = [int(x) for x in a.threads.split(",")]
    err = sys.stderr
    load_start = [round(x, 2) for x in os.getloadavg()]
    bw = bandwidth(mib, counts, a.repeat)
    for th, b in bw.items():
        print(f"bandwidth, {th} thread(s), {mib} MiB arrays: copy {b['copy_gb_s']} GB/s, triad {b['triad_gb_s']} "
              f"GB/s; random gather {b['gather_ns_per_access']} ns per access ({b['gather_gb_s_as_lines']} GB/s "
              f"as 64-B lines)", file=err)
    r, shares, sizes, f64 = sample_run(trips, a.engine_threads)
    n_bar = r["vehicle_updates"] / r["steps"]
    lanes, conns = r["city"]["lanes"], r["city"]["connections"]
    parts: dict[str, dict[str, float]] = {}
    groups = [(ACCESSES, 1.0), (FRONT, shares["front"]), (MULTI, shares["multi_lane"])]
    groups += [([(kern, arr, rd, wr, "k")], (lanes if idx == "L" else conns) / n_bar)  # streamed, once a step
               for kern, arr, rd, wr, idx in SWEEPS]
    for rows, weight in groups:
        for k, d in tally(rows, sizes, f64, weight).items():
            for m, v in d.items():
                parts.setdefault(k, dict.fromkeys(d, 0.0))[m] += v
    total = {m: sum(d[m] for d in parts.values()) for m in ("counted", "float32", "lines", "hot_lines", "gathers")}
    counted, lines = total["counted"], total["lines"]
    flops = FLOPS["common"] + FLOPS["multi"] * shares["multi_lane"] + FLOPS["front"] * shares["front"]
    ups_wall = r["vehicle_updates_per_s"]
    ups_cpu = r["vehicle_updates"] / r["simulation_cpu_s"]
    hot = shares["index_span"] * sum(v for k, v in sizes.items() if k.startswith("veh.") and k != "veh.route_edges")
    per = {"l": lanes, "L": lanes, "e": r["city"]["edges"], "c": conns, "C": conns}
    net_bytes = sum(sizes[arr] * per[idx] for arr, idx in {(x[1], x[4]) for x in ACCESSES + SWEEPS + FRONT + MULTI}
                    if idx in per)  # the network's arrays the step touches (lane, edge, connection)
    best = max(bw.values(), key=lambda b: b["triad_gb_s"])
    print(f"engine: {trips:,} trips on {r['city']['name']} ({lanes:,} lanes, {conns:,} connections), "
          f"{a.engine_threads} thread(s): {r['vehicle_updates']:,} updates, {n_bar:,.0f} on the road on average, "
          f"{ups_wall:,} updates/s wall, {ups_cpu:,.0f} per CPU second; at the front of their lane "
          f"{100 * shares['front']:.1f} %, on multi-lane edges {100 * shares['multi_lane']:.1f} %; the running "
          f"vehicles span {shares['index_span']:,.0f} vehicle indices ({hot / 2 ** 20:.1f} MiB of per-vehicle "
          f"arrays); the network's arrays it touches hold {net_bytes / 2 ** 20:.1f} MiB", file=err)
    print("bytes per vehicle update: counted / in float32 / as 64-B lines / as lines, hot fields together:",
          file=err)
    for k, d in sorted(parts.items(), key=lambda kv: -kv[1]["counted"]) + [("total", total)]:
        print(f"  {k:<28} {d['counted']:7.0f} {d['float32']:7.0f} {d['lines']:8.0f} {d['hot_lines']:8.0f}", file=err)
    ns_cpu = 1e9 / ups_cpu
    ns_miss = total["gathers"] * best["gather_ns_per_access"]
    print(f"{total['gathers']:.0f} gathers an update: {ns_miss:.0f} ns if each waited for memory as the random "
          f"gather does, against {ns_cpu:.0f} ns of CPU an update measured: at most {100 * ns_cpu / ns_miss:.0f} % of "
          f"them can miss the caches", file=err)
    need = {"counted_gb_s_wall": counted * ups_wall / 1e9, "counted_gb_s_cpu": counted * ups_cpu / 1e9,
            "lines_gb_s_wall": lines * ups_wall / 1e9, "lines_gb_s_cpu": lines * ups_cpu / 1e9}
    print(f"traffic at the measured speed: counted {need['counted_gb_s_wall']:.2f} GB/s (per CPU second "
          f"{need['counted_gb_s_cpu']:.2f}), as lines {need['lines_gb_s_wall']:.2f} GB/s "
          f"({need['lines_gb_s_cpu']:.2f}) "
          f"against triad {best['triad_gb_s']} GB/s: {100 * need['lines_gb_s_cpu'] / best['triad_gb_s']:.0f} % of it "
          f"at most; arithmetic intensity {flops / counted:.3f} flop/B counted ({flops:.0f} flops an update)",
          file=err)
    load_end = [round(x, 2) for x in os.getloadavg()]
    print(f"load average: {load_start} at the start, {load_end} at the end", file=err)
    print(json.dumps({"bandwidth": bw, "mib": mib, "engine": {
        k: r[k] for k in ("trips", "threads", "vehicle_updates", "steps", "simulation_s", "simulation_cpu_s",
                          "vehicle_updates_per_s", "max_running", "teleports")} | {
        "city": r["city"]["name"], "lanes": lanes, "connections": conns, "mean_on_road": round(n_bar, 1),
        "updates_per_cpu_s": round(ups_cpu)}, "shares": shares,
        "hot_vehicle_arrays_mib": round(hot / 2 ** 20, 2), "network_arrays_mib": round(net_bytes / 2 ** 20, 2),
        "bytes_per_update": {k: {m: round(v, 1) for m, v in d.items()} for k, d in parts.items()},
        "bytes_per_update_counted": round(counted, 1), "bytes_per_update_lines": round(lines, 1),
        "bytes_per_update_float32": round(total["float32"], 1),
        "bytes_per_update_hot_lines": round(total["hot_lines"], 1),
        "flops_per_update": round(flops, 1), "flop_per_byte": round(flops / counted, 4),
        "traffic_gb_s": {k: round(v, 3) for k, v in need.items()},
        "share_of_triad_cpu": {"counted": round(need["counted_gb_s_cpu"] / best["triad_gb_s"], 3),
                               "lines": round(need["lines_gb_s_cpu"] / best["triad_gb_s"], 3)},
        "gathers_per_update": round(total["gathers"], 1), "ns_per_update_cpu": round(ns_cpu, 1),
        "ns_per_update_if_gathers_miss": round(ns_miss, 1),
        "load_start": load_start, "load_end": load_end}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
