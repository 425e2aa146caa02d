#!/usr/bin/env python3
"""Take the dashboard's screenshots (docs/img/dashboard_*.png) from real runs on Bologna.

    python benchmarks/screenshots.py [--out docs/img] [--work DIR] [--speed 15] [--keep]

Re-run it after a change to the page (twin/web/static) and commit the pictures. What it does:

1. SUMO runs Bologna's hour with its 58 induction loops (``twin_experiment.run_truth``); their 5-minute
   counts are the loops' feed.
2. ``run_sim.py live scenarios/bologna_command_center.yaml --listen`` serves the dashboard; a thread posts
   each interval's counts to ``POST /observations`` as the twin's clock reaches it (the feed replayed over
   HTTP, as a counting station would send it).
3. Headless Chromium (Debian's, /usr/bin/chromium) opens the page, waits until the map, the loops'
   first frames and the epidemic curve are there, ticks the scenario's two what-if policies, forks for 15
   minutes from the page and, once the branches are done, takes ``dashboard_fork_bologna.png``; then folds
   the fork away, waits until the loops' observed counts, the incident with a unit at the scene and the air
   field are there, shows the air layer and takes ``dashboard_live_bologna.png``.
4. ``run_sim.py view`` on the live run's results (the finished run: the whole outbreak and the day's mode
   shares) gives ``dashboard_run_bologna.png``.
5. ``run_sim.py compare scenarios/bologna_close_via_costa.yaml`` (2 replications) and ``view`` on it give
   ``dashboard_compare_bologna.png`` (the difference after 30 minutes).

Pictures are 1600 × 1000; one over 400 KB is reduced to a 256-colour palette with Pillow. The page must log
no console error; the last line is one JSON object (file sizes, twin time of each live shot, alerts seen).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_dashboard import ARGS, _port  # noqa: E402  (Chromium's flags, a free port)
from twin_experiment import SUMOCFG, run_truth  # noqa: E402  (SUMO's loop counts on Bologna)

CHROMIUM = "/usr/bin/chromium"
SCENARIO = ROOT / "scenarios" / "bologna_command_center.yaml"
COMPARE = ROOT / "scenarios" / "bologna_close_via_costa.yaml"
TOKEN = "screenshots-token-0123456789"
VIEWPORT = {"width": 1600, "height": 1000}
MAX_BYTES = 400_000
INTERVAL = 300.0  # the scenario's recording interval and the feed's [s]


def _wait_http(base: str, proc: subprocess.Popen, seconds: float = 600) -> None:
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {proc.stderr.read()}")
        try:
            if httpx.get(base + "/api/meta", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{base} did not answer in {seconds:g} s")


def _serve(args: list, log: Path) -> tuple[subprocess.Popen, str]:
    """``run_sim.py ARGS --listen`` on a free port; the process and its base URL once it answers."""
    port = _port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), *map(str, args), "--listen",
                             f"127.0.0.1:{port}"], stdout=log.open("w"), stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    _wait_http(base, proc)
    return proc, base


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


def _replay(base: str, ids: list[str], counts, stop: threading.Event, lead_s: float = 30.0) -> None:
    """Post interval ``k``'s counts (time ``(k + 1) × INTERVAL``) once the twin is within ``lead_s`` of it."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    k = 0
    while k < counts.shape[0] and not stop.is_set():
        try:
            now = httpx.get(base + "/state", timeout=5).json().get("time_s", 0.0)
        except httpx.TransportError:
            return  # the run ended
        while k < counts.shape[0] and (k + 1) * INTERVAL <= now + lead_s:
            recs = [{"sensor": lid, "time": (k + 1) * INTERVAL, "count": float(counts[k, j])}
                    for j, lid in enumerate(ids)]
            httpx.post(base + "/observations", json=recs, headers=auth, timeout=10).raise_for_status()
            k += 1
        stop.wait(0.3)


class Browser:
    """Debian's Chromium at 1600 × 1000 that may reach only 127.0.0.1; console errors are kept."""

    def __init__(self, pw) -> None:
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
            ("http://127.0.0.1", "data:", "blob:")) else r.abort())

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_function("document.body.dataset.ready === '1'", timeout=120_000)

    def wait(self, expr: str, seconds: float = 300) -> None:
        self.page.wait_for_function(expr, timeout=seconds * 1000)

    def shot(self, path: Path) -> int:
        self.page.wait_for_timeout(800)  # let the map finish drawing
        self.page.screenshot(path=str(path))
        return _shrink(path)

    def close(self) -> None:
        self.browser.close()


def _shrink(path: Path) -> int:
    """Reduce a PNG over MAX_BYTES to a 256-colour palette (Pillow); its size in bytes."""
    if path.stat().st_size > MAX_BYTES:
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(path, optimize=True)
    return path.stat().st_size


