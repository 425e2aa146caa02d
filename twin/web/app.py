"""The dashboard's HTTP routes, shared by the live twin and ``run_sim.py view``.

A *source* gives the page its data; :class:`twin.live.dashboard.LiveSource`
reads a running twin, :class:`twin.web.view.RunSource` a results folder. Both
answer the same calls:

- ``meta()``: what the page shows (mode ``live``/``run``/``compare``, name, recording interval, sensor
  places, the what-if policy library, the run's times, which panels exist);
- ``geometry()``: :func:`twin.web.mapdata.city_geometry` (sent once);
- ``sensors(last, k)``: observed and simulated counts of each loop over the last ``last`` intervals;
- ``map(k, scenario, vehicles)``: one packed map frame (the latest in live mode, recording interval ``k``
  of a run);
- ``overlays(k)``: markers and panels (alerts, incidents and units, air grid, epidemic, mode shares).

Routes: ``GET /`` (the page), ``/static/*`` (its scripts; ``vendor/`` holds MapLibre GL JS, uPlot and
Swagger UI from npm), ``GET /docs`` (Swagger UI served from ``/static``: works offline), and
``GET /api/meta | /api/geometry | /api/sensors | /api/map | /api/overlays``.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"


def new_app(title: str) -> FastAPI:
    """A FastAPI app whose API page loads from the package (the CDN pages are off)."""
    app = FastAPI(title=title, version="1", docs_url=None, redoc_url=None)

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} — API",
                                   swagger_js_url="/static/vendor/swagger-ui-bundle.js",
                                   swagger_css_url="/static/vendor/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")

    return app


def add_dashboard(app: FastAPI, source, read_dependencies: list | None = None) -> FastAPI:
    """Serve the page and its ``/api/*`` data from ``source`` on ``app``; ``read_dependencies`` guard the
    data (a live twin's :func:`twin.live.auth.require_read`); the page and its scripts are public."""
    deps = list(read_dependencies or [])
    app.add_middleware(GZipMiddleware, minimum_size=4096)  # geometry, history; the SSE stream is never zipped
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    geometry: dict = {}

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/meta", dependencies=deps)
    def meta():
        """What the dashboard shows: mode, name, interval, sensors, policy library, times, panels."""
        return source.meta()

    @app.get("/api/geometry", dependencies=deps)
    def geo():
        """The city's roads and buildings as GeoJSON (lon/lat); edge features' ``id`` is the edge index."""
        if not geometry:
            geometry.update(source.geometry())
        return geometry

    @app.get("/api/sensors", dependencies=deps)
    def sensors(last: int = 60, k: int | None = None):
        """Observed and simulated count of each loop per recording interval (the last ``last`` ones up to
        interval ``k``; default: up to now)."""
        return source.sensors(max(1, min(last, 10_000)), k)

    @app.get("/api/map", dependencies=deps)
    def map_frame(k: int | None = None, scenario: str | None = None, vehicles: bool = False):
        """Per-edge speed relative to the limit and density, packed (docs/dashboard.md); vehicles on request."""
        try:
            return source.map(k, scenario, vehicles)
        except (KeyError, IndexError) as exc:
            raise HTTPException(status_code=404, detail=str(exc).strip("'\"")) from None

    @app.get("/api/overlays", dependencies=deps)
    def overlays(k: int | None = None):
        """Alerts, incidents and units, the air grid, the epidemic curve and mode shares (where they exist)."""
        try:
            return source.overlays(k)
        except IndexError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None

    return app
