"""Generate twin's emission tables (twin/data/emissions/hbefa4.npz) from SUMO's own HBEFA4 model.

SUMO implements HBEFA 4.2 as one function per emission class and pollutant
(Models/Emissions/HBEFA4-based in SUMO's documentation), in mg/s (electricity
in Wh/s)::

    E(v, a) = c0 + c1·v + c2·a + c3·v² + c4·v³ + c5·a·v + c6·a·v²     [v in m/s, a in m/s²]

clipped at 0, and 0 while a moving vehicle decelerates harder than its
coasting deceleration a_coast(v) (engine braking: no fuel is injected).

This script asks SUMO's ``emissionsMap`` for every HBEFA4 class (no other
source): it tabulates each class on a grid of accelerating states and solves
for c0…c6 by least squares (the fit is exact: the residual is checked against
emissionsMap's printed precision), then tabulates the coasting limit
a_coast(v) at v = 0.6, 0.7, …, 2.4 and 2.5, 3.5, …, 50.5 m/s, to 0.01 m/s²
(midway between the largest a at which emissionsMap gives 0 where the
polynomial is positive and the next). SUMO applies the cut above 0.5 m/s.
Slope is 0 (twin's networks are flat).

Run from the repository root (833 classes: 15-40 min, depending on the machine)::

    python tools/make_emission_tables.py [--emissions-map PATH] [--only PREFIX]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

POLLUTANTS = ("CO2", "CO", "HC", "NOx", "PMx", "fuel")  # emissionsMap's names (electricity is not kept)
V_FIT = np.arange(0.0, 40.01, 2.0)
A_FIT = np.arange(0.0, 2.01, 0.5)
# coasting limit at v = 0.6, 0.7, ..., 2.4 and 2.5, 3.5, ..., 50.5 m/s (index: see twin.emissions.model)
V_COAST_SEGMENTS = ((0.6, 2.4, 0.1), (2.5, 50.5, 1.0))
V_COAST = np.concatenate([np.round(np.arange(a, b + 1e-9, s), 6) for a, b, s in V_COAST_SEGMENTS])
A_COAST = (-1.5, 0.001, 0.01)


def emissions_map(exe: str, cls: str, v: tuple[float, float, float], a: tuple[float, float, float],
                  out: Path) -> dict[str, np.ndarray]:
    """emissionsMap's table for one class: {pollutant: array (n_v, n_a)} [mg/s; Wh/s for electricity]."""
    subprocess.run([exe, "-e", cls, "--v-min", f"{v[0]}", "--v-max", f"{v[1]}", "--v-step", f"{v[2]}",
                    "--a-min", f"{a[0]}", "--a-max", f"{a[1]}", "--a-step", f"{a[2]}", "--s-min", "0", "--s-max", "0",
                    "--s-step", "1", "--precision", "8", "-o", str(out)], check=True, capture_output=True)
    rows = [ln.split(";") for ln in out.read_text().splitlines() if ln.strip()]
    vv = np.array([float(r[0]) for r in rows])
    aa = np.array([float(r[1]) for r in rows])
    nv = np.unique(np.round(vv, 6)).size
    na = np.unique(np.round(aa, 6)).size
    table = {}
    for p in POLLUTANTS:
        sel = [float(r[4]) for r in rows if r[3] == p]
        table[p] = np.array(sel).reshape(nv, na)
    table["_v"] = np.unique(np.round(vv, 6))
    table["_a"] = np.unique(np.round(aa, 6))
    return table


def features(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(v), v, a, v * v, v ** 3, a * v, a * v * v], axis=-1)