def live_shots(pw, out: Path, work: Path, speed: float) -> dict:
    """The live command center and a fork from it; the live run's results folder is ``work/live``."""
    import httpx

    ids, counts, wall = run_truth(SUMOCFG, INTERVAL, work, seed=1)
    print(f"SUMO's loop counts on Bologna: {len(ids)} loops, {counts.sum():,.0f} vehicles counted ({wall:.1f} s)")
    proc, base = _serve(["live", SCENARIO, "--speed", speed, "--out", work / "live", "--token", TOKEN,
                         "--fork-scheduler", "serial"], work / "live.log")
    stop = threading.Event()
    feeder = threading.Thread(target=_replay, args=(base, ids, counts, stop), daemon=True)
    feeder.start()
    b = Browser(pw)
    figures: dict = {}
    try:
        b.open(base + f"/?token={TOKEN}")
        b.wait("window.dash.frames > 0 && window.dash.epidemic && window.dash.epidemic.time_s.length > 0")
        # what-if first, while the morning's traffic still flows: both policies of the library, 15 minutes
        for box in b.page.query_selector_all("#library input[data-policy]"):
            box.check()
        b.page.fill("#horizon", "15")
        b.page.click("#forkbtn")
        b.wait("document.querySelector('.fork[data-status=done] table') !== null", 600)
        figures["fork_time_s"] = httpx.get(base + "/forks/fork1", timeout=5).json()["fork_time_s"]
        figures["dashboard_fork_bologna.png"] = b.shot(out / "dashboard_fork_bologna.png")
        b.page.click(".fork summary")  # folded away, as an operator would once it is read
        for box in b.page.query_selector_all("#library input[data-policy]"):
            box.uncheck()
        b.wait("document.querySelectorAll('#incidents li').length > 1 && "  # an open incident, a unit there
               "!document.getElementById('incidents').innerText.includes(' 0 at a scene')")
        b.wait("[...document.querySelectorAll('[data-sensor]')].some((r) => "
               "JSON.parse(r.dataset.observed || '[]').filter((v) => v != null).length >= 3)")
        b.wait("document.getElementById('airinfo').textContent.length > 0")
        b.page.check("#lyr-air")
        st = httpx.get(base + "/state", timeout=5).json()
        figures["live_time_s"], figures["alerts"] = st["time_s"], len(st.get("alerts", []))
        figures["dashboard_live_bologna.png"] = b.shot(out / "dashboard_live_bologna.png")
        if b.errors:
            raise SystemExit(f"the live page logged errors: {b.errors}")
    finally:
        b.close()
    try:
        proc.wait(timeout=3600)  # the run ends by itself and writes its results (the feed posted to the end)
    finally:
        stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"the live twin failed: {proc.stderr.read()}")
    return figures


def view_shot(pw, folder: Path, png: Path, work: Path, slider: float | None = None) -> int:
    """``run_sim.py view folder``: the page at the slider's fraction ``slider`` of the run (end if None)."""
    proc, base = _serve(["view", folder], work / f"view-{png.stem}.log")
    b = Browser(pw)
    try:
        b.open(base + "/")
        if slider is not None:
            b.page.evaluate(f"(() => {{ const s = document.getElementById('slider'); "
                            f"s.value = Math.round({slider} * s.max); s.dispatchEvent(new Event('input')); }})()")
            b.wait("window.dash.frames >= 2")
        size = b.shot(png)
        if b.errors:
            raise SystemExit(f"the page of {folder} logged errors: {b.errors}")
        return size
    finally:
        b.close()
        _stop(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go (docs/img)")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one, removed)")
    ap.add_argument("--speed", type=float, default=15.0, help="the live twin's times real time (default 15)")
    a = ap.parse_args()
    if shutil.which(CHROMIUM) is None:
        print(f"error: Debian's chromium is not at {CHROMIUM} (make system-deps)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    work = a.work or Path(tempfile.mkdtemp(prefix="twin-screenshots-"))
    work.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        with sync_playwright() as pw:
            figures = live_shots(pw, a.out, work, a.speed)
            figures["dashboard_run_bologna.png"] = view_shot(pw, work / "live", a.out / "dashboard_run_bologna.png",
                                                             work)
            r = subprocess.run([sys.executable, str(ROOT / "run_sim.py"), "compare", str(COMPARE), "--replications",
                                "2", "--scheduler", "serial", "--out", str(work / "compare"), "-q"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"compare failed: {r.stderr}")
            figures["dashboard_compare_bologna.png"] = view_shot(pw, work / "compare",
                                                                 a.out / "dashboard_compare_bologna.png", work, 0.5)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    for k, v in figures.items():
        print(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
