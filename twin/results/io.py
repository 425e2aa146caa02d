"""Write and read a run's results directory: results.nc, kpis.json, manifest.json."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import xarray as xr


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_results(out_dir: str | Path, ds: xr.Dataset, kpis: dict, manifest: dict) -> Path:
    """Write ``results.nc`` (NetCDF-4), ``kpis.json`` and ``manifest.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoding = {name: {"zlib": True, "complevel": 4} for name, v in ds.data_vars.items() if v.dtype.kind in "fiu"}
    tmp = out / "results.nc.tmp"
    ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    tmp.replace(out / "results.nc")
    write_json(out / "kpis.json", kpis)
    write_json(out / "manifest.json", manifest)
    return out


def open_results(path: str | Path) -> xr.Dataset:
    """Open ``results.nc`` from a results directory (or the file itself), loaded into memory."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.nc"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no results file (run a scenario first)")
    with xr.open_dataset(p, engine="netcdf4") as ds:
        return ds.load()


def load_run(results_dir: str | Path):
    """The results Dataset and the city (``city.npz``) of a results directory (``run`` writes both)."""
    from twin.city.model import CityModel

    d = Path(results_dir)
    if not (d / "city.npz").is_file():
        raise FileNotFoundError(f"{d}: no city.npz beside the results (re-run the scenario with this version)")
    return open_results(d), CityModel.load(d / "city.npz")
