"""Optimizers over a bounded parameter box. ``evaluate(list of x) -> list of objective values``
evaluates a batch (in parallel where it can); every optimizer records its history."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Batch = Callable[[list[np.ndarray]], list[float]]


@dataclass
class History:
    x: list[np.ndarray] = field(default_factory=list)
    f: list[float] = field(default_factory=list)
    best_per_iteration: list[float] = field(default_factory=list)

    def add(self, xs: list[np.ndarray], fs: list[float]) -> None:
        self.x.extend(np.asarray(v, float) for v in xs)
        self.f.extend(float(v) for v in fs)

    @property
    def best(self) -> tuple[np.ndarray, float]:
        k = int(np.argmin(self.f))
        return self.x[k], self.f[k]


def spsa(evaluate: Batch, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, iterations: int, *,
         step: float = 0.05, perturbation: float = 0.05, seed: int = 0,
         callback: Callable[[int, float], None] | None = None) -> History:
    """Simultaneous-perturbation stochastic approximation (Spall 1998), on parameters scaled to [0, 1].

    Gains ``a_k = a / (k + 1 + A)^0.602``, ``c_k = c / (k + 1)^0.101`` with
    A = 10 % of the iterations; ``a`` is set from the first gradient so the
    first step moves the parameters by ``step`` of their range. Each iteration
    evaluates x ± c_k·Δ (one batch, in parallel) with Bernoulli ±1 Δ.
    """
    rng = np.random.default_rng(seed)
    span = hi - lo
    u = (np.asarray(x0, float) - lo) / span
    A = 0.1 * iterations
    a = None
    hist = History()
    f0 = evaluate([x0])[0]
    hist.add([x0], [f0])
    for k in range(iterations):
        ck = perturbation / (k + 1) ** 0.101
        delta = rng.choice([-1.0, 1.0], size=u.size)
        up, um = np.clip(u + ck * delta, 0, 1), np.clip(u - ck * delta, 0, 1)
        xp, xm = lo + up * span, lo + um * span
        fp, fm = evaluate([xp, xm])
        hist.add([xp, xm], [fp, fm])
        g = (fp - fm) / ((up - um) + 1e-12)
        if a is None:
            gmax = float(np.max(np.abs(g))) or 1.0
            a = step * (A + 1) ** 0.602 / gmax
        ak = a / (k + 1 + A) ** 0.602
        u = np.clip(u - ak * g, 0, 1)
        hist.best_per_iteration.append(hist.best[1])
        if callback:
            callback(k + 1, hist.best[1])
    x_last = lo + u * span
    hist.add([x_last], evaluate([x_last]))
    hist.best_per_iteration.append(hist.best[1])
    return hist


def nelder_mead(evaluate: Batch, x0, lo, hi, iterations: int, *, callback=None, **_) -> History:
    from scipy.optimize import minimize

    hist = History()
    it = [0]

    def f(x):
        v = evaluate([np.clip(x, lo, hi)])[0]
        hist.add([np.clip(x, lo, hi)], [v])
        return v

    def cb(_xk):
        it[0] += 1
        hist.best_per_iteration.append(hist.best[1])
        if callback:
            callback(it[0], hist.best[1])

    # a simplex spanning 15 % of each range: the default 5 % of x0 is lost in simulation noise
    x0 = np.asarray(x0, float)
    simplex = [x0]
    for k in range(x0.size):
        v = x0.copy()
        v[k] = v[k] + 0.15 * (hi[k] - lo[k]) if v[k] + 0.15 * (hi[k] - lo[k]) <= hi[k] else v[k] - 0.15 * (hi[k] - lo[k])
        simplex.append(v)
    minimize(f, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)), callback=cb,
             options={"maxiter": iterations, "xatol": 1e-3, "fatol": 1e-3, "initial_simplex": np.array(simplex)})
    return hist


def differential_evolution(evaluate: Batch, x0, lo, hi, iterations: int, *, seed: int = 0, callback=None,
                           **_) -> History:
    from scipy.optimize import differential_evolution as de

    hist = History()
    it = [0]

    def batch_map(func, xs):  # scipy hands us the population: evaluate it as one parallel batch
        xs = [np.asarray(x, float) for x in xs]
        vals = evaluate(xs)
        hist.add(xs, vals)
        return vals

    def cb(*_a, **_k):
        it[0] += 1
        hist.best_per_iteration.append(hist.best[1])
        if callback:
            callback(it[0], hist.best[1])

    de(lambda x: 0.0, list(zip(lo, hi)), maxiter=iterations, popsize=8, seed=seed, workers=batch_map,
       updating="deferred", polish=False, x0=np.asarray(x0, float), callback=cb)
    return hist


OPTIMIZERS = {"spsa": spsa, "nelder_mead": nelder_mead, "differential_evolution": differential_evolution}
