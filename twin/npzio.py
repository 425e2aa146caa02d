"""Arrays plus a JSON header in one ``.npz`` file: how twin saves cities, demands and engine checkpoints."""
from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from twin.core.files import atomic_path


def save_npz(path: str | Path, fmt: str, meta: dict, arrays: dict[str, np.ndarray], *, compress: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = np.frombuffer(json.dumps({"format": fmt, **meta}).encode(), dtype=np.uint8)
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
    if meta.get("format") != fmt:
        raise error(f"{path}: unknown {what} format {meta.get('format')!r} (expected {fmt})")
    return meta, arrays
