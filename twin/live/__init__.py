"""The live twin: feeds of sensor records, their checks and dead letters (more to come: see issue 6)."""
from __future__ import annotations

from twin.live.feed import BadLine, FeedChecker, Record, read_feed

__all__ = ["BadLine", "FeedChecker", "Record", "read_feed"]
