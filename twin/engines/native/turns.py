"""Turning movements counted in the native engine (SUMO's edgeRelation counts, simulated).

A movement is a pair of consecutive edges (from, to) of the city's edge graph,
indexed as :attr:`twin.city.model.CityModel.edge_successors` lists them (the
targets array of that CSR). A vehicle makes the movement when its route
position passes from ``from`` to ``to``: when it crosses the stop line of
``from`` onto the junction path towards ``to`` (the moment the native engine
counts it as entering ``to``). A vehicle that passes several edges in one step
(short edges, a teleport) makes each of their movements.
"""
from __future__ import annotations

import numpy as np

from twin.jit import kernel


@kernel(refcounts=False)
def count_turns(order: np.ndarray, n: int, ridx: np.ndarray, prev_ridx: np.ndarray, route_off: np.ndarray,
                route_edges: np.ndarray, succ_offsets: np.ndarray, succ_targets: np.ndarray,
                turn_entered: np.ndarray) -> None:
    """Add the movements the vehicles ``order[:n]`` made since the last call to ``turn_entered`` [veh]
    (cumulative, one per movement); ``prev_ridx`` (each vehicle's route position at the last call) is updated.

    ``order[:n]`` are the vehicles that ran in the step (only they move along their routes; the engine
    resets ``prev_ridx`` with the route position when it gives a vehicle a new route). A route position that
    went back (a new route from the current edge) counts nothing.
    """
    for w in range(n):
        v = order[w]
        r = ridx[v]
        p = prev_ridx[v]
        if r > p:
            off = route_off[v]
            for k in range(p, r):
                a = route_edges[off + k]
                b = route_edges[off + k + 1]
                for j in range(succ_offsets[a], succ_offsets[a + 1]):
                    if succ_targets[j] == b:
                        turn_entered[j] += 1.0
                        break
        prev_ridx[v] = r


def movement_index(city) -> dict[tuple[int, int], int]:
    """(from edge index, to edge index) -> movement index, for every pair of connected edges."""
    offsets, targets = city.edge_successors
    src = np.repeat(np.arange(city.n_edges), np.diff(offsets))
    return {(int(a), int(b)): k for k, (a, b) in enumerate(zip(src, targets))}


__all__ = ["count_turns", "movement_index"]
