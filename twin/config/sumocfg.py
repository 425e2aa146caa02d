"""Read a SUMO configuration (``.sumocfg``): which network, route and additional files, and the time window."""
from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from twin.config.loader import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SumoConfigFiles:
    path: Path
    net: Path
    routes: tuple[Path, ...]
    additional: tuple[Path, ...]
    begin: float
    end: float | None
    step_length: float | None


def read_sumocfg(path: str | Path) -> SumoConfigFiles:
    """Paths (resolved relative to the .sumocfg) and times from a SUMO configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: SUMO configuration not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise ConfigError(f"{path}: line {line}, column {col}: malformed XML") from None

    def value(name: str) -> str | None:
        for elem in root.iter(name):
            return elem.get("value")
        return None

    def files(name: str) -> tuple[Path, ...]:
        v = value(name)
        if not v:
            return ()
        out = []
        for part in v.replace(",", " ").split():
            p = (path.parent / part).resolve()
            if not p.is_file():
                raise ConfigError(f"{path}: {name}: file not found: {part}")
            out.append(p)
        return tuple(out)

    _warn_unapplied(path, root)
    net = files("net-file")
    if not net:
        raise ConfigError(f"{path}: no net-file given")
    begin, end, step = (_seconds(path, k, value(k)) for k in ("begin", "end", "step-length"))
    return SumoConfigFiles(path=path.resolve(), net=net[0], routes=files("route-files"),
                           additional=files("additional-files"), begin=begin or 0.0, end=end, step_length=step)


def _seconds(path: Path, key: str, v: str | None) -> float | None:
    """A SUMO time value (seconds, or ``[[D:]H:]M:S``) as finite seconds >= 0; None if not given."""
    if v is None or not v.strip():
        return None
    try:
        parts = [float(p) for p in v.strip().split(":")]
        if len(parts) > 4:
            raise ValueError
        t = sum(p * f for p, f in zip(reversed(parts), (1, 60, 3600, 86400)))
    except ValueError:
        raise ConfigError(f"{path}: {key}: not a time in seconds: {v!r}") from None
    if not math.isfinite(t) or t < 0:
        raise ConfigError(f"{path}: {key}: must be a finite time >= 0 s, got {v!r}")
    return t


APPLIED_OPTIONS = {"net-file", "route-files", "additional-files", "begin", "end", "step-length"}
# sections whose options change what SUMO writes or shows, not how traffic runs
_QUIET_SECTIONS = {"output", "report", "gui_only", "random_number", "configuration"}


def _warn_unapplied(path: Path, root: ET.Element) -> None:
    """One warning line naming the configuration's options that twin does not apply."""
    skipped = []
    for section in root:
        if section.tag in _QUIET_SECTIONS:
            continue
        for opt in (section if len(section) else [section]):
            if opt.tag not in APPLIED_OPTIONS and not opt.tag.endswith("-output"):
                skipped.append(f"{opt.tag}={opt.get('value')}")
    if skipped:
        log.warning("%s: SUMO options twin does not apply: %s", path, ", ".join(skipped))


def scenario_from_sumocfg(path: str | Path, *, overrides: dict | None = None):
    """A twin scenario running a SUMO configuration's network and demand (default duration: its
    ``end``, else one hour)."""
    from pydantic import ValidationError

    from twin.config.loader import _deep_merge, _format_error
    from twin.config.models import ScenarioConfig

    f = read_sumocfg(path)
    if not f.routes:
        raise ConfigError(f"{path}: no route-files: nothing to run (import the network with `run_sim.py import` "
                          "to get a scenario with generated demand)")
    duration = (f.end - f.begin) if f.end is not None else 3600.0
    data = {
        "name": f"{f.path.parent.name}-{f.path.stem}" if f.path.stem in ("run", "config", "osm") else f.path.stem,
        "description": f"SUMO configuration {f.path}",
        "city": {"type": "sumo", "net": str(f.net), "additional": [str(a) for a in f.additional]},
        "demand": {"type": "sumo", "files": [str(p) for p in (*f.routes, *f.additional)], "begin_s": f.begin,
                   "end_s": f.end},
        "run": {"duration_s": duration},
        "sensors": {"loop_files": [str(a) for a in f.additional
                                   if b"<e1Detector" in a.read_bytes() or b"<inductionLoop" in a.read_bytes()]},
    }
    if f.step_length:
        data["run"]["engine"] = {"type": "native", "step_length_s": f.step_length}
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return ScenarioConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc.errors()[0], {}, Path(path))) from None


def load_any(path: str | Path, *, overrides: dict | None = None):
    """A scenario YAML or a SUMO configuration (``.sumocfg``)."""
    from twin.config.loader import load_scenario

    if str(path).endswith(".sumocfg"):
        return scenario_from_sumocfg(path, overrides=overrides)
    return load_scenario(path, overrides=overrides)
