"""Write and read a run's results directory: results.nc, kpis.json, manifest.json.

Results always land: :func:`prepare_output` checks the folder before the
simulation starts (a folder, writable, room for the results, inside the
results folder unless given with ``--out``) and locks it against a second
run; every file is written atomically; attributes are stored in types NetCDF
holds (:func:`netcdf_attrs`).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from twin.core.files import atomic_path, write_text_atomic

RESULTS_ROOT = Path("results")
LOCK_NAME = ".twin.lock"


class ResultsError(ValueError):
    """The results cannot be written where asked; ``str()`` is one line for the user."""


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON (non-finite floats as null), atomically."""
    write_text_atomic(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ names and folders
def safe_name(name: str) -> str:
    """``name`` as one file-name component: no separators, NUL or other control characters, no leading dot.

    ``"../../x"`` becomes ``"x"``, ``"a/b"`` ``"a_b"``; an empty result is ``"scenario"``.
    """
    s = re.sub(r"[^\w.+=@-]+", "_", str(name), flags=re.ASCII)
    s = re.sub(r"_+", "_", s).strip("._ ")
    return s[:120] or "scenario"


def default_output(name: str, suffix: str = "") -> Path:
    """``results/<name><suffix>`` with ``name`` made safe, so a scenario name cannot leave the results folder."""
    return RESULTS_ROOT / f"{safe_name(name)}{suffix}"


def estimate_results_bytes(n_edges: int, n_trips: int, duration_s: float, record_interval_s: float,
                           n_sensors: int = 0) -> int:
    """An upper bound [bytes] of results.nc before compression: 6 edge series, 6 count series, 12 trip values."""
    records = int(math.ceil(duration_s / record_interval_s)) + 1
    return int(8 * (records * (6 * n_edges + 3 * n_sensors + 8) + 12 * n_trips + 6 * n_edges) + 65536)


class OutputLock:
    """An exclusive lock on a results folder (``.twin.lock``, ``flock``); released when the process ends.

    Use :func:`prepare_output` to get one; :meth:`release` (or ``with``) ends it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None
        self._exclusive = False  # without fcntl (Windows)

    def acquire(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # Windows: a lock file made exclusively (left behind if the process is killed)
            return self._acquire_exclusive()
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ResultsError(f"{self.folder}: cannot write here ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ResultsError(f"{self.folder}: another run (pid {holder}) is writing its results here; "
                                   "wait for it to finish or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous holder removed while we waited for it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def _acquire_exclusive(self) -> "OutputLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = self.path.read_text(errors="replace").strip() or "?"
            raise ResultsError(f"{self.folder}: another run (pid {holder}) is writing its results here; wait for "
                               f"it or choose another --out (if no run is, delete {self.path})") from None
        except OSError as exc:
            raise ResultsError(f"{self.folder}: cannot write here ({exc.strerror})") from None
        os.write(fd, str(os.getpid()).encode())
        self._fd, self._exclusive = fd, True
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        if not self._exclusive:  # flock: remove while still holding it, so no one locks a removed file
            self._unlink()
        os.close(self._fd)
        self._fd = None
        if self._exclusive:
            self._unlink()

    def _unlink(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def prepare_output(out: str | Path | None, name: str, *, suffix: str = "",
                   need_bytes: int = 0) -> tuple[Path, OutputLock]:
    """The results folder for a run, checked before the run starts, and its lock.

    ``out`` is the user's ``--out`` (any folder); without it the folder is
    :func:`default_output` and must resolve inside ``results/``. The folder is
    created, must be writable and have ``need_bytes`` free; two runs into one
    folder: the second gets a :class:`ResultsError`.
    """
    if out is None:
        folder = default_output(name, suffix)
        root = RESULTS_ROOT.resolve()
        if root not in folder.resolve().parents:
            raise ResultsError(f"scenario name {name!r}: its results folder {folder} is outside {RESULTS_ROOT}/; "
                               "give the folder with --out")
    else:
        folder = Path(out)
        if "\x00" in str(folder):
            raise ResultsError(f"--out {str(folder)!r}: a path cannot hold a NUL byte")
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{folder}: is a file, not a folder (choose another --out)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{folder}: cannot create the results folder ({exc.strerror})") from None
    lock = OutputLock(folder).acquire()
    try:
        _probe(folder, need_bytes)
    except BaseException:
        lock.release()
        raise
    return folder, lock


def _probe(folder: Path, need_bytes: int) -> None:
    probe = folder / f".twin-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ResultsError(f"{folder}: cannot write here ({exc.strerror})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise ResultsError(f"{folder}: only {free / 1e6:.1f} MB free; the results need up to "
                           f"{need_bytes / 1e6:.1f} MB")


# ------------------------------------------------------------------ NetCDF-safe attributes
_INT64 = np.iinfo(np.int64)


def netcdf_value(v: Any) -> Any:
    """``v`` in a type a NetCDF attribute holds: str, int64, float64 or a 1-D numeric array.

    bool → 0/1, an integer beyond int64 → its decimal string, None/dicts/lists of
    mixed things → JSON text, NUL bytes in strings → U+FFFD.
    """
    if isinstance(v, (bool, np.bool_)):
        return np.int8(bool(v))
    if isinstance(v, (int, np.integer)):
        return int(v) if _INT64.min <= int(v) <= _INT64.max else str(int(v))
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd")
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "iuf" and v.size:
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  and (isinstance(x, float) or _INT64.min <= x <= _INT64.max)
                                                  for x in v):
        return np.asarray(v)
    return json.dumps(_jsonable(v), default=str).replace("\x00", "\ufffd")


def netcdf_attrs(attrs: dict) -> dict:
    """:func:`netcdf_value` of each value, with keys made safe too."""
    return {str(k).replace("\x00", "_") or "_": netcdf_value(v) for k, v in attrs.items()}


def netcdf_safe(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` whose own and variables' attributes NetCDF holds."""
    ds = ds.copy(deep=False)
    ds.attrs = netcdf_attrs(ds.attrs)
    for v in ds.variables.values():
        v.attrs = netcdf_attrs(v.attrs)
    return ds


# HDF5's chunk cache per variable while a file is written [bytes]: with netCDF4's default (64 MB) each variable
# keeps up to that much of its chunks until the file closes (+425 MB for a metropolitan day's results); the
# variables are written whole, so a small cache costs no time
WRITE_CHUNK_CACHE = 4 * 2**20


def write_netcdf(ds: xr.Dataset, path: Path, **kwargs) -> None:
    """``ds.to_netcdf(path)`` atomically, with NetCDF-safe attributes (and a small chunk cache while it writes)."""
    import netCDF4

    with atomic_path(path) as tmp:
        before = netCDF4.get_chunk_cache()
        netCDF4.set_chunk_cache(WRITE_CHUNK_CACHE, *before[1:])
        try:
            netcdf_safe(ds).to_netcdf(tmp, engine="netcdf4", **kwargs)
        finally:
            netCDF4.set_chunk_cache(*before)


# zlib level of results.nc: on a metropolitan day's results (1 M trips, 96 records of 41,312 edges) level 1
# writes in 8.7-10.0 s and 59.6 MB, level 4 in 11.6-12.1 s and 55.0 MB
COMPLEVEL = 1


def _text(v: xr.Variable) -> bool:
    """``v`` holds text only (Python strings, at least one of them not empty)."""
    if v.dtype.kind != "O" or v.size == 0:
        return False
    from pandas.api.types import infer_dtype

    values = v.values.ravel()
    return infer_dtype(values, skipna=False) == "string" and any(map(len, values))


def write_results(out_dir: str | Path, ds: xr.Dataset, kpis: dict, manifest: dict) -> Path:
    """Write ``results.nc`` (NetCDF-4), ``kpis.json`` and ``manifest.json`` into ``out_dir``, each atomically.

    Numbers are compressed (zlib at level :data:`COMPLEVEL`); text variables (trip ids, their origins and
    destinations, ...) are stored as compressed UTF-8 character arrays (``_Encoding: utf-8``, which xarray
    and netCDF4 read back as the same strings): a million trips' ids as variable-length strings take ~60 MB
    each, uncompressed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoding = {name: {"zlib": True, "complevel": COMPLEVEL} for name, v in ds.data_vars.items()
                if v.dtype.kind in "fiu"}
    encoding.update({name: {"dtype": "S1", "zlib": True, "complevel": COMPLEVEL}
                     for name, v in ds.variables.items() if _text(v)})
    write_netcdf(ds, out / "results.nc", encoding=encoding)
    write_json(out / "kpis.json", kpis)
    write_json(out / "manifest.json", manifest)
    return out


def save_or_rescue(save: Callable[[Path], Any], out: Path, name: str) -> tuple[Path, str | None]:
    """``save(out)``; if that fails (disk full, folder gone), ``save`` into a new folder under the system's
    temporary folder instead. Returns (where the results are, None or the reason ``out`` failed)."""
    try:
        save(out)
        return out, None
    except OSError as exc:
        reason = f"{exc.strerror or exc}"
    rescue = Path(tempfile.mkdtemp(prefix=f"twin-{safe_name(name)}-"))
    save(rescue)
    return rescue, reason


def open_results(path: str | Path) -> xr.Dataset:
    """Open ``results.nc`` from a results directory (or the file itself), loaded into memory."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.nc"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no results file (run a scenario first)")
    try:
        with xr.open_dataset(p, engine="netcdf4") as ds:
            return _text_as_unicode(ds.load())
    except (OSError, ValueError, RuntimeError) as exc:
        raise ResultsError(f"{p}: not a results file, or a damaged/truncated one ({exc})") from None


def _text_as_unicode(ds: xr.Dataset) -> xr.Dataset:
    """Text stored as character arrays (:func:`write_results`) as fixed-width unicode arrays, as xarray reads
    variable-length strings (and results written before as such)."""
    text = {name: xr.Variable(v.dims, v.values.astype(str), v.attrs) for name, v in ds.variables.items()
            if v.dtype.kind == "O" and "char_dim_name" in v.encoding}
    if not text:
        return ds
    coords = {k: text.get(k, ds.variables[k]) for k in ds.coords}  # (in their order)
    return ds.drop_vars(list(coords)).assign_coords(coords).assign({k: v for k, v in text.items() if k not in coords})


def load_run(results_dir: str | Path):
    """The results Dataset and the city (``city.npz``) of a results directory (``run`` writes both)."""
    from twin.city.model import CityModel

    d = Path(results_dir)
    if not (d / "city.npz").is_file():
        raise FileNotFoundError(f"{d}: no city.npz beside the results (re-run the scenario with this version)")
    return open_results(d), CityModel.load(d / "city.npz")
