"""3D scenes of a city and its traffic (pyvista, off-screen).

Geometry is merged into a few meshes built with numpy (one for all
buildings, one for all lane ribbons, one for junction pads), so a
40 × 40-block city renders in seconds. Scenes read a results Dataset and the
city's geometry only; they never touch an engine.

Off-screen rendering uses VTK's EGL window (Mesa's ``libegl1`` and
``libgl1-mesa-dri`` from Debian) or OSMesa; see :func:`check_offscreen`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from twin.city.model import BUILDING_USES, ROAD_CLASSES, CityModel, Signal

USE_COLORS = {"residential": "#d9c7a7", "commercial": "#8fb3d9", "office": "#9aa5b8", "industrial": "#b59a8a",
              "public": "#c9a0c9"}
VTYPE_COLORS = ["#f5f5f5", "#f08c28", "#2a6fdb", "#e0d000", "#ff3030", "#60c060", "#bbbbbb"]
SIGNAL_RGB = {int(Signal.RED): (220, 30, 30), int(Signal.YELLOW): (240, 200, 0), int(Signal.GREEN): (30, 200, 60),
              int(Signal.GREEN_MINOR): (120, 220, 120), int(Signal.UNCONTROLLED): (160, 160, 160)}


class OffscreenError(RuntimeError):
    pass


def prefer_egl() -> None:
    """Without a display, ask VTK for its EGL window at once (it would try X first and warn)."""
    import os

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def check_offscreen() -> None:
    """Fail with a clear message if VTK cannot render without a display."""
    prefer_egl()
    import pyvista as pv

    try:
        p = pv.Plotter(off_screen=True, window_size=(8, 8))
        p.add_mesh(pv.Sphere())
        p.screenshot(return_img=True)
        p.close()
    except Exception as exc:  # noqa: BLE001
        raise OffscreenError(
            "VTK cannot render off-screen here: install Mesa's EGL (Debian: apt-get install libegl1 libegl-mesa0 "
            f"libgl1-mesa-dri) or OSMesa (libosmesa6), or run under Xvfb ({exc})") from None


# ------------------------------------------------------------------ meshes
def building_mesh(city: CityModel):
    """All buildings as one extruded PolyData with a ``use`` cell array (index into BUILDING_USES)."""
    import pyvista as pv

    if city.n_buildings == 0:
        return None
    off = city.bldg_offsets.astype(np.int64)
    n = np.diff(off)
    xy = city.bldg_xy
    p = xy.shape[0]
    h = np.repeat(city.bldg_height, n)
    pts = np.vstack([np.column_stack([xy, np.zeros(p)]), np.column_stack([xy, h])])
    idx = np.arange(p)
    ring_start = np.repeat(off[:-1], n)
    nxt = np.where(idx + 1 == np.repeat(off[1:], n), ring_start, idx + 1)
    sides = np.column_stack([np.full(p, 4), idx, nxt, nxt + p, idx + p]).ravel()
    tops = np.concatenate([np.concatenate([[k], np.arange(a, a + k) + p]) for a, k in zip(off[:-1], n)])
    mesh = pv.PolyData(pts, faces=np.concatenate([sides, tops]))
    use = city.bldg_use.astype(np.int32)
    mesh.cell_data["use"] = np.concatenate([np.repeat(use, n), use])
    return mesh


def road_mesh(city: CityModel, z: float = 0.05):
    """All lanes as ribbons of their width; cell arrays ``edge`` and ``lane``."""
    import pyvista as pv

    off = city.lane_shape_offsets.astype(np.int64)
    xy = city.lane_shape_xy
    seg_lane = np.repeat(np.arange(city.n_lanes), np.maximum(np.diff(off) - 1, 0))
    starts = np.concatenate([np.arange(a, b - 1) for a, b in zip(off[:-1], off[1:])]) if city.n_lanes else \
        np.zeros(0, np.int64)
    a, b = xy[starts], xy[starts + 1]
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    length[length == 0] = 1.0
    nrm = np.column_stack([-d[:, 1], d[:, 0]]) / length[:, None] * (city.lane_width[seg_lane] / 2.0)[:, None]
    quad = np.stack([a - nrm, b - nrm, b + nrm, a + nrm], axis=1).reshape(-1, 2)
    pts = np.column_stack([quad, np.full(quad.shape[0], z)])
    k = np.arange(starts.size) * 4
    faces = np.column_stack([np.full(starts.size, 4), k, k + 1, k + 2, k + 3]).ravel()
    mesh = pv.PolyData(pts, faces=faces)
    mesh.cell_data["edge"] = city.lane_edge[seg_lane].astype(np.int32)
    mesh.cell_data["lane"] = seg_lane.astype(np.int32)
    return mesh


def junction_mesh(city: CityModel, z: float = 0.04):
    """A square pad per junction, sized by the widest road that meets there."""
    import pyvista as pv

    half = np.full(city.n_nodes, 4.0)
    w = city.edge_num_lanes * np.array([city.lane_width[s] for s in city.edge_lane_start])
    np.maximum.at(half, city.edge_from, w)
    np.maximum.at(half, city.edge_to, w)
    cx, cy = city.node_x, city.node_y
    corners = np.stack([np.column_stack([cx - half, cy - half]), np.column_stack([cx + half, cy - half]),
                        np.column_stack([cx + half, cy + half]), np.column_stack([cx - half, cy + half])], axis=1)
    pts = np.column_stack([corners.reshape(-1, 2), np.full(4 * city.n_nodes, z)])
    k = np.arange(city.n_nodes) * 4
    return pv.PolyData(pts, faces=np.column_stack([np.full(city.n_nodes, 4), k, k + 1, k + 2, k + 3]).ravel())


# ------------------------------------------------------------- time slices
def nearest_time(ds: xr.Dataset, t: float | None, var: str = "time") -> float:
    times = np.unique(ds["veh_time"].values) if var == "veh_time" and "veh_time" in ds else ds["time"].values
    if times.size == 0:
        raise ValueError("the results have no recorded times")
    if t is None:
        if "running" in ds and var == "time":
            return float(times[int(np.argmax(ds["running"].values))])
        return float(times[len(times) // 2])
    return float(times[int(np.argmin(np.abs(times - t)))])


def edge_values(ds: xr.Dataset, t: float, color_by: str) -> tuple[np.ndarray, str, tuple[float, float]]:
    """Per-edge values at the recording interval ending nearest ``t``: (values, title, colour range)."""
    ti = int(np.argmin(np.abs(ds["time"].values - t)))
    speed = ds["speed"].values[ti]
    if color_by == "speed":
        return speed * 3.6, "speed [km/h]", (0.0, float(np.nanmax(speed * 3.6)) if np.isfinite(speed).any() else 50.0)
    if color_by == "congestion":
        limit = ds["edge_speed_limit"].values if "edge_speed_limit" in ds else None
        if limit is None:
            raise ValueError("the results carry no speed limits")
        return speed / limit, "speed / limit", (0.0, 1.0)
    raise ValueError(f"unknown colouring {color_by!r} (speed or congestion)")


@dataclass
class Frame:
    """What changes from one time to the next."""

    time: float
    edge_value: np.ndarray
    vehicles: tuple[np.ndarray, ...]  # x, y, angle, vtype
    signals: np.ndarray  # (n_signal_heads, 3) uint8 RGB
    incidents: list[int]  # edge indices


def frame(city: CityModel, ds: xr.Dataset, t: float, color_by: str) -> Frame:
    values, _, _ = edge_values(ds, t, color_by)
    vehicles = (np.zeros(0),) * 4
    if "veh_time" in ds:
        tv = nearest_time(ds, t, "veh_time")
        m = ds["veh_time"].values == tv
        vehicles = (ds["veh_x"].values[m], ds["veh_y"].values[m], ds["veh_angle"].values[m], ds["veh_vtype"].values[m])
    return Frame(t, values, vehicles, signal_colors(city, ds, t), active_incidents(city, ds, t))


def signal_heads(city: CityModel) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3), connection index) of every signalised connection's stop line."""
    conns = np.flatnonzero(city.conn_tls >= 0)
    ends = city.lane_shape_offsets[city.conn_from_lane[conns] + 1] - 1
    xy = city.lane_shape_xy[ends]
    return np.column_stack([xy, np.full(conns.size, 2.5)]), conns