def fit_class(exe: str, cls: str, tmp: Path) -> tuple[np.ndarray, np.ndarray, float]:
    t = emissions_map(exe, cls, (V_FIT[0], V_FIT[-1], 2.0), (A_FIT[0], A_FIT[-1], 0.5), tmp / "fit.csv")
    vg, ag = np.meshgrid(t["_v"], t["_a"], indexing="ij")
    X = features(vg.ravel(), ag.ravel())
    coef = np.zeros((len(POLLUTANTS), 7))
    worst = 0.0
    for k, p in enumerate(POLLUTANTS):  # (emissionsMap prints 6 significant digits: the misfit is relative to
        y = t[p].ravel()                 # each pollutant's largest value)
        c, *_ = np.linalg.lstsq(X, y, rcond=None)
        c[np.abs(c) < 1e-12] = 0.0
        coef[k] = c
        if np.any(y < 0):
            raise SystemExit(f"{cls}: emissionsMap gave a negative {p}; the tables assume E >= 0")
        pos = np.maximum(X @ c, 0.0)
        worst = max(worst, float(np.max(np.abs(pos - y))) / max(float(np.abs(y).max()), 1e-9))
    coast = []
    for seg in V_COAST_SEGMENTS:
        c2 = emissions_map(exe, cls, (seg[0], seg[1] + 0.25 * seg[2], seg[2]), A_COAST, tmp / "coast.csv")
        vg, ag = np.meshgrid(c2["_v"], c2["_a"], indexing="ij")
        poly = np.einsum("vaf,pf->pva", features(vg, ag), coef)
        cut = np.zeros(vg.shape, dtype=bool)
        for k, p in enumerate(POLLUTANTS):
            cut |= (poly[k] > 1e-3) & (c2[p] == 0.0)
        for i in range(vg.shape[0]):
            coast.append(c2["_a"][np.flatnonzero(cut[i]).max()] + 0.5 * A_COAST[2] if cut[i].any() else -np.inf)
    coast = np.array(coast)
    if coast.size != V_COAST.size:
        raise SystemExit(f"{cls}: emissionsMap's speed grid is not the expected one")
    if np.any(np.isfinite(coast) & (coast < A_COAST[0] + 0.01)):
        raise SystemExit(f"{cls}: the coasting limit is below the tabulated range")
    return coef, coast, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emissions-map", default=str(Path(sys.executable).parent / "emissionsMap"))
    ap.add_argument("--only", default="", help="only classes starting with this (for a quick look)")
    ap.add_argument("--out", default="twin/data/emissions/hbefa4.npz")
    args = ap.parse_args()
    exe = args.emissions_map
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for sub in ("Zero", "HBEFA2", "HBEFA3", "HBEFA4", "PHEMlight", "PHEMlight5", "MMPEVEM", "Energy"):
            (tmp / "all" / sub).mkdir(parents=True)
        subprocess.run([exe, "-i", "--v-min", "0", "--v-max", "0", "--v-step", "1", "--a-min", "0", "--a-max", "0",
                        "--a-step", "1", "--s-min", "0", "--s-max", "0", "--s-step", "1", "-o", str(tmp / "all") + "/"],
                       check=True, capture_output=True)
        classes = sorted(p.stem for p in (tmp / "all" / "HBEFA4").glob("*.csv") if p.stem.startswith(args.only))
        coefs, coasts, worst = [], [], 0.0
        for k, c in enumerate(classes):
            coef, coast, w = fit_class(exe, f"HBEFA4/{c}", tmp)
            coefs.append(coef)
            coasts.append(coast)
            worst = max(worst, w)
            if k % 50 == 0:
                print(f"{k}/{len(classes)} {c}: worst relative misfit so far {worst:.2e}", flush=True)
    if worst > 1e-4:
        raise SystemExit(f"the polynomial does not reproduce emissionsMap (relative misfit {worst:.2e})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, classes=np.array([f"HBEFA4/{c}" for c in classes]), pollutants=np.array(POLLUTANTS),
                        coef=np.array(coefs), coast_v=V_COAST, coast_a=np.array(coasts),
                        source=np.array(f"{version}: emissionsMap, tools/make_emission_tables.py"))
    print(f"{len(classes)} classes -> {out} (worst relative misfit {worst:.2e}; {version})")


if __name__ == "__main__":
    main()
