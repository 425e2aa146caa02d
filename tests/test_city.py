from __future__ import annotations

import numpy as np
import pytest

from twin.city import CityBuilder, CityModel, corridor_city, grid_city
from twin.city.model import CityError, NodeType


def test_grid_is_deterministic_and_sized():
    a, b = grid_city(6, 6, seed=1), grid_city(6, 6, seed=1)
    assert a.summary() == b.summary()
    np.testing.assert_array_equal(a.bldg_height, b.bldg_height)
    assert a.n_nodes == 49 and a.n_edges == 2 * 2 * 6 * 7
    assert not np.array_equal(a.bldg_height, grid_city(6, 6, seed=2).bldg_height)


def test_grid_has_arterials_signals_zones_and_taller_buildings_downtown():
    c = grid_city(6, 6)
    lanes = c.edge_num_lanes
    assert set(np.unique(lanes)) == {1, 2}
    assert c.n_tls > 0 and np.all(c.node_type[c.node_tls >= 0] == NodeType.TRAFFIC_LIGHT)
    assert c.n_zones == 9 and np.all(np.diff(c.zone_edge_offsets) > 0)
    cx, cy = (np.array(c.bounds[:2]) + np.array(c.bounds[2:])) / 2
    centroids = np.array([c.building_footprint(i).mean(axis=0) for i in range(c.n_buildings)])
    r = np.hypot(centroids[:, 0] - cx, centroids[:, 1] - cy)
    assert c.bldg_height[r < 300].mean() > 1.5 * c.bldg_height[r > 500].mean()
    # every signal program gives each link green at some phase
    for k in range(c.n_tls):
        states = c.phase_state[c.tls_phase_offsets[k]:c.tls_phase_offsets[k + 1], :c.tls_num_links[k]]
        assert np.all((states >= 2).any(axis=0))


def test_city_arrays_are_read_only():
    c = corridor_city()
    with pytest.raises(ValueError):
        c.lane_length[0] = 1.0


def test_lane_geometry_and_lengths_consistent():
    c = grid_city(2, 2)
    for lane in range(c.n_lanes):
        shape = c.lane_shape(lane)
        length = np.hypot(*np.diff(shape, axis=0).T).sum()
        assert abs(length - c.lane_length[lane]) < 1e-6


def test_save_load_roundtrip(tmp_path):
    c = grid_city(3, 2)
    p = c.save(tmp_path / "city.npz")
    d = CityModel.load(p)
    assert d.summary() == c.summary() and d.edge_ids == c.edge_ids
    np.testing.assert_array_equal(d.conn_foe_lanes, c.conn_foe_lanes)


def test_load_rejects_garbage(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"not a zip file")
    with pytest.raises(CityError, match="not a twin city file"):
        CityModel.load(p)


def test_builder_errors_are_clear():
    b = CityBuilder("x")
    b.add_node("a", 0, 0)
    with pytest.raises(CityError, match="unknown node 'b'"):
        b.add_edge("e", "a", "b")
    with pytest.raises(CityError, match="duplicate node"):
        b.add_node("a", 1, 1)


def test_priority_junction_foes_minor_yields_to_major():
    c = grid_city(3, 3)  # arterial ring + local streets inside
    # a local north-south street entering an arterial junction yields to the arterial's lanes
    n = c.node_index["n1_0"]  # bottom arterial (E-W) crossed by local street x=1
    incoming = [e for e in range(c.n_edges) if c.edge_to[e] == n]
    minor = [e for e in incoming if c.edge_road_class[e] == 0][0]
    lane = c.edge_lane_start[minor]
    conns = range(c.lane_conn_offsets[lane], c.lane_conn_offsets[lane + 1])
    for k in conns:
        foes = c.conn_foe_lanes[c.conn_foe_offsets[k]:c.conn_foe_offsets[k + 1]]
        assert len(foes) > 0 and np.all(c.edge_priority[c.lane_edge[foes]] > c.edge_priority[minor])
