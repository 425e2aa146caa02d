"""The live twin's HTTP API (FastAPI, served by uvicorn in a thread beside the simulation).

- ``POST /observations``: one record or a list; answers how many were accepted and rejected
  (rejected ones are in the dead-letter file with their reason);
- ``GET /state``: the clock, vehicles, feed counters by reason, latest observed vs simulated counts;
- ``GET /stream``: server-sent events, one state per recording interval until the run ends;
- ``POST /fork``: ``{"horizon_s": 1800, "branches": {"name": [policy, ...], ...}}`` forks the running
  twin now (checkpoint at the next step), runs a no-action branch and one per entry forward for the
  horizon, faster than real time, on Dask; answers 202 with the fork's id (422 for bad branches);
- ``GET /forks`` and ``GET /forks/{id}``: status, and the branches' KPIs against no action when done;
- ``GET /``: the command-center dashboard, with its data under ``/api/*`` (:mod:`twin.web.app`); the state
  carries ``map``, per-edge speed and density packed in edge order (:mod:`twin.web.mapdata`).
"""
from __future__ import annotations

import asyncio
import json
import queue
import threading

from fastapi import HTTPException, Request  # this module is only imported to serve
from fastapi.responses import StreamingResponse

from twin.live.session import LiveTwin


def make_app(twin: LiveTwin):
    from twin.live.dashboard import LiveSource
    from twin.web.app import add_dashboard, new_app

    app = new_app("twin live")  # the dashboard at / and its /api/* (twin.web.app); /docs offline

    @app.post("/observations")
    async def observations(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raw = (await request.body()).decode(errors="replace")[:500]
            twin.ingest("http", {"__error__": "malformed JSON: request body", "__raw__": raw})
            raise HTTPException(status_code=400, detail="body is not JSON (recorded as a dead letter)") from None
        records = body if isinstance(body, list) else [body]
        results = [twin.ingest("http", r if isinstance(r, dict) else {"__error__": "malformed JSON: not an object",
                                                                       "__raw__": str(r)[:500]})
                   for r in records]
        return {"received": len(results), "accepted": sum(results), "rejected": len(results) - sum(results)}

    @app.get("/state")
    def state():
        return twin.state()

    @app.post("/fork", status_code=202)
    async def fork(request: Request):
        from twin.config import ConfigError

        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status_code=400, detail="body is not JSON") from None
        if not isinstance(body, dict) or "branches" not in body:
            raise HTTPException(status_code=422, detail='expected {"horizon_s": S, "branches": {name: [policies]}}')
        try:
            fid = twin.forks.request(body["branches"], body.get("horizon_s", 3600.0))
        except ConfigError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"id": fid, "status": "queued"}

    @app.get("/forks")
    def forks():
        return twin.forks.status()

    @app.get("/forks/{fid}")
    def fork_status(fid: str):
        try:
            return twin.forks.status(fid)
        except KeyError:
            raise HTTPException(status_code=404, detail=f"no fork {fid!r}") from None

    @app.get("/stream")
    async def stream():
        q: queue.Queue = queue.Queue()
        twin.subscribers.append(q)

        async def events():
            try:
                yield f"data: {json.dumps(twin.state())}\n\n"
                while True:
                    try:
                        st = q.get_nowait()
                    except queue.Empty:
                        if twin.state().get("status") == "finished":
                            yield f"data: {json.dumps(twin.state())}\n\n"
                            return
                        await asyncio.sleep(0.05)
                        continue
                    yield f"data: {json.dumps(st)}\n\n"
            finally:
                twin.subscribers.remove(q)

        return StreamingResponse(events(), media_type="text/event-stream")

    return add_dashboard(app, LiveSource(twin))


class Server:
    """uvicorn in a background thread."""

    def __init__(self, twin: LiveTwin, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(make_app(twin), host=host, port=port, log_level="warning"))
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
