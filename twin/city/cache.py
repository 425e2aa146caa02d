"""Imported networks kept between runs: a network is parsed once per content, later runs load the city.

The cache folder is ``$TWIN_CACHE_DIR`` if set (``off`` turns the cache off), else
``$XDG_CACHE_HOME/twin`` or ``~/.cache/twin``. An entry is ``cities/<key>.npz`` (the
:class:`~twin.city.model.CityModel`) and ``cities/<key>.json`` (what the import reported, so that its
warnings are given again when the entry is used). The key is a SHA-256 of the source files' paths and
bytes, the reader's options and the source code of twin's city package: an edited network or a changed
reader makes a new entry. A cache folder that cannot be written or a damaged entry is passed over (logged):
the network is then parsed, as without the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from twin.city.model import CityError, CityModel
from twin.core.files import atomic_path

log = logging.getLogger(__name__)

FORMAT = "twin-city-cache/1"


def cache_dir() -> Path | None:
    """The folder of cached cities, or None when ``TWIN_CACHE_DIR=off``."""
    env = os.environ.get("TWIN_CACHE_DIR")
    if env:
        return None if env.lower() == "off" else Path(env) / "cities"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "twin" / "cities"


def _code_digest() -> str:
    """SHA-256 of twin's city package and file formats (a change of the reader makes new entries)."""
    h = hashlib.sha256(FORMAT.encode())
    here = Path(__file__).resolve().parent
    for p in sorted(here.glob("*.py")) + [here.parent / "npzio.py"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(kind: str, files: list[Path], options: dict) -> str:
    """The key of an entry: ``kind``, the files' resolved paths and bytes, ``options``, the reader's code."""
    h = hashlib.sha256(f"{kind}\n{json.dumps(options, sort_keys=True, default=str)}\n{_code_digest()}".encode())
    for f in files:
        h.update(str(f.resolve()).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:40]


def cached_city(kind: str, files: list[Path], options: dict, build: Callable[[], tuple[CityModel, dict]]
                ) -> tuple[CityModel, dict]:
    """``build()`` (a city and a JSON-able report of its import), or the entry it left in the cache before."""
    folder = cache_dir()
    if folder is None or not all(f.is_file() for f in files):  # a missing file: the reader says which
        return build()
    key = cache_key(kind, files, options)
    npz, meta = folder / f"{key}.npz", folder / f"{key}.json"
    if npz.is_file() and meta.is_file():
        try:
            report = json.loads(meta.read_text(encoding="utf-8"))
            return CityModel.load(npz), report
        except (CityError, OSError, ValueError) as exc:
            log.info("city cache: entry %s not used (%s); reading %s again", npz, exc, files[0])
    city, report = build()
    try:
        city.save(npz)
        with atomic_path(meta) as tmp:
            Path(tmp).write_text(json.dumps(report), encoding="utf-8")
    except OSError as exc:
        log.info("city cache: cannot keep %s in %s (%s)", files[0], folder, exc)
    return city, report
