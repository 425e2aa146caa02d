"""Random-number streams: one ``numpy.random.Generator`` per named component, all from one seed.

A component's stream depends only on the seed and its name, not on which
other components exist or in which order they ask, so adding a component
never changes another's random numbers, and replications (different seeds)
are independent.
"""
from __future__ import annotations

import zlib

import numpy as np


class RngStreams:
    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)

    def key(self, name: str) -> int:
        return zlib.crc32(name.encode("utf-8"))

    def generator(self, name: str) -> np.random.Generator:
        """The stream for component ``name`` (a new Generator at its start each call)."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.key(name),)))

    def seed_for(self, name: str) -> int:
        """A 63-bit integer seed for components that take an int (e.g. an engine)."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(self.key(name),))
        return int(ss.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1, 2**31], dtype=np.uint64))
