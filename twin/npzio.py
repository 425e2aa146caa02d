"""Arrays plus a JSON header in one ``.npz`` file: how twin saves cities, demands and engine checkpoints."""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from twin.core.files import atomic_path


def checksum(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of a file's header (its ``sha256`` entry left out) and arrays (names, types, shapes, bytes)."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_npz(path: str | Path, fmt: str, meta: dict, arrays: dict[str, np.ndarray], *, compress: bool = True) -> Path:
    """Write ``arrays`` and the JSON header ``meta`` (with its format and checksum) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": fmt, **meta}
    meta["sha256"] = checksum(meta, arrays)
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:  # a reader never sees half a file
        (np.savez_compressed if compress else np.savez)(tmp, __meta__=header, **arrays)
    return path


def load_npz(path: str | Path, fmt: str, error: type[Exception], what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a file written by :func:`save_npz` with format ``fmt``; else ``error`` naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            arrays = {k: np.array(z[k]) for k in z.files if k != "__meta__"}
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise error(f"{path}: not a twin {what} file, or a damaged/truncated one ({reason})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise error(f"{path}: unknown {what} format {found!r} (expected {fmt})")
    if "sha256" in meta and meta["sha256"] != checksum(meta, arrays):  # files before checksums have none
        raise error(f"{path}: {what} file damaged or changed since it was written (checksum mismatch)")
    return meta, arrays
