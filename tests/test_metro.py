"""The metro city (twin/city/metro.py), routing by origin groups in parallel, the daily demand, and the
native engine's kernel profile: what the metropolitan-day benchmark rests on."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_trips
from twin.city import CityBuilder, grid_city, metro_city
from twin.city.builder import DIR_LEFT
from twin.city.graph import car_connected_edges
from twin.city.model import ROAD_CLASSES
from twin.config.models import ScenarioConfig
from twin.demand import DEFAULT_VTYPES, route_demand
from twin.demand.profiles import profile_weights
from twin.demand.routing import ROUTE_CHUNK, dijkstra, free_flow_cost, route_in_batches, route_trips, source_groups
from twin.demand.trips import trips_from_od
from twin.engines.native import NativeEngine


@pytest.fixture(scope="module")
def metro():
    return metro_city(20, 20)


def _connections(city):
    """(from lane, to lane) -> (direction, foe lanes, signal state per phase, speed)."""
    out = {}
    for k in range(city.n_connections):
        foes = tuple(sorted(city.conn_foe_lanes[city.conn_foe_offsets[k]:city.conn_foe_offsets[k + 1]].tolist()))
        sig = ()
        if city.conn_tls[k] >= 0:
            t = city.conn_tls[k]
            sig = tuple(city.phase_state[city.tls_phase_offsets[t]:city.tls_phase_offsets[t + 1],
                                         city.conn_link[k]].tolist())
        out[(int(city.conn_from_lane[k]), int(city.conn_to_lane[k]))] = (int(city.conn_dir[k]), foes, sig,
                                                                          float(city.conn_speed[k]))
    return out


def _builder_grid(bx, by, every, green=27.0, yellow=3.0, lanes=(2, 1), speeds=(50 / 3.6, 30 / 3.6), w=3.2, bs=200.0):
    """The streets of a grid made edge by edge with :class:`CityBuilder` (its connection and yielding rules),
    two-phase signals where arterials cross: what the metro builder computes with arrays."""
    import math

    b = CityBuilder("builder-grid")
    art_x = [i % every == 0 or i == bx for i in range(bx + 1)]
    art_y = [j % every == 0 or j == by for j in range(by + 1)]
    nid = lambda i, j: f"n{i}_{j}"  # noqa: E731
    for j in range(by + 1):
        for i in range(bx + 1):
            b.add_node(nid(i, j), i * bs, j * bs)
    radius = lambda i, j: max(lanes[0 if art_x[i] else 1], lanes[0 if art_y[j] else 1]) * w + 1.5  # noqa: E731

    def street(a, c, horizontal):
        art = art_y[a[1]] if horizontal else art_x[a[0]]
        line = a[1] if horizontal else a[0]
        for p, q in [(a, c), (c, a)]:
            b.add_edge(f"{nid(*p)}-{nid(*q)}", nid(*p), nid(*q), num_lanes=lanes[0 if art else 1],
                       speed=speeds[0 if art else 1], priority=3 if art else (2 if horizontal else 1),
                       road_class="arterial" if art else "local", lane_width=w, trim=(radius(*p), radius(*q)),
                       name=f"{'Avenue' if art else 'Street'} {'E' if horizontal else 'N'}{line}")

    for j in range(by + 1):
        for i in range(bx):
            street((i, j), (i + 1, j), True)
    for i in range(bx + 1):
        for j in range(by):
            street((i, j), (i, j + 1), False)
    for j in range(by + 1):
        for i in range(bx + 1):
            b.auto_connections(nid(i, j))
            if art_x[i] and art_y[j] and (i > 0) + (i < bx) + (j > 0) + (j < by) >= 3:
                conns = b.node_connections(nid(i, j))
                ns = [abs(math.sin(b.connection_heading(c))) > 0.7 for c in conns]
                state = lambda on, yel: "".join(  # noqa: E731
                    "r" if n != on else "y" if yel else "g" if c.dir == DIR_LEFT else "G" for c, n in zip(conns, ns))
                b.add_tls(nid(i, j), nid(i, j), [(green, state(True, False)), (yellow, state(True, True)),
                                                 (green, state(False, False)), (yellow, state(False, True))])
    return b.build()


NETWORK = ("node_ids", "node_x", "node_y", "node_type", "node_tls", "edge_ids", "edge_from", "edge_to", "edge_priority",
           "edge_road_class", "edge_lane_start", "edge_num_lanes", "edge_name", "lane_edge", "lane_index",
           "lane_length", "lane_speed", "lane_width", "lane_allow", "lane_shape_offsets", "lane_shape_xy",
           "conn_from_lane", "conn_to_lane", "conn_node", "conn_tls", "conn_link", "conn_dir", "conn_length",
           "conn_speed", "conn_foe_offsets", "conn_foe_lanes", "lane_conn_offsets", "tls_ids", "tls_offset",
           "tls_num_links", "tls_phase_offsets", "phase_duration", "phase_state")


@pytest.mark.parametrize("bx, by, every", [(6, 6, 3), (7, 5, 2), (9, 8, 4)])
def test_metro_streets_follow_the_builders_rules(bx, by, every):
    """Without ring and U-turns the array-built metro is the builder's grid to the last bit: same edges, lanes,
    lane geometry, connections, who yields to whom, signal links and states (grid_city is built so)."""
    g = _builder_grid(bx, by, every)
    m = metro_city(bx, by, arterial_every=every, ring=False, u_turns=False, left_green=0.0, left_turn_lanes=False,
                   green=27.0)
    for a in NETWORK:
        x, y = getattr(g, a), getattr(m, a)
        assert (x.dtype == y.dtype and np.array_equal(x, y)) if isinstance(x, np.ndarray) else x == y, a
    assert _connections(g) == _connections(m)
    c = grid_city(bx, by, arterial_every=every)
    assert all(np.array_equal(getattr(c, a), getattr(m, a)) for a in NETWORK)


def test_metro_ring_has_interchanges_and_carries_long_trips(metro):
    c = metro
    assert car_connected_edges(c).all()
    ring = np.array([e.startswith("ring") for e in c.edge_ids])
    on = np.array([e.startswith("on:") for e in c.edge_ids])
    off = np.array([e.startswith("off:") for e in c.edge_ids])
    # the ring (about a quarter in) crosses 3 arterials per side: per side and carriageway one ramp each way
    assert on.sum() == off.sum() == 4 * 3 * 2
    assert np.all(c.edge_road_class[ring | on | off] == ROAD_CLASSES.index("highway"))
    assert c.n_tls == 21 + 2 * 12  # the arterial crossings and both street nodes of every interchange
    # an on-ramp's lanes become the ring's right lanes (a lane addition, nobody yields) and the same number
    # leave it at the next off-ramp (exit only); between interchanges the ring has them as auxiliary lanes
    for ramps, side in ((on, "to"), (off, "from")):  # connections to the ring from on-ramps, from it to off-ramps
        k = np.flatnonzero(np.isin(c.lane_edge[c.conn_to_lane if side == "from" else c.conn_from_lane],
                                   np.flatnonzero(ramps)))
        assert k.size == 2 * ramps.sum()
        ring_lane = c.conn_from_lane[k] if side == "from" else c.conn_to_lane[k]
        ramp_lane = c.conn_to_lane[k] if side == "from" else c.conn_from_lane[k]
        assert np.all(ring[c.lane_edge[ring_lane]]) and np.array_equal(c.lane_index[ring_lane], c.lane_index[ramp_lane])
        assert np.all(c.edge_num_lanes[c.lane_edge[ring_lane]] == 3 + 2)
        assert np.all(c.conn_foe_offsets[k + 1] == c.conn_foe_offsets[k])
    ring_only = np.isin(c.lane_edge[c.conn_from_lane], np.flatnonzero(ring)) & \
        np.isin(c.lane_edge[c.conn_to_lane], np.flatnonzero(ring))
    assert np.all(c.conn_foe_offsets[np.flatnonzero(ring_only) + 1] == c.conn_foe_offsets[np.flatnonzero(ring_only)])
    # without auxiliary lanes, entering traffic yields to the ring's right lane, and only to it
    m = metro_city(20, 20, auxiliary_lanes=False)
    ring_m = np.array([e.startswith("ring") for e in m.edge_ids])
    k = np.flatnonzero(np.isin(m.conn_from_lane, m.edge_lane_start[on]))
    assert k.size == on.sum()
    for j in k:
        foes = m.conn_foe_lanes[m.conn_foe_offsets[j]:m.conn_foe_offsets[j + 1]]
        assert foes.size == 1 and m.lane_index[foes[0]] == 0 and ring_m[m.lane_edge[foes[0]]]
    # corner to far corner goes by the ring
    trips = make_trips(c, [("n0_1-n1_1", "n19_18-n20_18", 0.0)])
    d = route_demand(c, trips)
    assert ring[d.route(0)].sum() >= 5


def test_metro_is_built_fast_and_valid_at_full_size():
    import time

    t0 = time.perf_counter()
    c = metro_city(100, 100)
    assert time.perf_counter() - t0 < 20.0  # about 1 s; generous for a loaded machine
    assert c.n_edges > 40_000 and c.n_tls == 437 + 88 and c.n_zones == 2500


def _heading(city, e):
    x0, y0 = city.node_x[city.edge_from[e]], city.node_y[city.edge_from[e]]
    x1, y1 = city.node_x[city.edge_to[e]], city.node_y[city.edge_to[e]]
    return np.arctan2(y1 - y0, x1 - x0)


JOB_CENTRE_INTERCHANGES = {"off_ramp_lanes": 3, "terminal_turn_lanes": True, "free_right_turns": True}


@pytest.mark.parametrize("opts", [{}, JOB_CENTRE_INTERCHANGES,
                                  {**JOB_CENTRE_INTERCHANGES, "terminal_access_signals": True}],
                         ids=["diamonds", "job-centre-interchanges", "terminal-access-signals"])
def test_metro_signals_separate_crossing_streams_and_protect_left_turns(metro, opts):
    """In every phase of every signal the approaches that move are parallel (one axis at a time, an
    off-ramp alone); every movement gets a green; crossings and ramp terminals have a stage of protected
    left turns, ramp terminals one for the off-ramp alone; splits follow the hierarchy."""
    c = metro_city(20, 20, **opts) if opts else metro
    GREEN, MINOR, YELLOW = 2, 3, 1
    off = np.array([e.startswith("off:") for e in c.edge_ids])
    terminals = 0
    for t in range(c.n_tls):
        k = np.flatnonzero(c.conn_tls == t)
        e = c.lane_edge[c.conn_from_lane[k]]
        p0, p1 = c.tls_phase_offsets[t], c.tls_phase_offsets[t + 1]
        states = c.phase_state[p0:p1][:, c.conn_link[k]]
        assert np.all(np.any((states == GREEN) | (states == MINOR), axis=0)), c.tls_ids[t]  # nobody starves
        for row in states:
            moving = np.unique(e[row != 0])
            if moving.size > 1:
                h = np.array([_heading(c, m) for m in moving])
                assert np.all(np.abs(np.cos(h[:, None] - h[None, :])) > 0.9), (c.tls_ids[t], row)
                assert not off[moving].any()
        left = c.conn_dir[k] == 1
        protected_left = [np.all(row[left & (row != 0)] == GREEN) and np.all(row[~left] == 0) and (row == GREEN).any()
                          for row in states]
        assert any(protected_left), c.tls_ids[t]
        if off[e].any():
            terminals += 1
            ramp_only = [np.all(row[~off[e]] == 0) and np.all(row[off[e]] == GREEN) for row in states]
            assert sum(ramp_only) == 1
            d = c.phase_duration[p0:p1]
            art = c.edge_road_class[e] == ROAD_CLASSES.index("arterial")
            # the arterial's through green at least the off-ramp's, the side street's the shortest
            g_art = d[np.any(states[:, art & ~left] == GREEN, axis=1)].sum()
            g_loc = d[np.any(states[:, ~art & ~off[e]] == GREEN, axis=1)].sum()
            g_ramp = d[np.array(ramp_only)].sum()
            assert g_art >= g_ramp > g_loc > 0
    assert terminals == 2 * 12


def test_metro_city_from_yaml_and_a_ring_too_small_is_one_error():
    cfg = ScenarioConfig.model_validate({"name": "m", "city": {"type": "metro", "blocks_x": 20, "blocks_y": 20},
                                         "demand": {"type": "od", "trips": 10}})
    from twin.city.from_config import build_city

    assert build_city(cfg.city).name == "metro20x20"
    with pytest.raises(Exception, match="at least 4 \\* arterial_every = 20 blocks"):
        ScenarioConfig.model_validate({"name": "m", "city": {"type": "metro", "blocks_x": 12},
                                       "demand": {"type": "od", "trips": 10}})


def _random_trips(city, n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, city.n_edges, n).astype(np.int32), rng.integers(0, city.n_edges, n).astype(np.int32)


def test_routes_are_shortest_paths_with_closed_edges(metro):
    c = metro
    offsets, targets = c.edge_successors
    cost = free_flow_cost(c.lane_length, c.edge_lane_start, c.edge_speed)
    cost[np.random.default_rng(3).integers(0, c.n_edges, 40)] = np.inf
    o, d = _random_trips(c, 400, 1)
    d[:3] = o[:3]
    lens = np.zeros(o.size, dtype=np.int64)
    r_off, r_edges, r_cost = route_trips(offsets, targets, cost, o, d, lens)
    lens_b = np.zeros(o.size, dtype=np.int64)
    b_off, b_edges, _ = route_in_batches(offsets, targets, cost, o, d, lens_b, batch_groups=5)
    assert np.array_equal(r_off, b_off) and np.array_equal(r_edges, b_edges)
    arcs = set(zip(np.repeat(np.arange(c.n_edges), np.diff(offsets)).tolist(), targets.tolist()))
    dist, pred = np.empty(c.n_edges), np.empty(c.n_edges, dtype=np.int32)
    n_none = 0
    for i in range(o.size):
        r = r_edges[r_off[i]:r_off[i + 1]]
        if not np.isfinite(cost[o[i]]):
            assert r.size == 0
            continue
        if o[i] == d[i]:
            assert r.tolist() == [o[i]]
            continue
        dijkstra(offsets, targets, cost, o[i], dist, pred)
        if not np.isfinite(dist[d[i]]):
            assert r.size == 0 and not np.isfinite(r_cost[i])
            n_none += 1
            continue
        assert r[0] == o[i] and r[-1] == d[i]
        assert all((a, b) in arcs for a, b in zip(r[:-1].tolist(), r[1:].tolist()))
        assert cost[r].sum() == pytest.approx(dist[d[i]], rel=1e-12) == pytest.approx(r_cost[i], rel=1e-12)
    assert n_none < o.size // 2


def _grid_graph(width: int):
    """A width x width grid of nodes, each linked to its four neighbours: CSR ``(offsets, targets)``."""
    r, c = np.divmod(np.arange(width * width), width)
    nbrs = [(r + dr) * width + (c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))]
    ok = [(0 <= r + dr) & (r + dr < width) & (0 <= c + dc) & (c + dc < width)
          for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))]
    targets = np.stack(nbrs, axis=1)[np.stack(ok, axis=1)]  # row by row: each node's neighbours in turn
    offsets = np.concatenate([[0], np.cumsum(np.stack(ok, axis=1).sum(axis=1))])
    return offsets.astype(np.int32), targets.astype(np.int32)


def test_long_routes_of_many_trees_are_whole():
    """Routes of about 80 edges from more origin groups than one parallel loop takes: the routes' buffer
    grows between the loops (it once went on being written where it had been, giving trips the routes of
    others)."""
    offsets, targets = _grid_graph(120)
    rng = np.random.default_rng(1)
    cost = rng.uniform(5, 20, offsets.size - 1)
    o, d = (rng.integers(0, offsets.size - 1, 1200).astype(np.int32) for _ in range(2))
    assert source_groups(offsets, targets, np.unique(o).astype(np.int64)).max() + 1 > 3 * ROUTE_CHUNK
    lens = np.zeros(o.size, dtype=np.int64)
    r_off, r_edges, _ = route_trips(offsets, targets, cost, o, d, lens)
    assert r_edges.size > 40 * o.size
    arcs = set(zip(np.repeat(np.arange(offsets.size - 1), np.diff(offsets)).tolist(), targets.tolist()))
    for i in range(o.size):
        r = r_edges[r_off[i]:r_off[i + 1]].tolist()
        assert r[0] == o[i] and r[-1] == d[i] and all(p in arcs for p in zip(r[:-1], r[1:]))
    lens_b = np.zeros(o.size, dtype=np.int64)
    b_off, b_edges, _ = route_in_batches(offsets, targets, cost, o, d, lens_b, batch_groups=50)
    assert np.array_equal(r_off, b_off) and np.array_equal(r_edges, b_edges)


def test_routing_is_the_same_on_one_and_two_threads(metro):
    import numba

    c = metro
    offsets, targets = c.edge_successors
    cost = free_flow_cost(c.lane_length, c.edge_lane_start, c.edge_speed)
    o, d = _random_trips(c, 3000, 2)
    out = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            lens = np.zeros(o.size, dtype=np.int64)
            out.append(route_trips(offsets, targets, cost, o, d, lens))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_daily_profile_has_two_peaks():
    w = profile_weights("daily")
    hourly = w.reshape(24, 4).sum(axis=1)
    assert w.sum() == pytest.approx(1.0)
    assert 7 <= hourly[:12].argmax() <= 9 and 16 <= 12 + hourly[12:].argmax() <= 18
    assert 0.08 < hourly.max() < 0.12  # the busiest hour: about a tenth of the day
    assert hourly[2] < 0.1 * hourly.max() and hourly[12] < 0.6 * hourly.max()  # night low, midday between


def test_return_trips_go_back_after_the_given_time(metro):
    c = metro
    od = np.zeros((c.n_zones, c.n_zones))
    home, work = 0, c.n_zones - 1
    od[home, work] = 1000.0
    trips = trips_from_od(c, od, np.random.default_rng(0), begin=0.0, end=86_400.0, profile="daily",
                          vtypes=[DEFAULT_VTYPES["car"]], vtype_shares=[1.0], return_after=13 * 3600.0)
    zone_of = np.full(c.n_edges, -1)
    for z in range(c.n_zones):
        zone_of[c.zone_edge_list(z)] = z
    later = trips.depart >= 13 * 3600.0
    assert 0 < later.sum() < len(trips)
    assert np.all(zone_of[trips.origin[~later]] == home) and np.all(zone_of[trips.destination[~later]] == work)
    assert np.all(zone_of[trips.origin[later]] == work) and np.all(zone_of[trips.destination[later]] == home)


def test_kernel_profile_times_the_step_and_changes_nothing(metro):
    c = metro
    o, d = _random_trips(c, 300, 4)
    from twin.demand import Trips

    trips = Trips(o, d, np.sort(np.random.default_rng(5).random(o.size) * 300.0), np.zeros(o.size, np.int32),
                  (DEFAULT_VTYPES["car"],))
    demand = route_demand(c, trips)
    runs = []
    for profile in (False, True):
        eng = NativeEngine(profile=profile)
        eng.start(c, demand, seed=1)
        eng.advance(600.0)
        runs.append(eng)
    plain, timed = runs
    assert plain.profile is None and "_one_step" not in vars(plain)  # off: the class's own code runs
    for a in ("pos", "speed", "lane", "state", "t_arrive", "dist"):
        assert np.array_equal(getattr(plain, a), getattr(timed, a), equal_nan=True), a
    s, calls = timed.profile.seconds, timed.profile.calls
    assert calls["kernels.move"] == 600 and s["kernels.move"] > 0
    assert {"kernels.commit", "kernels.sort_vehicles", "kernels.update_signals"} <= set(s)
    rows = timed.profile.table()
    assert rows[0][1] == max(s.values()) and sum(r[3] for r in rows) == pytest.approx(1.0)


def test_metro_outer_arterials_and_grade_separated_crossings():
    """``outer_arterial_lanes`` widens only the arterials outside the ring, ``inner_arterial_lanes`` those inside it;
    ``grade_separated_blocks`` turns the
    arterial crossings just outside it into unsignalised interchanges whose through movements yield to nobody."""
    base = metro_city(20, 20)  # ring at 2.5 and 17.5 blocks; arterials every 5: 0, 5, 10, 15, 20
    wide = metro_city(20, 20, outer_arterial_lanes=3)
    lanes = lambda c, e: int(c.edge_num_lanes[c.edge_index[e]])  # noqa: E731
    assert lanes(base, "n0_6-n0_7") == 2 and lanes(wide, "n0_6-n0_7") == 3  # on the city's edge, outside the ring
    assert lanes(wide, "n5_6-n5_7") == lanes(base, "n5_6-n5_7") == 2  # inside
    assert lanes(wide, "n5_0-n5_1") == 3 and lanes(wide, "n5_3-n5_4") == 2  # the ring passes between 2 and 3
    inner = metro_city(20, 20, inner_arterial_lanes=3)  # ``inner_arterial_lanes`` widens only those inside it
    inner.validate()
    assert car_connected_edges(inner).all()
    assert lanes(inner, "n5_6-n5_7") == lanes(inner, "n5_3-n5_4") == 3 and lanes(inner, "n0_6-n0_7") == 2
    assert lanes(inner, "n5_2-n5_3") == lanes(base, "n5_2-n5_3")  # under the ring (between its terminals)
    sep = metro_city(20, 20, grade_separated_blocks=5)
    gone = set(base.tls_ids) - set(sep.tls_ids)
    assert gone and not set(sep.tls_ids) - set(base.tls_ids)
    assert all("0" in (n[1:].split("_")[0], n.split("_")[1]) or "20" in n for n in gone)  # on the outer arterials
    k = sep.node_ids.index("n0_5")
    assert sep.node_tls[k] < 0
    through = [c for c in range(sep.n_connections) if sep.conn_node[c] == k and sep.conn_dir[c] == 0]
    assert through and all(sep.conn_foe_offsets[c + 1] == sep.conn_foe_offsets[c] for c in through)


def test_metro_outer_ring():
    """``outer_ring``: a second ring motorway nearer the edge, with its own interchanges, reachable from every street."""
    base, two = metro_city(60, 60), metro_city(60, 60, outer_ring=True)
    outer = [n for n in two.node_ids if n.startswith("outer")]
    assert outer and not [n for n in base.node_ids if n.startswith("outer")]
    # inner ring at 12.5 / 47.5 blocks, the outer one at 2.5 / 57.5: 11 interchanges a side, two terminals each
    assert len(two.tls_ids) == len(base.tls_ids) + 4 * 11 * 2
    xs = np.array([two.node_x[two.node_ids.index(n)] for n in outer]) / 200.0
    assert 2.0 < xs.min() < 3.0 and 57.0 < xs.max() < 58.0
    assert car_connected_edges(two).all()  # every edge reaches every other (the ramps join the grid)


def _turns(city, a, b):
    """(from lane index, to lane index, signal index) of the connections from edge ``a`` to edge ``b``."""
    ea, eb = city.edge_index[a], city.edge_index[b]
    k = np.flatnonzero((city.lane_edge[city.conn_from_lane] == ea) & (city.lane_edge[city.conn_to_lane] == eb))
    return sorted(zip(city.lane_index[city.conn_from_lane[k]].tolist(), city.lane_index[city.conn_to_lane[k]].tolist(),
                      city.conn_tls[k].tolist()))


def test_metro_job_centre_interchanges():
    """``off_ramp_lanes``, ``terminal_turn_lanes`` and ``free_right_turns`` build valid cities: 3-lane off-ramps
    fed from the ring's exit lanes and an option lane, dual turns between ramps and arterials at the terminals, and the off-ramp's right turn
    onto the arterial unsignalised into a lane of its own that nothing else enters."""
    base = metro_city(20, 20)
    dual = metro_city(20, 20, off_ramp_lanes=3, terminal_turn_lanes=True)
    job = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES)
    for c in (dual, job):
        c.validate()
        assert car_connected_edges(c).all()
        assert c.tls_ids == base.tls_ids  # the same signalised terminals and crossings
        ramp_lanes = np.flatnonzero(np.char.startswith(np.array(c.edge_ids)[c.lane_edge], "off:"))
        assert np.all(np.diff(c.lane_conn_offsets)[ramp_lanes] > 0)  # every off-ramp lane leads on
    lanes = lambda c, e: int(c.edge_num_lanes[c.edge_index[e]])  # noqa: E731
    # the outside terminal n5_2 of the ring's south side (at 2.5 blocks): the off-ramp from the
    # counter-clockwise carriageway, north (left) onto the arterial towards the ring, south (right) away
    off, north, south, on = "off:ringccw_1-n5_2", "n5_2-n5_3", "n5_2-n5_1", "on:n5_2-ringccw_2"
    assert lanes(base, off) == 2 and lanes(dual, off) == lanes(job, off) == 3
    # the ring's two exit-only lanes feed the off-ramp's right lanes, its right through lane (an option lane:
    # on along the ring or off) the third
    ring_in, ring_on = "ringccw_0-ringccw_1", "ringccw_1-ringccw_2"
    assert lanes(dual, ring_in) == 3 + 2 and _turns(base, ring_in, off) == [(0, 0, -1), (1, 1, -1)]
    assert _turns(dual, ring_in, off) == [(0, 0, -1), (1, 1, -1), (2, 2, -1)]
    assert [t[:2] for t in _turns(dual, ring_in, ring_on)] == [(2, 0), (3, 1), (4, 2)]
    # one lane per turn on a diamond
    assert [t[:2] for t in _turns(base, off, north)] == [(1, 2)]
    assert [t[:2] for t in _turns(base, off, south)] == [(0, 0)]
    # dual left from the off-ramp's two left lanes into the arterial's through lanes, dual right likewise
    assert [t[:2] for t in _turns(dual, off, north)] == [(1, 0), (2, 1)]  # its through lanes, not the left-turn lane
    assert [t[:2] for t in _turns(dual, off, south)] == [(0, 0), (1, 1)]
    # the arterial's right turn onto the on-ramp from both through lanes (the side street's stays single)
    assert [t[:2] for t in _turns(base, "n6_2-n5_2", on)] == [(0, 0)]
    assert [t[:2] for t in _turns(dual, "n5_1-n5_2", on)] == [(0, 0), (1, 1)]
    assert [t[:2] for t in _turns(dual, "n6_2-n5_2", on)] == [(0, 0)]
    # free right: the arterial south of the terminal has one lane more, its right lane the off-ramp's alone,
    # entered without a signal and without yielding; the terminal's other movements keep the other lanes
    assert lanes(job, south) == lanes(base, south) + 1
    free = _turns(job, off, south)
    assert free == [(0, 0, -1)]
    into_south = np.flatnonzero(job.lane_edge[job.conn_to_lane] == job.edge_index[south])
    right_lane = into_south[job.lane_index[job.conn_to_lane[into_south]] == 0]
    assert right_lane.size == 1 and job.conn_foe_offsets[right_lane[0] + 1] == job.conn_foe_offsets[right_lane[0]]
    assert np.all(job.conn_tls[into_south[job.lane_index[job.conn_to_lane[into_south]] > 0]] >= 0)
    assert [t[:2] for t in _turns(job, "n5_3-n5_2", south)] == [(0, 1), (1, 2)]  # the through lanes, shifted
    n_free = int(np.sum((job.conn_tls < 0) & (job.node_tls[job.conn_node] >= 0)))
    assert n_free == int(sum(e.startswith("off:") for e in job.edge_ids))  # one per off-ramp
    for bad in ({"off_ramp_lanes": 1}, {"off_ramp_lanes": 3}, {"off_ramp_lanes": 4, "terminal_turn_lanes": True}):
        with pytest.raises(ValueError, match="off_ramp_lanes"):  # fewer than the ramps, or lanes leading nowhere
            metro_city(20, 20, **bad)
    with pytest.raises(ValueError, match="off_ramp_lanes"):
        ScenarioConfig.model_validate({"name": "m", "city": {"type": "metro", "blocks_x": 20, "blocks_y": 20,
                                                             "off_ramp_lanes": 3}, "demand": {"type": "od", "trips": 10}})


def test_metro_on_ramp_right_lanes():
    """``on_ramp_right_lanes`` builds a valid city: every arterial approach to a terminal whose right turn leads
    onto the on-ramp has an exclusive right-turn lane (lane 0, fed at the junction before by the right lane
    going straight on) whose one movement is that turn, unsignalised, into the on-ramp's right lane; the
    approach's other movements keep its other lanes (shifted by one), and traffic on it arrives."""
    from conftest import run_native

    job = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES)
    c = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES, on_ramp_right_lanes=True)
    c.validate()
    assert car_connected_edges(c).all() and c.tls_ids == job.tls_ids
    lanes = lambda c, e: int(c.edge_num_lanes[c.edge_index[e]])  # noqa: E731
    # the outside terminal n5_2 of the ring's south side: from the south (the outer districts) the on-ramp of
    # the counter-clockwise carriageway is a right turn; from the north (the inside terminal) a left turn
    south_in, on, north_out = "n5_1-n5_2", "on:n5_2-ringccw_2", "n5_2-n5_3"
    assert lanes(c, south_in) == lanes(job, south_in) + 1 and lanes(c, "n5_3-n5_2") == lanes(job, "n5_3-n5_2")
    assert _turns(c, south_in, on) == [(0, 0, -1)]  # the free right turn, from the added lane only
    assert _turns(job, south_in, on) == [(0, 0, 3), (1, 1, 3)]  # (signalised from both through lanes before)
    assert _turns(c, south_in, north_out) == [(1, 0, 3), (2, 1, 3), (2, 2, 3)]  # through lanes shifted by one
    assert _turns(c, "n5_3-n5_2", on) == _turns(job, "n5_3-n5_2", on) == [(2, 1, 3)]  # the left turn, other lane
    assert _turns(c, "n5_0-n5_1", south_in) == [(0, 0, -1), (0, 1, -1), (1, 2, -1), (1, 3, -1)]  # fed by lane 0
    right = np.flatnonzero((c.lane_edge[c.conn_from_lane] == c.edge_index[south_in]) & (c.lane_index[c.conn_from_lane] == 0))
    assert right.size == 1 and c.conn_foe_offsets[right[0] + 1] == c.conn_foe_offsets[right[0]]  # yields to none
    n_free = int(np.sum((c.conn_tls < 0) & (c.node_tls[c.conn_node] >= 0)))
    assert n_free == sum(e.startswith("off:") or e.startswith("on:") for e in c.edge_ids)  # one per ramp
    specs = [("n5_0-n5_1", "ringccw_3-ringccw_4", 4.0 * k) for k in range(60)]  # free right onto the ring
    specs += [("n5_0-n5_1", "n5_4-n5_5", 4.0 * k + 2.0) for k in range(60)]  # the arterial's through traffic
    trips = make_trips(c, specs)
    d = route_demand(c, trips)
    assert sum(c.edge_index[on] in d.route(i) for i in range(len(specs))) == 60  # the right-turners take it
    snap = run_native(c, trips, 900.0).observe()
    assert snap.teleports == 0 and snap.arrived == len(specs)


