"""Arrays plus a JSON header in one ``.npz`` file: how twin saves cities, demands and engine checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def save_npz(path: str | Path, fmt: str, meta: dict, arrays: dict[str, np.ndarray], *, compress: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = np.frombuffer(json.dumps({"format": fmt, **meta}).encode(), dtype=np.uint8)
    (np.savez_compressed if compress else np.savez)(path, __meta__=header, **arrays)
    return path


def load_npz(path: str | Path, fmt: str, error: type[Exception], what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a file written by :func:`save_npz` with format ``fmt``; else ``error`` naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            arrays = {k: np.array(z[k]) for k in z.files if k != "__meta__"}
    except (OSError, ValueError, KeyError) as exc:
        raise error(f"{path}: not a twin {what} file ({exc})") from None
    if meta.get("format") != fmt:
        raise error(f"{path}: unknown {what} format {meta.get('format')!r} (expected {fmt})")
    return meta, arrays
