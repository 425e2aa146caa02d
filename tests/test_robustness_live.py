"""Issue 18, the live twin: no record, request or signal breaks it, and the books always balance.

Each case the issue lists for the live twin, its feeds and its HTTP API is
replayed here; the in-process API runs under FastAPI's TestClient, the rest on
a real server (``run_sim.py live`` in a subprocess on a free loopback port).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
import time

import httpx
import numpy as np
import psutil
import pytest
import xarray as xr
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import free_port, run_cli
from test_live import AUTH, SCEN, TOKEN, wait_for_clock
from twin.live.auth import Access, is_loopback, resolve_token
from twin.live.feed import DEAD_LETTER_CHARS, MAX_LINE_BYTES, FeedChecker, read_feed

JSON = {**AUTH, "Content-Type": "application/json"}


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (dead letters must be strict JSON)."""
    def refuse(c):
        raise ValueError(c)

    return json.loads(text, parse_constant=refuse)


REASONS = {"unknown sensor", "missing timestamp", "malformed timestamp", "before the start", "in the future",
           "out of order", "duplicate", "not a number", "negative", "impossible", "malformed line", "malformed JSON",
           "malformed CSV", "malformed record", "too deep", "too large", "unsupported content type"}


def lines(stderr: str) -> list[str]:
    """stderr's lines but the one-time notice that numba compiles its kernels (a cold cache)."""
    return [x for x in stderr.strip().splitlines() if not x.startswith("twin: compiling")]


def balanced(state: dict) -> bool:
    """The books balance, and every rejection has one of twin's reasons (a sender cannot add any)."""
    return state["received"] == state["accepted"] + state["rejected"] == (
        state["accepted"] + sum(state["rejected_by_reason"].values())) and set(state["rejected_by_reason"]) <= REASONS


# ------------------------------------------------------------------------------------------- feed files
BAD_JSON_LINES = [
    (b"\xff\xfe\xfa not UTF-8", "malformed line"),
    (b'{"sensor": "mid", "time": NaN, "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid", "time": Infinity, "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid", "time": "nan", "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid", "time": "-inf", "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid", "time": 1e400, "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid",\x00 "time": 70, "count": 1}', "malformed line"),
    (b'{"sensor": "mid", "time": 80, "count": 1e400}', "not a number"),
    (b'{"sensor": "mid", "time": 81, "count": ' + b"9" * 5000 + b"}", "malformed JSON"),
    (b'{"sensor": "mid", "time": 82, "count": 5, "speed_kmh": Infinity}', "not a number"),
    (b"[" * 200 + b"]" * 200, "too deep"),
    (b'{"sensor": "mid", "time": {"a": [1, {"b": 2}]}, "count": 1}', "malformed timestamp"),
    (b'{"sensor": "mid", "time": 90, "count": true}', "not a number"),
    (b'{"sensor": "mid", "time": -500, "count": 1}', "before the start"),
    (b'{"sensor": "mid", "time": true, "count": 1}', "malformed timestamp"),
    (b'{"__error__": 123}', "unknown sensor"),
    (b'{"sensor": ["mid"], "time": 95, "count": 1}', "unknown sensor"),
    (b'"just a string"', "malformed JSON"),
    (b"{oops", "malformed JSON"),
    (b'{"sensor": "mid", "time": 96, "count": 1, "pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}', "too large"),
]