def signal_colors(city: CityModel, ds: xr.Dataset, t: float) -> np.ndarray:
    _, conns = signal_heads(city)
    if conns.size == 0 or "signal_phase" not in ds:
        return np.zeros((conns.size, 3), np.uint8)
    ti = int(np.argmin(np.abs(ds["time"].values - t)))
    phase = ds["signal_phase"].values[ti]
    tls = city.conn_tls[conns]
    rows = city.tls_phase_offsets[tls] + phase[tls]
    states = city.phase_state[np.minimum(rows, city.phase_state.shape[0] - 1), city.conn_link[conns]]
    return np.array([SIGNAL_RGB[int(s)] for s in states], dtype=np.uint8)


def active_incidents(city: CityModel, ds: xr.Dataset, t: float) -> list[int]:
    inc = json.loads(ds.attrs.get("incidents", "[]")) if isinstance(ds.attrs.get("incidents"), str) else []
    return [city.edge_index[i["edge"]] for i in inc if i["start_s"] <= t < i["end_s"] and i["edge"] in city.edge_index]


# ------------------------------------------------------------------- scene
class Scene:
    """One plotter (or one subplot of it) showing a city at a time."""

    def __init__(self, plotter, city: CityModel, *, color_by: str = "congestion", clim=(0.0, 1.0),
                 title: str = "", legend: str = "speed / limit", cmap: str = "RdYlGn") -> None:
        import pyvista as pv

        self.pv, self.p, self.city = pv, plotter, city
        self.color_by, self.cmap, self.clim = color_by, cmap, clim
        xmin, ymin, xmax, ymax = self.bounds = city.bounds
        size = max(xmax - xmin, ymax - ymin, 100.0)
        self.size = size
        ground = pv.Plane(center=((xmin + xmax) / 2, (ymin + ymax) / 2, -0.05), direction=(0, 0, 1),
                          i_size=(xmax - xmin) + 0.2 * size, j_size=(ymax - ymin) + 0.2 * size)
        plotter.add_mesh(ground, color="#5f7f52", name="ground")
        plotter.add_mesh(junction_mesh(city), color="#55585c", name="junctions")
        self.roads = road_mesh(city)
        self.roads.cell_data["value"] = np.full(self.roads.n_cells, np.nan)
        plotter.add_mesh(self.roads, scalars="value", cmap=cmap, clim=clim, nan_color="#6b6e72", name="roads",
                         scalar_bar_args={"title": legend, "vertical": True, "position_x": 0.9, "position_y": 0.25,
                                          "height": 0.5, "fmt": "%.1f", "color": "white"})
        b = building_mesh(city)
        if b is not None:
            colors = np.array([_rgb(USE_COLORS[u]) for u in BUILDING_USES], dtype=np.uint8)
            b.cell_data["rgb"] = colors[b.cell_data["use"]]
            plotter.add_mesh(b, scalars="rgb", rgb=True, name="buildings", smooth_shading=False)
        self._labels()
        self._scale_bar()
        if title:
            plotter.add_text(title, position="upper_left", font_size=10, color="white", name="title")
        self.heads, _ = signal_heads(city)

    def _labels(self) -> None:
        c = self.city
        best: dict[str, tuple[float, int]] = {}
        for e in range(c.n_edges):
            name = c.edge_name[e]
            if not name or ROAD_CLASSES[c.edge_road_class[e]] not in ("arterial", "highway"):
                continue
            if name not in best or c.edge_length[e] > best[name][0]:
                best[name] = (float(c.edge_length[e]), e)
        chosen = sorted(best.items(), key=lambda kv: -kv[1][0])[:12]
        if not chosen:
            return
        pts = []
        for _, (_, e) in chosen:
            shp = c.lane_shape(c.edge_lane_start[e])
            pts.append([*shp[len(shp) // 2], 6.0])
        self.p.add_point_labels(np.array(pts), [n for n, _ in chosen], font_size=11, point_size=1,
                                shape_opacity=0.35, text_color="white", name="labels", always_visible=True)

    def _scale_bar(self) -> None:
        xmin, ymin, xmax, _ = self.bounds
        span = xmax - xmin
        nice = max(v for v in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if v <= max(span / 4, 10))
        y = ymin - 0.05 * self.size
        w = max(2.0, 0.006 * self.size)
        self.p.add_mesh(self.pv.Box(bounds=(xmin, xmin + nice, y - w, y + w, 0.0, 0.6)), color="white",
                        name="scale_bar")
        self.p.add_point_labels(np.array([[xmin + nice / 2, y - 3 * w, 1.0]]), [f"{nice} m"], font_size=11,
                                point_size=1, shape_opacity=0.0, text_color="white", name="scale_label",
                                always_visible=True)

    def air_layer(self, ds: xr.Dataset, t: float, pollutant: str) -> None:
        """The concentration of ``pollutant`` [µg/m³] in the interval ending nearest ``t`` as the ground's colour
        (it replaces the ground: a layer just above it would flicker against it), with its own legend."""
        if "concentration" not in ds:
            raise ValueError("the results have no concentrations (the scenario has no air section)")
        pols = [str(p) for p in ds["air_pollutant"].values]
        if pollutant not in pols:
            raise ValueError(f"no {pollutant!r} concentration (the results have {pols})")
        ti = int(np.argmin(np.abs(ds["time"].values - t)))
        field = ds["concentration"].sel(air_pollutant=pollutant).values[ti]
        x, y = ds["x"].values, ds["y"].values
        dx = float(x[1] - x[0]) if x.size > 1 else float(ds.attrs.get("air_resolution_m", 1.0))
        img = self.pv.ImageData(dimensions=(x.size + 1, y.size + 1, 1), spacing=(dx, dx, 1.0),
                                origin=(x[0] - dx / 2, y[0] - dx / 2, -0.05))
        img.cell_data["conc"] = np.asarray(field, dtype=np.float64).ravel()  # x fastest, as (y, x) row-major
        self.p.remove_actor("ground")
        self.p.add_mesh(img, scalars="conc", cmap="YlOrRd", name="air", show_edges=False,
                        scalar_bar_args={"title": f"{pollutant} [µg/m³]", "vertical": True, "position_x": 0.06,
                                         "position_y": 0.25, "height": 0.5, "fmt": "%.1f", "color": "white"})

    def update(self, fr: Frame) -> None:
        pv = self.pv
        self.roads.cell_data["value"] = fr.edge_value[self.roads.cell_data["edge"]]
        x, y, ang, vt = fr.vehicles
        self.p.remove_actor("vehicles")
        if x.size:
            pts = pv.PolyData(np.column_stack([x, y, np.full(x.size, 0.8)]))
            pts["vec"] = np.column_stack([np.cos(ang), np.sin(ang), np.zeros(x.size)])
            box = pv.Box(bounds=(-2.3, 2.3, -0.9, 0.9, -0.75, 0.75))
            glyphs = pts.glyph(orient="vec", scale=False, geom=box)
            palette = np.array([_rgb(c) for c in VTYPE_COLORS], dtype=np.uint8)
            glyphs.point_data["rgb"] = np.repeat(palette[np.asarray(vt, int) % len(VTYPE_COLORS)], box.n_points, axis=0)
            self.p.add_mesh(glyphs, scalars="rgb", rgb=True, name="vehicles")
        self.p.remove_actor("signals")
        if len(self.heads):
            ball = pv.Sphere(radius=1.2, theta_resolution=8, phi_resolution=8)
            heads = pv.PolyData(self.heads).glyph(scale=False, orient=False, geom=ball)
            heads.point_data["rgb"] = np.repeat(fr.signals, ball.n_points, axis=0)
            self.p.add_mesh(heads, scalars="rgb", rgb=True, name="signals")
        self.p.remove_actor("incidents")
        if fr.incidents:
            c = self.city
            mids = np.array([[*c.lane_shape(c.edge_lane_start[e]).mean(axis=0), 4.0] for e in fr.incidents])
            self.p.add_mesh(pv.PolyData(mids).glyph(scale=False, orient=False,
                                                    geom=pv.Cone(direction=(0, 0, -1), height=8, radius=3)),
                            color="#ff2020", name="incidents")
        self.p.add_text(f"t = {_clock(fr.time)}", position="upper_right", font_size=10, color="white", name="clock")

    def camera(self, preset: str, fr: Frame | None = None) -> None:
        xmin, ymin, xmax, ymax = self.bounds
        cx, cy, s = (xmin + xmax) / 2, (ymin + ymax) / 2, self.size
        if preset == "overview":
            self.p.camera_position = [(cx - 0.3 * s, cy - 1.15 * s, 1.05 * s), (cx, cy - 0.05 * s, 0.0), (0, 0, 1)]
            self.p.camera.view_angle = 38.0
        elif preset == "street":
            # on the busiest main road, at the height of a first-floor window, looking along it
            c = self.city
            main = [e for e in range(c.n_edges) if ROAD_CLASSES[c.edge_road_class[e]] in ("arterial", "highway")]
            cand = main or list(range(c.n_edges))
            if fr is not None and np.isfinite(fr.edge_value).any():
                busy = np.nan_to_num(fr.edge_value[cand], nan=2.0)
                e = cand[int(np.argmin(busy))]  # the most congested main-road edge
            else:
                e = max(cand, key=lambda k: c.edge_length[k])
            shp = c.lane_shape(c.edge_lane_start[e] + c.edge_num_lanes[e] - 1)
            a, b = shp[0], shp[-1]
            d = (b - a) / max(np.hypot(*(b - a)), 1e-9)
            nrm = np.array([d[1], -d[0]])
            eye = a - 25.0 * d - 6.0 * nrm
            self.p.camera_position = [(eye[0], eye[1], 9.0), (b[0], b[1], 2.0), (0, 0, 1)]
            self.p.camera.view_angle = 55.0
        elif preset == "follow":
            if fr is None or fr.vehicles[0].size == 0:
                return self.camera("street")
            x, y, ang, _ = fr.vehicles
            k = int(np.argsort(x + y)[x.size // 2])
            dx, dy = math.cos(ang[k]), math.sin(ang[k])
            self.p.camera_position = [(x[k] - 35 * dx, y[k] - 35 * dy, 14.0), (x[k] + 30 * dx, y[k] + 30 * dy, 1.0),
                                      (0, 0, 1)]
        else:
            raise ValueError(f"unknown camera {preset!r} (overview, street, follow)")


def _rgb(hexcolor: str) -> tuple[int, int, int]:
    h = hexcolor.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def _clock(t: float) -> str:
    t = int(round(t))
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"
