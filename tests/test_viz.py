"""3D renders, movies, charts and the HTML report (headless Chromium)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageSequence

from twin.config import load_scenario
from twin.runner import run_scenario

from conftest import ROOT, SHARED, run_cli

CHROMIUM = shutil.which("chromium")


def _offscreen_ok() -> str | None:
    try:
        from twin.viz.scene import check_offscreen

        check_offscreen()
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_offscreen_ok() is not None, reason=f"no off-screen rendering: {_offscreen_ok()}")


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("inc")
    cfg = load_scenario(ROOT / "scenarios" / "policy_incident.yaml",
                        overrides={"run": {"duration_s": 1500, "snapshot_interval_s": 60}})
    run_scenario(cfg).save(d)
    return d


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    run_scenario(load_scenario(ROOT / "scenarios" / "default.yaml", overrides={"run": {"duration_s": 1500}})).save(d)
    return d


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)


def test_still_has_the_size_buildings_roads_and_congestion_colours(incident_run, tmp_path):
    from twin.viz.render import render_still

    info = render_still(incident_run, tmp_path / "s.png", time_s=1380, size=(900, 600))
    img = Image.open(tmp_path / "s.png")
    assert img.size == (900, 600)
    px = _pixels(tmp_path / "s.png")
    assert len(np.unique(px, axis=0)) > 500
    red = ((px[:, 0] > 150) & (px[:, 1] < 70) & (px[:, 2] < 70)).sum()  # congested lanes (and red signals)
    green = ((px[:, 1] > 110) & (px[:, 0] < 90) & (px[:, 2] < 110)).sum()  # free-flowing lanes
    tan = ((abs(px[:, 0] - 200) < 40) & (abs(px[:, 1] - 185) < 40) & (abs(px[:, 2] - 150) < 40)).sum()  # buildings
    assert red > 50 and green > 200 and tan > 2000, (red, green, tan)
    assert info["vehicles"] > 0


def test_congested_and_free_roads_get_different_colours(incident_run):
    """In the scene's data: the blocked edge maps to the red end of the scale, a free edge to the green end."""
    import pyvista as pv

    from twin.viz.render import load_run
    from twin.viz.scene import Scene, frame

    ds, city = load_run(incident_run)
    p = pv.Plotter(off_screen=True, window_size=(64, 64))
    scene = Scene(p, city)
    scene.update(frame(city, ds, 1380.0, "congestion"))
    lut = p.actors["roads"].mapper.lookup_table
    v = scene.roads.cell_data["value"]
    edges = scene.roads.cell_data["edge"]
    blocked = np.nanmean(v[edges == city.edge_index["n3_1-n3_2"]])
    free = np.nanmax(v)
    c_block, c_free = lut.map_value(blocked), lut.map_value(free)
    p.close()
    assert blocked < 0.3 and free > 0.8
    assert c_block[0] > c_block[1] and c_free[1] > c_free[0]  # red vs green


def test_camera_presets_and_an_imported_city(incident_run, tmp_path):
    from twin.viz.render import render_still

    imgs = {}
    for cam in ("overview", "street", "follow"):
        render_still(incident_run, tmp_path / f"{cam}.png", camera=cam, size=(400, 300))
        imgs[cam] = _pixels(tmp_path / f"{cam}.png")
    assert not np.array_equal(imgs["overview"], imgs["street"]) and not np.array_equal(imgs["street"], imgs["follow"])
    d = tmp_path / "bologna"
    cfg = load_scenario(ROOT / "scenarios" / "bologna.yaml", overrides={"run": {"duration_s": 300}})
    run_scenario(cfg).save(d)
    info = render_still(d, tmp_path / "bologna.png", size=(500, 400))
    assert Image.open(tmp_path / "bologna.png").size == (500, 400) and info["vehicles"] > 50
    assert (SHARED / "bologna-acosta").is_dir()


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_movie_has_one_frame_per_snapshot(incident_run, tmp_path, fmt):
    r = run_cli("render", incident_run, "--out", tmp_path, "--movie", "--format", fmt, "--start", 600, "--end", 900,
                "--size", "320x240")
    assert r.returncode == 0, r.stderr
    path = tmp_path / f"movie.{fmt}"
    if fmt == "gif":
        frames = sum(1 for _ in ImageSequence.Iterator(Image.open(path)))
    else:
        import imageio

        frames = int(imageio.get_reader(path).count_frames())
    assert frames == 6  # snapshots at 600, 660, ..., 900 s


def test_comparison_views(incident_run, baseline_run, tmp_path):
    r = run_cli("render", baseline_run, "--out", tmp_path, "--compare", incident_run, "--time", 1380)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "compare_side.png").size == (2000, 900)
    r = run_cli("render", baseline_run, "--out", tmp_path, "--compare", incident_run, "--diff", "--time", 1380)
    assert r.returncode == 0, r.stderr
    px = _pixels(tmp_path / "compare_diff.png")
    assert len(np.unique(px, axis=0)) > 200


def test_render_bad_input(tmp_path):
    r = run_cli("render", tmp_path / "nothing", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("render", tmp_path, "--out", tmp_path / "o", "--size", "big")
    assert r.returncode == 2 and "--size" in r.stderr


def _browser(url, shot):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = b.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_timeout(2500)
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        canvases = page.evaluate("document.querySelectorAll('canvas').length")
        page.screenshot(path=str(shot))
        b.close()
    return errors, images, canvases


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system-deps installs it)")
def test_html_report_opens_in_headless_chromium(incident_run, tmp_path):
    r = run_cli("report", incident_run, "--out", tmp_path / "report.html")
    assert r.returncode == 0, r.stderr
    errors, images, _ = _browser((tmp_path / "report.html").as_uri(), tmp_path / "shot.png")
    assert errors == []
    assert len(images) == 4 and all(ok and w > 100 for ok, w in images)  # 2 charts + 2 3D stills


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system-deps installs it)")
def test_comparison_report_and_interactive_scene(incident_run, tmp_path):
    r = run_cli("compare", ROOT / "scenarios" / "policy_incident.yaml", "--replications", 2, "--scheduler", "serial",
                "--duration", 1500, "--out", tmp_path / "cmp", "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", tmp_path / "cmp")
    assert r.returncode == 0, r.stderr
    errors, images, _ = _browser((tmp_path / "cmp" / "report.html").as_uri(), tmp_path / "c.png")
    assert errors == [] and len(images) == 2 and all(ok and w > 100 for ok, w in images)
    r = run_cli("render", incident_run, "--out", tmp_path / "r", "--html", "--size", "400x300")
    assert r.returncode == 0, r.stderr
    errors, _, canvases = _browser((tmp_path / "r" / "scene.html").as_uri(), tmp_path / "s.png")
    assert canvases >= 1
    # the page asks for web fonts it cannot reach offline; nothing else may fail
    assert all("ERR_NAME_NOT_RESOLVED" in e or "ERR_INTERNET_DISCONNECTED" in e for e in errors), errors
    px = _pixels(tmp_path / "s.png")
    assert len(np.unique(px, axis=0)) > 100  # the scene was drawn
