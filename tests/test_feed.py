"""Feed records: every one accepted or set aside with its reason; nothing lost."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from twin.live import FeedChecker, read_feed


def test_feed_checks_and_dead_letters(tmp_path):
    feed = tmp_path / "feed.jsonl"
    lines = [
        {"sensor": "d1", "time": 60, "count": 12, "speed_kmh": 42},
        {"sensor": "d1", "time": 120, "count": 15},
        {"sensor": "zz", "time": 120, "count": 3},
        {"sensor": "d2", "count": 3},
        {"sensor": "d2", "time": "yesterday", "count": 3},
        {"sensor": "d1", "time": 120, "count": 15},
        {"sensor": "d1", "time": -100, "count": 1},
        {"sensor": "d2", "time": 60, "count": "NaN"},
        {"sensor": "d2", "time": 61, "count": -2},
        {"sensor": "d2", "time": 62, "count": 500},
        {"sensor": "d2", "time": 63, "count": 5, "speed_kmh": 400},
        {"sensor": "d2", "time": "2026-11-25T08:02:00Z", "count": 7, "occupancy": 12},
    ]
    feed.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    checker = FeedChecker({"d1": {"lanes": 1}, "d2": {"lanes": 2}}, tmp_path / "dead.jsonl",
                          epoch=datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc))
    accepted = [r for where, raw in read_feed(feed) if (r := checker.check(where, raw))]
    st = checker.state()
    checker.close()
    assert [(r.sensor, r.time) for r in accepted] == [("d1", 60.0), ("d1", 120.0), ("d2", 120.0)]
    assert st["received"] == 13 and st["accepted"] == 3 and st["rejected"] == 10
    assert st["received"] == st["accepted"] + st["rejected"]
    assert st["rejected_by_reason"] == {"unknown sensor": 1, "missing timestamp": 1, "malformed timestamp": 1,
                                        "duplicate": 1, "before the start": 1, "not a number": 1, "negative": 1,
                                        "impossible": 2, "malformed JSON": 1}
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == 10 and dead[0]["where"] == "feed.jsonl:3" and dead[0]["reason"] == "unknown sensor: 'zz'"


def test_csv_feed(tmp_path):
    feed = tmp_path / "f.csv"
    feed.write_text("sensor,time,count,speed_kmh\nd1,60,10,30\nd1,120,,30\n")
    c = FeedChecker({"d1": {}}, tmp_path / "dead.jsonl")
    got = [c.check(w, r) for w, r in read_feed(feed)]
    assert got[0].count == 10 and abs(got[0].speed - 30 / 3.6) < 1e-12 and got[1] is None
    assert c.state()["rejected_by_reason"] == {"not a number": 1}