def test_metro_job_centre_interchanges_carry_traffic():
    """Vehicles leave the ring by the free right turn and merge with the arterial's through traffic beyond the
    terminal (each in its own lanes): all arrive, none teleports."""
    from conftest import run_native

    c = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES)
    specs = [("ringccw_0-ringccw_1", "n5_1-n5_0", 4.0 * k) for k in range(60)]  # off-ramp, free right, south
    specs += [("n5_4-n5_3", "n5_1-n5_0", 4.0 * k + 2.0) for k in range(60)]  # the arterial's through traffic
    trips = make_trips(c, specs)
    d = route_demand(c, trips)
    off, south = c.edge_index["off:ringccw_1-n5_2"], c.edge_index["n5_2-n5_1"]
    from_ring = [i for i in range(len(specs)) if d.route(i)[0] == c.edge_index["ringccw_0-ringccw_1"]]
    assert len(from_ring) == 60 and all(list(d.route(i)[1:3]) == [off, south] for i in from_ring)
    eng = run_native(c, trips, 900.0)
    snap = eng.observe()
    assert snap.teleports == 0 and snap.arrived == len(specs)


def test_metro_lane_balanced_ramps():
    """``lane_balanced_ramps``: at the south job centre's interchange (arterial 10 of a 20 x 20 city) the
    counter-clockwise carriageway's on-ramp adds two lanes; the next exit (to ``n15_2``) takes only the right
    one exit-only, the left one (the carried lane) goes on as a through lane, an option lane for the exit like
    the next; the exit after it (around the corner, to ``n18_5``) takes it as a third exit-only lane. No other
    interchange changes, and traffic through the design (entering and going on past both exits, and leaving
    at the next exit) arrives without teleports."""
    from conftest import run_native

    job = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES)
    c = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES, lane_balanced_ramps=True)
    c.validate()
    assert car_connected_edges(c).all() and c.edge_ids == job.edge_ids and c.tls_ids == job.tls_ids
    lanes = lambda c, e: int(c.edge_num_lanes[c.edge_index[e]])  # noqa: E731
    after_on, within, corner, before_exit = ("ringccw_4-ringccw_5", "ringccw_5-ringccw_6", "ringccw_6-ringccw_7",
                                             "ringccw_7-ringccw_8")
    assert [lanes(c, e) for e in (after_on, within, corner, before_exit)] == [5, 4, 6, 6]
    assert [lanes(job, e) for e in (after_on, within, corner, before_exit)] == [5, 3, 5, 5]
    # one carried lane per job centre and carriageway: 4 centres x 2 carriageways, 3 edges each here
    changed = np.flatnonzero(c.edge_num_lanes != job.edge_num_lanes)
    assert changed.size == 24 and np.all(c.edge_num_lanes[changed] == job.edge_num_lanes[changed] + 1)
    assert all(c.edge_ids[k].startswith("ring") for k in changed)
    assert _turns(c, "on:n10_2-ringccw_4", after_on) == [(0, 0, -1), (1, 1, -1)]
    # the next exit: lane 0 exit-only, lanes 1-2 option lanes (on along the ring or off), lane 1 carried on
    off1 = "off:ringccw_5-n15_2"
    assert _turns(c, after_on, off1) == _turns(job, after_on, off1) == [(0, 0, -1), (1, 1, -1), (2, 2, -1)]
    assert [t[:2] for t in _turns(c, after_on, within)] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert [t[:2] for t in _turns(job, after_on, within)] == [(2, 0), (3, 1), (4, 2)]
    # the next on-ramp adds its two lanes right of the carried lane
    assert [t[:2] for t in _turns(c, within, "ringccw_6-ringccw_7")] == [(0, 2), (1, 3), (2, 4), (3, 5)]
    # the exit after it: three exit-only lanes (the next on-ramp's two and the carried lane) feed the off-ramp
    off2, after_exit = "off:ringccw_8-n18_5", "ringccw_8-ringccw_9"
    assert _turns(c, before_exit, off2) == [(0, 0, -1), (1, 1, -1), (2, 2, -1)]
    assert [t[:2] for t in _turns(c, before_exit, after_exit)] == [(3, 0), (4, 1), (5, 2)]
    assert lanes(c, after_exit) == lanes(job, after_exit) == 3
    specs = [("n10_1-n10_2", "ringccw_9-ringccw_10", 3.0 * k) for k in range(80)]  # on, past both exits
    specs += [("n10_1-n10_2", "n15_2-n15_1", 3.0 * k + 1.0) for k in range(40)]  # on, off at the next exit
    specs += [("ringccw_3-ringccw_4", "ringccw_9-ringccw_10", 3.0 * k + 2.0) for k in range(80)]  # along the ring
    trips = make_trips(c, specs)
    d = route_demand(c, trips)
    assert sum(c.edge_index["on:n10_2-ringccw_4"] in d.route(i) for i in range(len(specs))) == 120
    snap = run_native(c, trips, 1200.0).observe()
    assert snap.teleports == 0 and snap.arrived == len(specs)
    for bad in ({"off_ramp_lanes": 2, "terminal_turn_lanes": True}, {**JOB_CENTRE_INTERCHANGES, "ramp_lanes": 1},
                {**JOB_CENTRE_INTERCHANGES, "auxiliary_lanes": False}):
        with pytest.raises(ValueError, match="lane_balanced_ramps"):
            metro_city(20, 20, **bad, lane_balanced_ramps=True)
        with pytest.raises(ValueError, match="lane_balanced_ramps"):
            ScenarioConfig.model_validate({"name": "m", "city": {"type": "metro", "blocks_x": 20, "blocks_y": 20,
                                                                 "lane_balanced_ramps": True, **bad},
                                           "demand": {"type": "od", "trips": 10}})


