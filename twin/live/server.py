"""The live twin's HTTP API (FastAPI, served by uvicorn in a thread beside the simulation).

- ``POST /observations``: one record or a list, as ``application/json`` (or ``text/csv`` with a
  header line, as a feed file); answers how many were accepted and rejected (rejected ones are
  in the dead-letter file with their reason);
- ``GET /state``: the clock, vehicles, feed counters by reason, latest observed vs simulated counts;
- ``GET /stream``: server-sent events, one state per recording interval until the run ends;
- ``POST /fork``: ``{"horizon_s": 1800, "branches": {"name": [policy, ...], ...}}`` forks the running
  twin now (checkpoint at the next step), runs a no-action branch and one per entry forward for the
  horizon, faster than real time, on Dask; answers 202 with the fork's id (422 for bad branches,
  429 when the fork queue is full);
- ``GET /forks`` and ``GET /forks/{id}``: status, and the branches' KPIs against no action when done;
- ``GET /``: the command-center dashboard, with its data under ``/api/*`` (:mod:`twin.web.app`); the state
  carries ``map``, per-edge speed and density packed in edge order (:mod:`twin.web.mapdata`).

Writes need the bearer token (see :mod:`twin.live.auth`; reads too with ``protect_reads``).
Bodies over ``ApiLimits.max_body_bytes`` and batches over ``max_batch`` records get 413, other
content types 415; each such request is one rejected record in the books, so that
received = accepted + rejected holds whatever arrives. At most ``max_streams`` ``/stream``
clients at once, and ``max_connections`` connections (503 beyond); an idle stream client waits on
its own queue and costs nothing.
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request  # this module is only imported to serve
from fastapi.responses import StreamingResponse

from twin.live.auth import Access, require_read, require_token
from twin.live.feed import BadLine, csv_records, parse_json
from twin.live.session import LiveTwin

CSV_TYPE = "text/csv"


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = 1_000_000  # [B] per request
    max_batch: int = 1000  # records per POST /observations
    max_streams: int = 64  # /stream clients at once
    max_connections: int = 256  # open connections and requests at once (uvicorn answers 503 beyond)
    keepalive_s: float = 15.0  # [s] an SSE comment to idle stream clients (keeps proxies from closing them)


class _TooLarge(Exception):
    pass


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _body(request: Request, limit: int) -> bytes:
    """The request body, read up to ``limit`` bytes (beyond: _TooLarge, without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Sink:
    """A /stream client's inbox: the simulation thread puts states, the client's task awaits them.
    Bounded: a slow client loses its oldest states, never the twin's memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = 16) -> None:
        self.loop, self.queue = loop, asyncio.Queue(maxsize=size)

    def put(self, item) -> None:  # any thread
        try:
            self.loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the server's loop is closed: nobody to tell
            pass

    def _put(self, item) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(item)


class _Stream(StreamingResponse):
    """Server-sent events that call ``release`` however the response ends (even unstarted)."""

    def __init__(self, content, release) -> None:
        super().__init__(content, media_type="text/event-stream")
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def make_app(twin: LiveTwin, access: Access | None = None, limits: ApiLimits = ApiLimits()):
    """The API of ``twin``; without ``access``, writes need a random token nobody knows."""
    import secrets

    from twin.live.dashboard import LiveSource
    from twin.web.app import add_dashboard, new_app

    app = new_app("twin live")  # the dashboard at / and its /api/* (twin.web.app); /docs offline
    app.state.access = access or Access(secrets.token_urlsafe(24))
    app.state.streams = 0

    def where(request: Request) -> str:
        return f"http {request.client.host if request.client else '?'}"

    def refuse(request: Request, status: int, reason: str, raw: str = "") -> HTTPException:
        """Book a refused request as one rejected record, and the HTTP error to raise."""
        twin.ingest(where(request), BadLine(reason, raw))
        return HTTPException(status_code=status, detail=f"{reason} (recorded as a dead letter)")

    @app.post("/observations", dependencies=[Depends(require_token)])
    async def observations(request: Request):
        ctype = _media_type(request)
        if ctype not in ("application/json", CSV_TYPE):
            raise refuse(request, 415, f"unsupported content type: {ctype[:100]!r}; send application/json or "
                                       f"{CSV_TYPE}")
        try:
            body = await _body(request, limits.max_body_bytes)
        except _TooLarge:
            raise refuse(request, 413, f"too large: a body over {limits.max_body_bytes} bytes") from None
        raw = body[:500].decode("utf-8", errors="replace")
        if ctype == CSV_TYPE:
            try:
                records = csv_records(body.decode("utf-8"), where(request))
            except UnicodeDecodeError:
                raise refuse(request, 400, "malformed CSV: not UTF-8", raw) from None
            records = [r for _, r in records]
        else:
            try:
                obj = parse_json(body)
            except ValueError as exc:
                raise refuse(request, 400, str(exc), raw) from None
            records = obj if isinstance(obj, list) else [obj]
        if len(records) > limits.max_batch:
            raise refuse(request, 413, f"too large: a batch of {len(records)} records, at most {limits.max_batch}",
                         raw)
        results = [twin.ingest(where(request), r) for r in records]
        return {"received": len(results), "accepted": sum(results), "rejected": len(results) - sum(results)}

    @app.get("/state", dependencies=[Depends(require_read)])
    def state():
        return twin.state()

    @app.post("/fork", status_code=202, dependencies=[Depends(require_token)])
    async def fork(request: Request):
        from twin.config import ConfigError
        from twin.live.fork import ForkBusy

        if _media_type(request) != "application/json":
            raise HTTPException(status_code=415, detail="send the fork as application/json")
        try:
            body = parse_json(await _body(request, limits.max_body_bytes))
        except _TooLarge:
            raise HTTPException(status_code=413, detail=f"a body over {limits.max_body_bytes} bytes") from None
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"body is not JSON: {exc}") from None
        if not isinstance(body, dict) or "branches" not in body:
            raise HTTPException(status_code=422, detail='expected {"horizon_s": S, "branches": {name: [policies]}}')
        try:
            fid = twin.forks.request(body["branches"], body.get("horizon_s", 3600.0))
        except ConfigError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except ForkBusy as exc:
            raise HTTPException(status_code=429, detail=str(exc), headers={"Retry-After": "30"}) from None
        return {"id": fid, "status": "queued"}

    @app.get("/forks", dependencies=[Depends(require_read)])
    def forks():
        return twin.forks.status()

    @app.get("/forks/{fid}", dependencies=[Depends(require_read)])
    def fork_status(fid: str):
        try:
            return twin.forks.status(fid)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no fork {fid[:100]!r}") from None

    @app.get("/stream", dependencies=[Depends(require_read)])
    async def stream():
        if app.state.streams >= limits.max_streams:
            raise HTTPException(status_code=503, detail=f"{limits.max_streams} stream clients already; "
                                                        "try again later", headers={"Retry-After": "10"})
        app.state.streams += 1
        sink = _Sink(asyncio.get_running_loop())
        twin.subscribers.append(sink)

        def release() -> None:
            twin.subscribers.remove(sink)
            app.state.streams -= 1

        async def events():
            st = twin.state()
            yield f"data: {json.dumps(st)}\n\n"
            while st.get("status") != "finished":
                try:
                    st = await asyncio.wait_for(sink.queue.get(), limits.keepalive_s)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"data: {json.dumps(st)}\n\n"

        return _Stream(events(), release)

    return add_dashboard(app, LiveSource(twin), read_dependencies=[Depends(require_read)])


class Server:
    """uvicorn in a background thread."""

    def __init__(self, twin: LiveTwin, host: str, port: int, access: Access | None = None,
                 limits: ApiLimits = ApiLimits()) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(make_app(twin, access, limits), host=host, port=port,
                                                    log_level="warning", limit_concurrency=limits.max_connections))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise OSError("the HTTP server could not start (is the port in use?)")
            threading.Event().wait(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
