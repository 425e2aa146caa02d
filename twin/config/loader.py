"""Load scenario YAML files: ``extends``, section files, validation, one-line errors.

A scenario file may give ``city``, ``demand`` and ``run`` inline or as a path
to a YAML file (relative to the file that names it, usually in
``sim_configs/``). ``extends: other.yaml`` starts from another scenario and
deep-merges this file's keys over it, so a variant states only what differs.
Every error is a :class:`ConfigError` whose message names the file, the key
and what was expected.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from twin.config.models import ScenarioConfig

SECTIONS = ("city", "demand", "run")


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line for the user."""


def _read_yaml(path: Path, what: str = "scenario") -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}invalid YAML ({exc.problem})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _resolve(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, Path]]:
    """The scenario's raw data with sections loaded, and which file each key came from."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    data = _read_yaml(path)
    sources: dict[str, Path] = {}
    base: dict = {}
    if "extends" in data:
        parent = data.pop("extends")
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends: expected a path to a scenario file, got {parent!r}")
        base, sources = _resolve(path.parent / parent, seen + (path,))
    for key in SECTIONS:
        value = data.get(key)
        if isinstance(value, str):
            section_path = (path.parent / value).resolve()
            if not section_path.is_file():
                raise ConfigError(f"{path}: {key}: file not found: {value}")
            data[key] = _read_yaml(section_path, what=key)
            sources[key] = section_path
        elif key in data:
            sources[key] = path
    for key in data:
        if key not in SECTIONS:
            sources[key] = path
    return _deep_merge(base, data), sources


_TAGS = {"grid", "metro", "corridor", "file", "sumo", "osm", "od", "trips", "native", "close_edge", "close_lane",
         "speed_limit", "lane_reallocation", "signal_timing", "signal_program", "congestion_charge", "vehicle_ban",
         "demand_change", "incident"}


def _format_error(err: dict, sources: dict[str, Path], default: Path) -> str:
    loc = [str(p) for p in err["loc"]]
    # drop the discriminator tag pydantic inserts (e.g. ``city.grid.blocks_x``)
    cleaned = []
    for i, part in enumerate(loc):
        tagged = ((i == 1 and loc[0] in ("city", "demand")) or (i == 2 and loc[:2] == ["run", "engine"])
                  or (i == 2 and loc[0] == "policies"))
        if tagged and part in _TAGS:
            continue
        cleaned.append(part)
    key = ".".join(cleaned) or "(top level)"
    src = sources.get(cleaned[0], default) if cleaned else default
    if src != default and cleaned and cleaned[0] in SECTIONS:
        key = ".".join(cleaned[1:]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see docs/scenarios.md)"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], (dict, list)):
        msg = f"{msg} (got {err['input']!r})"
    return f"{src}: {key}: {msg}"


def load_scenario(path: str | Path, *, overrides: dict[str, Any] | None = None) -> ScenarioConfig:
    """Read and validate a scenario file.

    ``overrides`` are deep-merged over the file (e.g. ``{"seed": 3}`` or
    ``{"run": {"duration_s": 600}}``), as the CLI's options do.
    """
    path = Path(path)
    data, sources = _resolve(path)
    if overrides:
        data = _deep_merge(data, overrides)
    data.setdefault("name", path.stem)
    base = _resolve_relative_paths(data, sources, path)
    try:
        return ScenarioConfig.model_validate(base)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(errors[0], sources, path.resolve())
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None


_PATH_KEYS = {("city", "file"): ("path",), ("city", "sumo"): ("net", "additional"), ("city", "osm"): ("path",),
              ("demand", "sumo"): ("files",), ("demand", "file"): ("path",)}


def _resolve_relative_paths(data: dict, sources: dict[str, Path], scenario: Path) -> dict:
    """File paths inside sections are relative to the file that holds them; made absolute here."""
    data = dict(data)
    sensors = data.get("sensors")
    if isinstance(sensors, dict) and isinstance(sensors.get("loop_files"), list):
        src = sources.get("sensors", scenario.resolve())
        data["sensors"] = dict(sensors, loop_files=[_absolute(src.parent, f, "sensors.loop_files", src)
                                                    if isinstance(f, str) else f for f in sensors["loop_files"]])
    air = data.get("air")
    if isinstance(air, dict):
        src = sources.get("air", scenario.resolve())
        data["air"] = dict(air, **{k: _absolute(src.parent, air[k], f"air.{k}", src)
                                   for k in ("stations_csv", "observations") if isinstance(air.get(k), str)})
    for (section, kind), keys in _PATH_KEYS.items():
        sec = data.get(section)
        if not isinstance(sec, dict) or sec.get("type") != kind:
            continue
        base = sources.get(section, scenario.resolve()).parent
        sec = dict(sec)
        for key in keys:
            v = sec.get(key)
            if isinstance(v, str):
                sec[key] = _absolute(base, v, f"{section}.{key}", sources.get(section, scenario))
            elif isinstance(v, list):
                sec[key] = [_absolute(base, x, f"{section}.{key}", sources.get(section, scenario))
                            if isinstance(x, str) else x for x in v]
        data[section] = sec
    return data


def _absolute(base: Path, value: str, key: str, source: Path) -> str:
    p = Path(value)
    p = p if p.is_absolute() else (base / p).resolve()
    if not p.exists():
        raise ConfigError(f"{source}: {key}: file not found: {value}")
    return str(p)


def config_hash(cfg: ScenarioConfig) -> str:
    """SHA-256 of the validated configuration (canonical JSON); equal configs hash equal."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def load_model(path: str | Path, model: type, what: str = "configuration"):
    """Read a YAML file into a pydantic model; errors are one line naming the file and the key."""
    path = Path(path)
    data = _read_yaml(path, what=what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        key = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in _TAGS | _CAL_TAGS))
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if "input" in err and err["type"] not in ("missing", "extra_forbidden") and not isinstance(err["input"],
                                                                                                  (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: {key or '(top level)'}: {msg}{more}") from None


_CAL_TAGS = {"route_flows", "demand_scale", "vtype", "signal_offset"}
