"""``run_sim.py render``: PNG stills, movies (MP4/GIF), comparison views and an interactive HTML scene."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

from twin.city.model import CityModel
from twin.results.io import load_run  # noqa: F401  (the views' entry point to a results folder)
from twin.viz.scene import Scene, check_offscreen, edge_values, frame, nearest_time

log = logging.getLogger(__name__)


def _plotter(size: tuple[int, int], shape=(1, 1)):
    import pyvista as pv

    check_offscreen()
    p = pv.Plotter(off_screen=True, window_size=size, shape=shape, border=False)
    p.set_background("#1d2430", top="#3b4a63")
    return p


def render_still(results_dir, out: str | Path, *, time_s: float | None = None, camera: str = "overview",
                 color_by: str = "congestion", size=(1600, 1000), air: str | None = None) -> dict:
    """One PNG of the city at ``time_s`` (default: when most vehicles were running); ``air``: a pollutant whose
    concentration is laid on the ground."""
    ds, city = load_run(results_dir)
    t0 = time.perf_counter()
    t = nearest_time(ds, time_s)
    _, legend, clim = edge_values(ds, t, color_by)
    p = _plotter(size)
    scene = Scene(p, city, color_by=color_by, clim=clim, legend=legend,
                  title=f"{ds.attrs.get('scenario', '')} — {city.name}")
    fr = frame(city, ds, t, color_by)
    scene.update(fr)
    if air:
        scene.air_layer(ds, t, air)
    scene.camera(camera, fr)
    p.screenshot(str(out))
    p.close()
    return {"file": str(out), "time_s": t, "render_s": round(time.perf_counter() - t0, 3),
            "vehicles": int(fr.vehicles[0].size)}


def render_movie(results_dir, out: str | Path, *, start: float | None = None, end: float | None = None,
                 camera: str = "overview", color_by: str = "congestion", size=(1280, 800), fps: int = 4) -> dict:
    """A time-lapse over the vehicle snapshots in [start, end] (MP4 or GIF by the file's suffix)."""
    ds, city = load_run(results_dir)
    if "veh_time" not in ds:
        raise ValueError(f"{results_dir}: the run kept no vehicle snapshots (run.snapshot_interval_s is 0)")
    times = np.unique(ds["veh_time"].values)
    times = times[(times >= (start if start is not None else -np.inf)) & (times <= (end if end is not None else np.inf))]
    if times.size == 0:
        raise ValueError(f"no vehicle snapshot between {start} and {end} s")
    _, legend, clim = edge_values(ds, float(times[0]), color_by)
    p = _plotter(size)
    scene = Scene(p, city, color_by=color_by, clim=clim, legend=legend, title=ds.attrs.get("scenario", ""))
    out = Path(out)
    if out.suffix.lower() == ".gif":
        p.open_gif(str(out), fps=fps)
    else:
        p.open_movie(str(out), framerate=fps, quality=7)
    t0 = time.perf_counter()
    for t in times:
        fr = frame(city, ds, float(t), color_by)
        scene.update(fr)
        if camera == "follow" or t == times[0]:
            scene.camera(camera, fr)
        p.write_frame()
    p.close()
    return {"file": str(out), "frames": int(times.size), "render_s": round(time.perf_counter() - t0, 3)}


def render_compare(base_dir, other_dir, out: str | Path, *, time_s: float | None = None, camera: str = "overview",
                   color_by: str = "congestion", mode: str = "side", size=(2000, 900)) -> dict:
    """Baseline and policy side by side with one camera, or one scene coloured by the speed difference."""
    ds_a, city = load_run(base_dir)
    ds_b, city_b = load_run(other_dir)
    if city.edge_ids != city_b.edge_ids:
        raise ValueError("the two runs are not on the same city")
    t = nearest_time(ds_a, time_s)
    if mode == "side":
        p = _plotter(size, shape=(1, 2))
        for col, (ds, label) in enumerate(((ds_a, "baseline"), (ds_b, "policy"))):
            p.subplot(0, col)
            _, legend, clim = edge_values(ds, t, color_by)
            scene = Scene(p, city, color_by=color_by, clim=clim, legend=legend,
                          title=f"{label}: {ds.attrs.get('scenario', '')}")
            fr = frame(city, ds, t, color_by)
            scene.update(fr)
            scene.camera(camera, fr)
        p.link_views()
    elif mode == "diff":
        p = _plotter((size[0] // 2 + 200, size[1]))
        va, _, _ = edge_values(ds_a, t, "speed")
        vb, _, _ = edge_values(ds_b, t, "speed")
        diff = vb - va
        lim = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
        scene = Scene(p, city, clim=(-lim, lim), legend="speed change [km/h]", cmap="RdBu",
                      title=f"{ds_b.attrs.get('scenario', '')} − {ds_a.attrs.get('scenario', '')}")
        fr = frame(city, ds_b, t, "speed")
        fr.edge_value = diff
        scene.update(fr)
        scene.camera(camera, fr)
    else:
        raise ValueError(f"unknown comparison mode {mode!r} (side or diff)")
    p.screenshot(str(out))
    p.close()
    return {"file": str(out), "time_s": t, "mode": mode}


def export_html(results_dir, out: str | Path, *, time_s: float | None = None, color_by: str = "congestion") -> dict:
    """A self-contained HTML page with the 3D scene (vtk.js) that a presenter rotates in a browser."""
    ds, city = load_run(results_dir)
    t = nearest_time(ds, time_s)
    _, legend, clim = edge_values(ds, t, color_by)
    p = _plotter((1200, 800))
    scene = Scene(p, city, color_by=color_by, clim=clim, legend=legend, title=ds.attrs.get("scenario", ""))
    fr = frame(city, ds, t, color_by)
    scene.update(fr)
    scene.camera("overview", fr)
    exporter = getattr(getattr(p, "trame", None), "export_html", None) or p.export_html
    exporter(str(out))
    p.close()
    return {"file": str(out), "time_s": t}


def render_compare_summary(compare_dir, out: str | Path, *, size=(1200, 800)) -> dict:
    """One scene coloured by the change in mean speed (policy − baseline, over time and replications)."""
    d = Path(compare_dir)
    city = CityModel.load(d / "city.npz")
    with xr.open_dataset(d / "compare.nc") as cds:
        speed = cds["speed"].load()
        base, pol = cds.attrs["baseline"], cds.attrs["policy"]
    mean = speed.mean(["replication", "time"], skipna=True)
    diff = (mean.sel(scenario=pol) - mean.sel(scenario=base)).values * 3.6
    lim = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    p = _plotter(size)
    scene = Scene(p, city, clim=(-lim, lim), legend="mean speed change [km/h]", cmap="RdBu", title=f"{pol} − {base}")
    from twin.viz.scene import Frame

    fr = Frame(0.0, diff, (np.zeros(0),) * 4, np.zeros((len(scene.heads), 3), np.uint8), [])
    scene.update(fr)
    p.remove_actor("clock")
    scene.camera("overview", fr)
    p.screenshot(str(out))
    p.close()
    return {"file": str(out)}
