#!/usr/bin/env python3
"""Benchmark the dashboard's updates on a 10,000-edge synthetic city.

    python benchmarks/bench_dashboard.py [--blocks 50] [--trips 20000] [--seconds 20] [--speed 40] [--no-browser]

A live twin of a ``blocks × blocks`` grid (50 → 10,200 edges) with OD trips runs on the real-time clock
``--speed`` times faster than real time, recording every 10 simulated seconds, with its HTTP server in a
thread. It measures:

- ``encode_ms``: time to pack one map frame (per-edge speed and density, :func:`twin.web.mapdata.edge_frame`);
- ``bytes_per_update``: size of one ``/stream`` event (the whole state with its packed map frame);
- ``stream_hz``: states received per second by an SSE client over ``--seconds`` (the twin's rate: at least
  once per recording interval);
- ``browser_fps`` and ``browser_apply_ms``: map frames the page applied per second in headless Chromium
  (every edge's colour set), and the time to apply one (skipped with ``--no-browser`` or without
  /usr/bin/chromium).

Figures are printed; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCEN = """name: bench-dashboard
city: {{type: grid, blocks_x: {b}, blocks_y: {b}, block_size_m: 120}}
demand: {{type: od, trips: {trips}, end_s: 1800, profile: flat}}
run: {{duration_s: 3600, record_interval_s: 10}}
sensors: {{loops: [{{id: loop0, lane: n1_0-n2_0_0, pos_m: 50}}]}}
"""
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=50)
    ap.add_argument("--trips", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds to measure")
    ap.add_argument("--speed", type=float, default=40.0, help="times faster than real time")
    ap.add_argument("--no-browser", action="store_true")
    a = ap.parse_args()

    import httpx
    import numpy as np

    from twin.config.sumocfg import load_any
    from twin.live.server import Server
    from twin.live.session import LiveTwin
    from twin.runner import prepare
    from twin.web.mapdata import edge_frame

    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    (tmp / "s.yaml").write_text(SCEN.format(b=a.blocks, trips=a.trips))
    cfg = load_any(tmp / "s.yaml")
    t0 = time.perf_counter()
    city, demand = prepare(cfg)
    print(f"city: {city.n_edges:,} edges, {len(demand.trips):,} trips (prepared in {time.perf_counter() - t0:.1f} s)")
    rng = np.random.default_rng(0)
    speed, density = rng.uniform(0, 15, city.n_edges), rng.uniform(0, 80, city.n_edges)
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        frame = edge_frame(city, speed, density)
    encode_ms = (time.perf_counter() - t0) / reps * 1000
    print(f"pack one frame: {encode_ms:.2f} ms; speed_rel {len(frame['speed_rel']):,} B, "
          f"density {len(frame['density']):,} B (base64)")

    twin = LiveTwin(cfg, city, demand, tmp / "out", speed=a.speed, fork_scheduler="serial")
    port = _port()
    server = Server(twin, "127.0.0.1", port)
    server.start()
    runner = threading.Thread(target=twin.run, daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{port}"
    sizes, times, sim_t = [], [], []
    try:
        with httpx.stream("GET", base + "/stream", timeout=60) as s:
            w0 = time.perf_counter()
            for line in s.iter_lines():
                if not line.startswith("data: "):
                    continue
                st = json.loads(line[6:])
                if "map" not in st:
                    continue
                sizes.append(len(line) + 2)
                times.append(time.perf_counter())
                sim_t.append(st["time_s"])
                if times[-1] - w0 > a.seconds:
                    break
        hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        sim_rate = (sim_t[-1] - sim_t[0]) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        bytes_update = int(np.median(sizes)) if sizes else 0
        print(f"/stream: {len(times)} states in {times[-1] - times[0]:.1f} s = {hz:.2f} Hz "
              f"({sim_rate:.1f} simulated s per s); {bytes_update:,} B per update (median), running "
              f"{st.get('running')} vehicles at {st['time_s']:.0f} s")
        browser = {}
        if not a.no_browser and shutil.which("/usr/bin/chromium"):
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = b.new_page(viewport={"width": 1400, "height": 900})
                t0 = time.perf_counter()
                page.goto(base + "/")
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=120_000)
                load_s = time.perf_counter() - t0
                page.wait_for_function("window.dash.frames > 0", timeout=60_000)
                f0, w0 = page.evaluate("window.dash.frames"), time.perf_counter()
                page.wait_for_timeout(a.seconds * 1000)
                f1, w1 = page.evaluate("window.dash.frames"), time.perf_counter()
                apply_ms = page.evaluate("window.dash.lastFrameMs")
                with httpx.stream("GET", base + "/api/geometry", timeout=60,
                                  headers={"accept-encoding": "gzip"}) as r:
                    geo_bytes = sum(len(c) for c in r.iter_raw())  # as sent (gzip)
                b.close()
            browser = {"browser_fps": round((f1 - f0) / (w1 - w0), 2), "browser_apply_ms": round(apply_ms, 1),
                       "page_load_s": round(load_s, 2), "geometry_bytes_gzip": geo_bytes}
            print(f"browser: page ready in {load_s:.1f} s (geometry {geo_bytes / 1e6:.2f} MB gzipped), "
                  f"{browser['browser_fps']} map frames/s, {apply_ms:.1f} ms to colour {city.n_edges:,} edges")
    finally:
        server.stop()
    out = {"edges": city.n_edges, "encode_ms": round(encode_ms, 3), "bytes_per_update": bytes_update,
           "stream_hz": round(hz, 2), "simulated_s_per_s": round(sim_rate, 1), **browser}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
