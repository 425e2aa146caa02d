from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from twin.city import CityBuilder, corridor_city
from twin.demand import DEFAULT_VTYPES, Trips, route_demand
from twin.engines.native import NativeEngine

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def make_trips(city, specs, vtype="car"):
    """Trips from (origin edge id, destination edge id, depart s) tuples; ``vtype`` a name or VehicleType."""
    vt = DEFAULT_VTYPES[vtype] if isinstance(vtype, str) else vtype
    o = np.array([city.edge_index[a] for a, _, _ in specs], dtype=np.int32)
    d = np.array([city.edge_index[b] for _, b, _ in specs], dtype=np.int32)
    t = np.array([float(x) for _, _, x in specs])
    return Trips(o, d, t, np.zeros(len(specs), dtype=np.int32), (vt,))


def run_native(city, trips, until, *, step_length=1.0, seed=1, **kw):
    eng = NativeEngine(step_length=step_length, **kw)
    demand = route_demand(city, trips)
    eng.start(city, demand, seed=seed)
    eng.advance(until)
    return eng


def left_turn_roads(name: str, left_lanes: int = 1) -> CityBuilder:
    """The roads of the left-turn tests' T: an approach ``in`` (w -> j) going on to ``out`` (j -> e), the oncoming
    ``opp`` (e -> j) going on to ``opp_out`` (j -> w), and the minor ``left_out`` (j -> n, ``left_lanes`` lanes);
    connections are the test's."""
    b = CityBuilder(name)
    for nid, x, y in [("w", 0, 0), ("j", 300, 0), ("e", 600, 0), ("n", 300, 300)]:
        b.add_node(nid, x, y)
    b.add_edge("in", "w", "j", priority=3)
    b.add_edge("out", "j", "e", priority=3)
    b.add_edge("opp", "e", "j", priority=3)
    b.add_edge("opp_out", "j", "w", priority=3)
    b.add_edge("left_out", "j", "n", priority=1, num_lanes=left_lanes)
    return b


def short_exit_city(exit_m: float, red_s: float = 200.0):
    """Main road w -> j -> k -> e whose link j-k (``mid``, ``exit_m`` [m] long) ends at a signal red for the
    first ``red_s`` [s]; a minor road n -> j -> s yields to it at j (so j is kept clear; 15 m paths through j).
    The junction tests' city for keep-clear and blocking inside junctions."""
    b = CityBuilder("keep-clear")
    for nid, x, y in [("w", 0, 0), ("j", 300, 0), ("k", 300 + exit_m, 0), ("e", 600, 0), ("n", 300, 300),
                      ("s", 300, -300)]:
        b.add_node(nid, x, y)
    b.add_edge("in", "w", "j", priority=3)
    b.add_edge("mid", "j", "k", priority=3)
    b.add_edge("out", "k", "e", priority=3)
    b.add_edge("side_in", "n", "j", priority=1)
    b.add_edge("side_out", "j", "s", priority=1)
    b.add_connection("in", 0, "mid", 0, length=15.0)
    b.add_connection("side_in", 0, "side_out", 0, length=15.0, foes=[("in", 0)])
    b.add_connection("mid", 0, "out", 0)
    b.add_tls("k", "k", [(red_s, "r"), (100.0, "G")])
    return b.build()


def run_cli(*args, cwd=ROOT, env=None, timeout=300):
    """Run ``python run_sim.py ARGS``; returns the CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "run_sim.py"), *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True, scope="session")
def _city_cache(tmp_path_factory):
    """Networks the tests read are cached (twin.city.cache) in the session's temporary folder, not the user's."""
    os.environ.setdefault("TWIN_CACHE_DIR", str(tmp_path_factory.mktemp("twin-cache")))


@pytest.fixture
def corridor():
    return corridor_city(3, 500.0)


# ----------------------------------------------------------------- a twin's web server and a browser on it
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                    reason="Debian's chromium is not at /usr/bin/chromium (make system-deps)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(base: str, proc, path: str = "/api/meta", seconds: float = 240) -> None:
    """Wait until ``base + path`` answers 200; fails at once if the server ``proc`` stopped."""
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the server stopped: {proc.stderr.read()}")
        try:
            if httpx.get(base + path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base}{path} did not answer")


@contextlib.contextmanager
def twin_server(*args, wait: str | None = "/api/meta"):
    """``run_sim.py ARGS --listen 127.0.0.1:PORT`` (``live`` or ``view``) on a free port: yields (base URL,
    process) once ``wait`` answers (None: at once), and stops the server (if it has not ended) afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), *map(str, args), "--listen",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        if wait is not None:
            wait_http(base, proc, wait)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def serve():
    """``serve(*args)``: :func:`twin_server` for one test (stopped at its end); returns (base URL, process)."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, **kw: stack.enter_context(twin_server(*args, **kw))


@pytest.fixture(scope="module")
def pw():
    """Playwright, for one test module at a time: its sync API keeps an event loop running in this thread,
    which other modules' asyncio code must not meet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw):
    """One headless Chromium for the module's pages (each :class:`Page` has its own context)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not at /usr/bin/chromium (make system-deps)")
    b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


class Page:
    """A page in its own browser context that may reach only 127.0.0.1; console errors and outside requests
    are kept."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_function("document.body.dataset.ready === '1'", timeout=60_000)

    def _route(self, route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def js(self, expr: str):
        return self.page.evaluate(expr)

    def close(self) -> None:
        self.context.close()