def test_metro_bench_city_has_three_lane_arterials_through_its_interchanges():
    """The bench's city (``bench_metro.INTERCHANGES``: the job centres' interchanges and ``arterial_lanes: 3``) has
    three through lanes each way on every arterial, inside the ring, between an interchange's terminals (under the
    ring) and outside it, so that the evening's outflow from the 3-lane inner arterials meets no lane drop on its
    way out: at the ring's south side (inside terminal ``n5_3``, outside terminal ``n5_2``) the outward through
    lanes go on lane for lane at both terminals, and the off-ramps' dual turns lead into the through lanes."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_metro", ROOT / "benchmarks" / "bench_metro.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    c = metro_city(20, 20, **bench.INTERCHANGES)
    c.validate()
    assert car_connected_edges(c).all()
    art = np.flatnonzero(c.edge_road_class == ROAD_CLASSES.index("arterial"))
    left = np.array([c.node_tls[c.edge_to[k]] >= 0 for k in art])  # approaches to signals: a left-turn lane more
    c_from, c_to = c.lane_edge[c.conn_from_lane], c.lane_edge[c.conn_to_lane]
    from_off = np.char.startswith(np.asarray(c.edge_ids)[c_from], "off:")
    free = np.isin(art, c_to[from_off & (c.conn_tls < 0)])  # out of a terminal: the free right turn's lane more
    assert np.all(c.edge_num_lanes[art] == 3 + left + free)
    lanes = lambda e: int(c.edge_num_lanes[c.edge_index[e]])  # noqa: E731
    assert lanes("n5_6-n5_7") == lanes("n0_6-n0_7") == 3 and lanes("n5_3-n5_2") == lanes("n5_2-n5_3") == 3 + 1
    # outward: into the inside terminal, under the ring, out of the outside terminal (past its free right's lane 0)
    assert [t[:2] for t in _turns(c, "n5_4-n5_3", "n5_3-n5_2")] == [(0, 0), (1, 1), (2, 2), (2, 3)]
    assert [t[:2] for t in _turns(c, "n5_3-n5_2", "n5_2-n5_1")] == [(0, 1), (1, 2), (2, 3)]
    # the outer carriageway's off-ramp turns left (inward) into two through lanes, not the left-turn lane
    assert [t[:2] for t in _turns(c, "off:ringccw_1-n5_2", "n5_2-n5_3")] == [(1, 1), (2, 2)]
    # and the inner carriageway's off-ramp at the inside terminal left (outward) likewise
    assert [t[:2] for t in _turns(c, "off:ringcw_2-n5_3", "n5_3-n5_2")] == [(1, 1), (2, 2)]


def test_metro_terminal_access_signals():
    """``terminal_access_signals`` signalises exactly the junctions one block from each ramp terminal along its
    arterial, away from the ring (``n5_1`` beside the outside terminal ``n5_2``, ``n5_4`` beside the inside one
    ``n5_3``): local streets there get a green of their own (their connections signal-controlled, yielding to
    nobody but oncoming traffic when turning left); the rest of the city is unchanged."""
    job = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES)
    c = metro_city(20, 20, **JOB_CENTRE_INTERCHANGES, terminal_access_signals=True)
    c.validate()
    assert car_connected_edges(c).all()
    new = set(c.tls_ids) - set(job.tls_ids)
    assert not set(job.tls_ids) - new - set(c.tls_ids) and len(new) == 2 * 12  # 12 interchanges
    assert {"n5_1", "n5_4", "n1_5", "n4_5", "n16_10", "n19_10"} <= new and "n5_2" not in new
    k = c.node_index["n5_4"]
    into = np.flatnonzero(c.conn_node == k)
    assert np.all(c.conn_tls[into] == c.node_tls[k])
    local_in = c.lane_edge[c.conn_from_lane[into]] == c.edge_index["n4_4-n5_4"]
    assert local_in.any() and job.node_tls[job.node_index["n5_4"]] < 0
    # the arterial's approaches to the new signals get their exclusive left-turn lane, as at every signal
    assert int(c.edge_num_lanes[c.edge_index["n5_5-n5_4"]]) == int(job.edge_num_lanes[job.edge_index["n5_5-n5_4"]]) + 1