def test_feed_file_survives_any_byte_sequence(tmp_path):
    good = [b'{"sensor": "mid", "time": 60, "count": 9}',
            # a record cannot choose its own rejection: __error__ is just an unknown field
            b'{"sensor": "mid", "time": 100, "count": 3, "__error__": "flood", "__raw__": "x"}',
            b'{"sensor": "mid", "time": 120, "count": 12}']
    lines = [good[0], *[b for b, _ in BAD_JSON_LINES[:10]], good[1], *[b for b, _ in BAD_JSON_LINES[10:]], good[2]]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(lines) + b"\n\n\r\n")
    checker = FeedChecker({"mid": {"lanes": 1}}, tmp_path / "dead.jsonl")
    got = [checker.check(w, raw) for w, raw in read_feed(feed)]
    st_ = checker.state()
    checker.close()
    assert [(r.time, r.count) for r in got if r is not None] == [(60.0, 9.0), (100.0, 3.0), (120.0, 12.0)]
    assert st_["received"] == len(lines) and st_["accepted"] == 3 and balanced(st_)
    dead = [strict_json(x) for x in (tmp_path / "dead.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["reason"].split(":")[0] for d in dead] == [r for _, r in BAD_JSON_LINES]
    assert dead[0]["where"] == "feed.jsonl:2"
    assert all(len(json.dumps(d)) < 2 * DEAD_LETTER_CHARS + 500 for d in dead)  # truncated


def test_csv_feed_survives_any_byte_sequence(tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_bytes(b"sensor,time,count\n"
                     b"mid,60,9\n"
                     b"mid,70,\xff\n"
                     b"mid,\x0080,1\n"
                     b"mid,nan,1\n"
                     b"mid,inf,1\n"
                     b"mid,90\n"
                     b'"mid,100,1\n'
                     b"mid,110,true\n"
                     b"mid,120,12\n")
    checker = FeedChecker({"mid": {"lanes": 1}}, tmp_path / "dead.jsonl")
    got = [r for w, raw in read_feed(feed) if (r := checker.check(w, raw))]
    st_ = checker.state()
    assert [r.time for r in got] == [60.0, 120.0]
    assert st_["received"] == 9 and balanced(st_)
    assert st_["rejected_by_reason"] == {"malformed line": 2, "malformed timestamp": 2, "malformed CSV": 2,
                                        "not a number": 1}


def test_a_broken_feed_does_not_stop_the_live_run(tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b'{"sensor": "mid", "time": 60, "count": 9}\n' + b"\n".join(b for b, _ in BAD_JSON_LINES)
                     + b'\n{"sensor": "mid", "time": 1e300, "count": 1}\n{"sensor": "mid", "time": 120, "count": 12}\n')
    r = run_cli("live", tmp_path / "s.yaml", "--feed", feed, "--speed", "200", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    f = manifest["feed"]
    assert f["received"] == len(BAD_JSON_LINES) + 3 and f["accepted"] == 2 and balanced(f)
    assert f["rejected_by_reason"]["in the future"] == 1  # 1e300 s, without holding back the record after it
    with xr.open_dataset(tmp_path / "out" / "results.nc") as ds:
        assert list(ds["observed_count"].sel(sensor="mid").values[:2]) == [9.0, 12.0]


def test_a_far_future_record_does_not_hold_back_the_replay(tmp_path):
    from twin.config import load_scenario
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    (tmp_path / "s.yaml").write_text(SCEN)
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"sensor": "mid", "time": 60, "count": 9}\n{"sensor": "mid", "time": 1e300, "count": 1}\n'
                    '{"sensor": "mid", "time": 120, "count": 12}\n')
    cfg = load_scenario(tmp_path / "s.yaml")
    twin = LiveTwin(cfg, *prepare(cfg), tmp_path / "out", speed=1000.0)
    seen = []
    twin.sim.add_reader(60.0, lambda t: seen.append((t, twin.checker.accepted)))
    twin.run(read_feed(feed))
    assert seen[:3] == [(60.0, 1), (120.0, 2), (180.0, 2)]  # 120's record in time, not at the end


def test_future_times_are_rejected_and_do_not_block_a_sensor(tmp_path):
    now = [0.0]
    c = FeedChecker({"mid": {}}, tmp_path / "dead.jsonl", clock=lambda: now[0], future_s=30.0)
    assert c.check("a", {"sensor": "mid", "time": 86400, "count": 1}) is None
    assert c.check("a", {"sensor": "mid", "time": 1e300, "count": 1}) is None
    assert c.check("a", {"sensor": "mid", "time": 31, "count": 1}) is None
    assert c.check("a", {"sensor": "mid", "time": 30, "count": 1}) is not None  # within the tolerance
    now[0] = 86400.0
    assert c.check("a", {"sensor": "mid", "time": 86400, "count": 1}) is not None  # the sensor was not blocked
    assert c.state()["rejected_by_reason"] == {"in the future": 3}
    with pytest.raises(ValueError, match="future_s"):
        FeedChecker({"mid": {}}, tmp_path / "d2.jsonl", future_s=float("nan"))


def test_only_twin_chooses_a_rejection_reason(tmp_path):
    c = FeedChecker({"mid": {}}, tmp_path / "dead.jsonl")
    assert c.check("a", {"__error__": "anything", "sensor": "mid", "time": 5, "count": 1}) is not None
    assert c.check("a", {"sensor": "mid", "time": 6, "count": 1}, "too large: test") is None  # twin's own
    assert c.check("a", ["not", "a", "dict"]) is None
    assert c.state()["rejected_by_reason"] == {"too large": 1, "malformed record": 1}


# ------------------------------------------------------------------------------------ the API in-process
@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A live twin (not running: its clock stays at 0 s) and a TestClient on its API."""
    from twin.config import load_scenario
    from twin.live.server import ApiLimits, make_app
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    d = tmp_path_factory.mktemp("api")
    (d / "s.yaml").write_text(SCEN)
    cfg = load_scenario(d / "s.yaml")
    city, demand = prepare(cfg)
    twin = LiveTwin(cfg, city, demand, d / "out", fork_scheduler="serial",
                    fork_limits={"max_running": 1, "max_queued": 1, "max_branches": 3})
    app = make_app(twin, Access(TOKEN), ApiLimits(max_body_bytes=20_000, max_batch=50))
    with TestClient(app) as client:
        yield twin, client


def test_writes_need_the_token(api):
    twin, c = api
    rec = {"sensor": "mid", "time": 1, "count": 1}
    received = twin.checker.received
    assert c.post("/observations", json=rec).status_code == 401
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    assert c.post("/observations", json=rec, headers=wrong).status_code == 401
    assert c.post(f"/observations?token={TOKEN}", json=rec).status_code == 401  # writes: the header only
    assert c.post("/fork", json={"horizon_s": 60, "branches": {"a": []}}).status_code == 401
    assert twin.checker.received == received  # refused at the door: not in the books
    r = c.post("/observations", json=rec, headers=AUTH)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert c.get("/state").status_code == 200  # reads are open unless protected


def test_reads_can_require_the_token(api):
    from twin.live.server import make_app

    twin, _ = api
    with TestClient(make_app(twin, Access(TOKEN, protect_reads=True))) as c:
        assert c.get("/state").status_code == 401
        assert c.get("/forks").status_code == 401
        assert c.get("/state", headers=AUTH).status_code == 200
        assert c.get(f"/state?token={TOKEN}").status_code == 200  # for a browser's EventSource


def test_token_from_option_environment_or_generated(monkeypatch):
    monkeypatch.delenv("TWIN_TOKEN", raising=False)
    tok, generated = resolve_token(None)
    assert generated and len(tok) >= 32
    assert resolve_token(TOKEN) == (TOKEN, False)
    monkeypatch.setenv("TWIN_TOKEN", "from-the-environment-42")
    assert resolve_token(None) == ("from-the-environment-42", False)
    with pytest.raises(ValueError, match="at least 16"):
        resolve_token("short")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_cross_site_posts_are_refused(api):
    twin, c = api
    before = twin.checker.state()
    body = json.dumps({"sensor": "mid", "time": 2, "count": 1})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        r = c.post("/observations", content=body, headers={**AUTH, "Content-Type": ctype})
        assert r.status_code == 415, ctype
    r = c.post("/fork", content='{"branches": {}}', headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415
    after = twin.checker.state()
    assert after["received"] - before["received"] == 4 and after["accepted"] == before["accepted"]
    assert after["rejected_by_reason"]["unsupported content type"] >= 4 and balanced(after)
    r = c.post("/observations", content="sensor,time,count\nmid,3,2\nmid,4\n",
               headers={**AUTH, "Content-Type": "text/csv; charset=utf-8"})  # the documented CSV type
    assert r.status_code == 200 and r.json() == {"received": 2, "accepted": 1, "rejected": 1}


def test_bodies_and_batches_are_bounded(api):
    twin, c = api
    before = twin.checker.state()
    dead = twin.checker.path
    size0 = dead.stat().st_size
    big = b'{"sensor": "mid", "time": 5, "count": 1, "pad": "' + b"x" * 5_000_000 + b'"}'
    assert c.post("/observations", content=big, headers=JSON).status_code == 413

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(100):
            yield b"[" + b" " * 1000

    assert c.post("/observations", content=chunks(), headers=JSON).status_code == 413
    batch = [{"sensor": "mid", "time": 10 + i * 0.01, "count": 1} for i in range(51)]
    r = c.post("/observations", json=batch, headers=AUTH)
    assert r.status_code == 413 and "at most 50" in r.json()["detail"]
    assert c.post("/fork", content=big, headers=JSON).status_code == 413
    after = twin.checker.state()
    assert after["received"] - before["received"] == 3 and after["accepted"] == before["accepted"]
    assert balanced(after)
    assert dead.stat().st_size - size0 < 3 * (DEAD_LETTER_CHARS + 500)  # 5 MB posted, a few kB kept
    r = c.post("/observations", json=batch[:50], headers=AUTH)
    assert r.json() == {"received": 50, "accepted": 50, "rejected": 0}


BAD_BODIES = [
    (b"{oops", 400), (b"", 400), (b"null", 200), (b"[]", 200), (b"[1, 2]", 200), (b"\xff\xfe", 400),
    (b"[" * 1000 + b"]" * 1000, 400), (b'{"a":' * 40 + b"1" + b"}" * 40, 400),
    (b'{"sensor": "mid", "time": 20, "count": 1e400}', 200),
    (b'{"sensor": "mid", "time": 21, "count": ' + b"9" * 401 + b"}", 200),
    (b'{"sensor": "mid", "time": 21.5, "count": ' + b"9" * 5000 + b"}", 400),
    (b'{"sensor": "mid", "time": NaN, "count": 1}', 200), (b'{"sensor": "mid", "time": 22, "count": -Infinity}', 200),
    (b'{"__error__": 123}', 200), (b'{"__error__": "ok", "__raw__": "x"}', 200),
    (b'{"sensor": "mid", "time": 23, "count": true}', 200), (b'{"sensor": "mid", "time": -500, "count": 1}', 200),
    (b'{"sensor": "mid", "time": 86400, "count": 1}', 200), (b'{"sensor": "mid", "time": 1e300, "count": 1}', 200),
    (b'{"sensor": {"x": [1, {"y": null}]}, "time": 24, "count": 1}', 200),
    (b'{"sensor": "mid", "time": "2026-01-01T00:00:00", "count": 1}', 200),
]


def test_bad_bodies_are_booked_never_a_500(api):
    twin, c = api
    before = twin.checker.state()
    for body, status in BAD_BODIES:
        r = c.post("/observations", content=body, headers=JSON)
        assert r.status_code == status, (body[:60], r.status_code, r.text)
    after = twin.checker.state()
    n = sum(1 if s != 200 or not body.startswith(b"[") else len(json.loads(body)) for body, s in BAD_BODIES)
    assert after["received"] - before["received"] == n
    assert after["accepted"] == before["accepted"] and balanced(after)
    for line in twin.checker.path.read_text(encoding="utf-8").splitlines():
        strict_json(line)
    assert c.get("/state").status_code == 200


def test_fork_work_is_bounded(api):
    twin, c = api
    slow = [{"type": "speed_limit", "edges": ["e1"], "speed_kmh": 15}]
    r = c.post("/fork", json={"horizon_s": 1e9, "branches": {"a": slow}}, headers=AUTH)
    assert r.status_code == 422 and "at most 86400 s" in r.json()["detail"]
    for h in (float("inf"), "1e400", [1], True):
        assert c.post("/fork", content=json.dumps({"horizon_s": h, "branches": {"a": slow}}),
                      headers=JSON).status_code == 422
    r = c.post("/fork", json={"horizon_s": 60, "branches": {f"b{i}": slow for i in range(4)}}, headers=AUTH)
    assert r.status_code == 422 and "at most 3 branches" in r.json()["detail"]
    # the twin is not running, so forks wait for their checkpoint: 1 running + 1 queued, then 429
    assert c.post("/fork", json={"horizon_s": 60, "branches": {"a": slow}}, headers=AUTH).status_code == 202
    assert c.post("/fork", json={"horizon_s": 60, "branches": {"a": slow}}, headers=AUTH).status_code == 202
    r = c.post("/fork", json={"horizon_s": 60, "branches": {"a": slow}}, headers=AUTH)
    assert r.status_code == 429 and r.headers["retry-after"]


def test_fork_cli_bounds(tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN.replace("duration_s: 240", "duration_s: 60"))
    r = run_cli("fork", tmp_path / "s.yaml", "--at", "1e7", "--branch", tmp_path / "s.yaml", "--out", tmp_path / "o")
    assert r.returncode == 2 and "--at" in r.stderr and len(lines(r.stderr)) == 1
    r = run_cli("fork", tmp_path / "s.yaml", "--at", "30", "--horizon", "1e9", "--branch", tmp_path / "s.yaml")
    assert r.returncode == 2 and "at most 86400 s" in r.stderr and len(lines(r.stderr)) == 1


# ---------------------------------------------------------------------------------- the API, for real
def start_live(serve, tmp_path, *extra, speed=30, duration=3600, scen=SCEN):
    """``run_sim.py live`` on a free loopback port (``serve``, tests/conftest.py), not waited for; (process,
    base URL)."""
    (tmp_path / "s.yaml").write_text(scen.replace("duration_s: 240", f"duration_s: {duration}"))
    base, proc = serve("live", tmp_path / "s.yaml", "--speed", speed, "--out", tmp_path / "out", *extra, wait=None)
    return proc, base


def test_port_above_65535_is_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN)
    for listen in ("127.0.0.1:70000", "127.0.0.1:0", "nohost"):
        r = run_cli("live", tmp_path / "s.yaml", "--listen", listen, "--out", tmp_path / "o")
        assert r.returncode == 2 and r.stderr.startswith("error: --listen") and len(r.stderr.splitlines()) == 1
    r = run_cli("live", tmp_path / "s.yaml", "--listen", "127.0.0.1:8765", "--token", "short")
    assert r.returncode == 2 and "at least 16" in r.stderr


def test_generated_token_and_non_loopback_warning(tmp_path):
    (tmp_path / "s.yaml").write_text(SCEN.replace("duration_s: 240", "duration_s: 60"))
    r = run_cli("live", tmp_path / "s.yaml", "--listen", f"0.0.0.0:{free_port()}", "--speed", "100",
                "--out", tmp_path / "out", env={"TWIN_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    assert "warning: the API listens on 0.0.0.0" in r.stderr and "reverse proxy" in r.stderr
    token = (tmp_path / "out" / "api_token").read_text().strip()
    assert len(token) >= 32 and f"token: {token}" in r.stdout
    assert stat.S_IMODE((tmp_path / "out" / "api_token").stat().st_mode) == 0o600


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_partial_results(serve, tmp_path, sig, code):
    proc, base = start_live(serve, tmp_path, "--token", TOKEN)
    try:
        wait_for_clock(base, 60)
        r = httpx.post(base + "/observations", json={"sensor": "mid", "time": 60, "count": 9}, headers=AUTH)
        assert r.json()["accepted"] == 1
        wait_for_clock(base, 130)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert len(lines(err)) == 1 and f"interrupted by {sig.name}" in err and "partial" in err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["partial"] is True and manifest["interrupted_by"] == sig.name
    assert 130 <= manifest["interrupted_at_s"] < 3600
    assert manifest["feed"]["accepted"] == 1
    with xr.open_dataset(tmp_path / "out" / "results.nc") as ds:
        assert ds.attrs["partial"] == 1 and ds.attrs["interrupted_by"] == sig.name
        assert float(ds["time"][-1]) == manifest["interrupted_at_s"]
        assert float(ds["observed_count"].sel(sensor="mid").values[0]) == 9.0
    assert json.loads((tmp_path / "out" / "state.json").read_text())["status"] == "finished"


def _open_streams(port: int, n: int, token: str | None = None) -> tuple[list[socket.socket], list[bytes]]:
    """``n`` raw /stream connections (each reads its first bytes); the sockets and their status lines."""
    socks, heads = [], []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        heads.append(s.recv(4096).split(b"\r\n", 1)[0])
        socks.append(s)
    return socks, heads


def test_stream_clients_are_capped(tmp_path):
    from twin.config import load_scenario
    from twin.live.server import ApiLimits, Server
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    (tmp_path / "s.yaml").write_text(SCEN)
    cfg = load_scenario(tmp_path / "s.yaml")
    twin = LiveTwin(cfg, *prepare(cfg), tmp_path / "out")
    port = free_port()
    server = Server(twin, "127.0.0.1", port, Access(TOKEN), ApiLimits(max_streams=3))
    server.start()
    try:
        socks, heads = _open_streams(port, 4)
        assert heads[:3] == [b"HTTP/1.1 200 OK"] * 3 and heads[3] == b"HTTP/1.1 503 Service Unavailable"
        for s in socks:
            s.close()
        for _ in range(100):  # the server notices on its next write: push a state to every client
            for q in list(twin.subscribers):
                q.put({"time_s": 1.0})
            if not twin.subscribers:
                break
            time.sleep(0.05)
        socks, heads = _open_streams(port, 1)
        assert heads == [b"HTTP/1.1 200 OK"]  # the closed ones were given back
        socks[0].close()
    finally:
        server.stop()
    port = free_port()
    server = Server(twin, "127.0.0.1", port, Access(TOKEN), ApiLimits(max_streams=10, max_connections=4))
    server.start()
    try:
        socks, heads = _open_streams(port, 5)  # connections beyond the limit (the new one counted): 503
        assert heads == [b"HTTP/1.1 200 OK"] * 3 + [b"HTTP/1.1 503 Service Unavailable"] * 2
        for s in socks:
            s.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_fifty_idle_streams_and_a_thousand_requests(serve, tmp_path):
    # 120 loops make a state worth sending: a client polling it would cost (0.14 core for 50 on main)
    loops = ", ".join(f"{{id: l{e}_{k}, lane: e{e}_0, pos_m: {10 + 7 * k}}}" for e in range(3) for k in range(40))
    scen = SCEN.replace("{loops: [{id: mid, lane: e1_0, pos_m: 150}]}", f"{{loops: [{{id: mid, lane: e1_0, "
                                                                        f"pos_m: 150}}, {loops}]}}")
    proc, base = start_live(serve, tmp_path, "--token", TOKEN, speed=10, scen=scen)
    port = int(base.rsplit(":", 1)[1])
    socks = []
    try:
        assert len(wait_for_clock(base, 60)["sensors"]) == 121
        p = psutil.Process(proc.pid)
        socks, heads = _open_streams(port, 50)
        assert heads == [b"HTTP/1.1 200 OK"] * 50
        c0, t0 = p.cpu_times(), time.perf_counter()
        time.sleep(4.0)
        c1, t1 = p.cpu_times(), time.perf_counter()
        idle_cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
        print(f"\nCPU of the live twin with 50 idle /stream clients: {idle_cpu:.3f} core")
        assert idle_cpu < 0.05
        rng = np.random.default_rng(18)
        sent = accepted = 0
        bad = [(b"{oops", "application/json"), (b'{"sensor": "mid", "time": 1e300, "count": 1}', "application/json"),
               (b'{"sensor": "mid", "time": -5, "count": 1}', "application/json"),
               (b'{"sensor": "nope", "time": 5, "count": 1}', "application/json"),
               (b'{"sensor": "mid", "time": 5, "count": true}', "application/json"),
               (b"[" * 500 + b"]" * 500, "application/json"), (b"count=1", "application/x-www-form-urlencoded"),
               (b'{"sensor": "mid", "time": 5, "count": 1}', "text/plain"), (b"\xff\x00", "application/json"),
               (b'[{"sensor": "mid", "time": 6, "count": 1e400}, 7, null]', "application/json")]
        t_req = time.perf_counter()
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(1000):
                if rng.random() < 0.5:
                    body, ctype = json.dumps({"sensor": "mid", "time": 0.05 * i, "count": 1}).encode(), \
                        "application/json"
                    accepted += 1
                else:
                    body, ctype = bad[int(rng.integers(len(bad)))]
                sent += len(json.loads(body)) if body.startswith(b"[{") else 1
                r = client.post("/observations", content=body, headers={**AUTH, "Content-Type": ctype})
                assert r.status_code in (200, 400, 415), r.text
        print(f"1000 mixed requests in {time.perf_counter() - t_req:.1f} s")
        st_ = httpx.get(base + "/state", timeout=5).json()["feed"]
        assert st_["received"] == sent and st_["accepted"] == accepted and balanced(st_)
        assert len(httpx.get(base + "/state", timeout=5).json()) > 0  # still up
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        f = json.loads((tmp_path / "out" / "manifest.json").read_text())["feed"]
        assert f["received"] == sent and balanced(f)
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_forks_share_one_dask_client_and_the_save_does_not_need_it(tmp_path, monkeypatch):
    import twin.live.fork as F
    from twin.config import load_scenario
    from twin.live.session import LiveTwin
    from twin.runner import prepare

    made = []
    real = F.dask_client

    def counted(scheduler):
        made.append(scheduler)
        return real(scheduler)

    monkeypatch.setattr(F, "dask_client", counted)
    (tmp_path / "s.yaml").write_text(SCEN)
    cfg = load_scenario(tmp_path / "s.yaml")
    twin = LiveTwin(cfg, *prepare(cfg), tmp_path / "out", speed=40.0)
    slow = [{"type": "speed_limit", "edges": ["e1"], "speed_kmh": 15}]
    fids = [twin.forks.request({"slow": slow}, 120.0) for _ in range(3)]  # three quick forks
    res = twin.run()
    assert made == [None]  # one local cluster for all three
    forks = res.manifest["forks"]
    assert [forks[f]["status"] for f in fids] == ["done"] * 3, forks
    assert (tmp_path / "out" / "results.nc").is_file()
    from distributed import default_client

    with pytest.raises(ValueError):
        default_client()  # nothing was left as Dask's default


# ------------------------------------------------------------------------------------------ properties
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 500), max_value=10 ** 500)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | st.sampled_from(["mid", "60", "nan"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20)
RECORDS = st.dictionaries(st.sampled_from(["sensor", "time", "count", "speed_kmh", "occupancy", "__error__",
                                           "__raw__"]), JSON_VALUES, max_size=7)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(RECORDS | JSON_VALUES, max_size=8), lines=st.lists(st.binary(max_size=80), max_size=8))
def test_property_feed_books_balance(tmp_path, records, lines):
    c = FeedChecker({"mid": {"lanes": 1}}, tmp_path / "dead.jsonl", clock=lambda: 100.0)
    for i, r in enumerate(records):
        c.check(f"r{i}", r)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(lines))
    for where, raw in read_feed(feed):
        c.check(where, raw)
    csv = tmp_path / "feed.csv"
    csv.write_bytes(b"sensor,time,count\n" + b"\n".join(lines))
    for where, raw in read_feed(csv):
        c.check(where, raw)
    s = c.state()
    c.close()
    assert balanced(s) and s["received"] >= len(records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | RECORDS.map(lambda r: json.dumps(r).encode())
       | st.lists(RECORDS, max_size=5).map(lambda r: json.dumps(r).encode()),
       ctype=st.sampled_from(["application/json", "text/csv", "text/plain", "application/json; charset=utf-8",
                              "", "multipart/form-data"]))
def test_property_http_bodies_books_balance(api, body, ctype):
    twin, c = api
    r = c.post("/observations", content=body, headers={**AUTH, "Content-Type": ctype})
    assert r.status_code in (200, 400, 413, 415), r.text
    assert balanced(twin.checker.state())
    assert c.get("/state").status_code == 200
