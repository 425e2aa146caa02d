#!/usr/bin/env python3
"""Fingerprints of native-engine runs, to prove that a kernel refactor leaves results bit-identical.

    python benchmarks/kernel_identity.py [NAME ...] [--json]

Runs a few small scenarios through :func:`twin.runner.run_scenario` and prints, for each, the SHA-256 of
its result Dataset (the raw bytes of every data variable and coordinate, sorted by name), of its trip
table (the variables along the ``trip`` dimension) and of its traffic (the Dataset without the variables along
the ``pollutant`` dimension: a change that moves the pollutant emissions only keeps it). ``tests/test_kernel_identity.py`` holds the hashes
recorded before the kernels were split into records and fails if any changes. The scenarios cover the
kernels' branches: the synthetic grid with signals, lane changes, loops, an incident and a lane closure;
Bologna Andrea Costa (real network, signal plans, buses with their stops, loops); Wildau (actuated signals).
The last line with ``--json`` is one JSON object ``{name: {"dataset": hash, "trips": hash, "traffic": hash}}``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

import numpy as np  # noqa: E402

from twin.config.loader import load_scenario  # noqa: E402
from twin.runner import run_scenario  # noqa: E402

BOLOGNA = SHARED / "bologna-acosta"
SCENARIOS = {
    # synthetic 6 × 6 grid: signals, two-lane arterials (lane changes), loops, an incident, a lane closure
    "grid": ("scenarios/default.yaml", {
        "demand": {"trips": 800, "end_s": 600},
        "run": {"duration_s": 900},
        "policies": [{"type": "incident", "edge": "n3_1-n3_2", "lanes": [0], "start_s": 200, "duration_s": 400},
                     {"type": "close_lane", "lanes": ["n2_3-n3_3_1"], "start_s": 100, "end_s": 700}],
        "sensors": {"loops": [{"id": "a", "lane": "n3_1-n3_2_0", "pos_m": 150.0},
                              {"id": "b", "lane": "n3_1-n3_2_1", "pos_m": -20.0},
                              {"id": "c", "lane": "n2_3-n3_3_0", "pos_m": 100.0}]},
    }),
    # Bologna Andrea Costa: real network and signal plans, buses halting at their stops, the real loops
    "bologna": ("scenarios/bologna.yaml", {
        "city": {"additional": [str(BOLOGNA / "acosta_tls.add.xml"), str(BOLOGNA / "acosta_bus_stops.add.xml")]},
        "demand": {"files": [str(BOLOGNA / f) for f in ("acosta_vtypes.add.xml", "acosta.rou.xml",
                                                        "acosta_busses.rou.xml", "acosta_bus_stops.add.xml")]},
        "sensors": {"loop_files": [str(BOLOGNA / "acosta_detectors.add.xml")]},
        "run": {"duration_s": 900},
    }),
    # Wildau: actuated signals on a real network
    "wildau": ("scenarios/wildau.yaml", {"demand": {"end_s": 54800}, "run": {"duration_s": 900}}),
}


def _bytes(values) -> bytes:
    a = np.asarray(values)
    if a.dtype.kind == "O":
        return "\x1f".join(map(str, a.ravel())).encode()
    return np.ascontiguousarray(a).tobytes()


def _digest(ds, names) -> str:
    h = hashlib.sha256()
    for name in sorted(names, key=str):
        h.update(str(name).encode() + b"\0" + str(ds[name].dtype).encode() + b"\0" + _bytes(ds[name].values))
    return h.hexdigest()


def fingerprint(name: str) -> dict[str, str]:
    """SHA-256 of scenario ``name``'s result Dataset, of its trip table and of its traffic (no pollutants)."""
    path, overrides = SCENARIOS[name]
    cfg = load_scenario(ROOT / path, overrides=overrides)
    ds = run_scenario(cfg).dataset
    names = list(ds.data_vars) + list(ds.coords)
    trips = [v for v in names if "trip" in ds[v].dims]
    traffic = [v for v in names if "pollutant" not in ds[v].dims]
    return {"dataset": _digest(ds, names), "trips": _digest(ds, trips), "traffic": _digest(ds, traffic)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SCENARIOS), help=f"of {', '.join(SCENARIOS)}")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {}
    for name in args.names:
        out[name] = fingerprint(name)
        print(f"{name}: dataset {out[name]['dataset']}  trips {out[name]['trips']}  traffic {out[name]['traffic']}",
              flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
