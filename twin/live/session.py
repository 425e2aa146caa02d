"""A live twin session: the scenario runs on simpy's real-time clock while sensor records arrive.

Records come from a recorded feed (replayed at their timestamps, ``speed`` times
faster than real time) or over HTTP (see :mod:`twin.live.server`). Each is
checked (:class:`twin.live.feed.FeedChecker`); accepted counts are kept per
loop and recording interval and join the results as ``observed_count``
``(time, sensor)`` beside the simulated ``sensor_count``. The state (clock,
vehicles, feed counters by reason, latest observed vs simulated counts) is
refreshed every recording interval.

With an ``assimilation`` section in the scenario, the twin corrects its demand
towards the counts every ``assimilation.interval_s`` (a simpy process on the
same clock; see :mod:`twin.live.assimilation`): the state then carries the
multipliers in force and the last update, and the results their history.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import simpy.rt

from twin.city.model import CityModel
from twin.config.models import ScenarioConfig
from twin.core.rng import RngStreams
from twin.core.simulation import Simulation
from twin.demand.trips import RoutedDemand
from twin.live.feed import FeedChecker
from twin.live.turn_feed import LiveTurnCounts, is_turn_record


class LiveTwin:
    def __init__(self, cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, out: str | Path, *,
                 speed: float = 1.0, fork_scheduler: str | None = None) -> None:
        from twin.city.sensors import resolve_loops
        from twin.engines.native import NativeEngine
        from twin.results import Recorder

        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.cfg, self.city, self.demand, self.out = cfg, city, demand, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        loops = resolve_loops(city, cfg.sensors)
        if not loops:
            raise ValueError("a live twin needs sensors: give the scenario induction loops (sensors: ...)")
        self.loop_ids = [lid for lid, _, _ in loops]
        lanes_of = {lid: 1 for lid in self.loop_ids}
        e = cfg.run.engine
        self.engine = NativeEngine(step_length=e.step_length_s, teleport_time=e.teleport_time_s, loops=loops)
        self.assimilator = None
        if cfg.assimilation is not None:
            self.demand = demand = self._setup_assimilation(cfg, city, demand, loops)
        self.engine.start(city, demand, seed=RngStreams(cfg.seed).seed_for("engine"))
        if self.assimilator is not None:
            for action in self.assimilator.initial_actions():
                self.engine.apply(action)
        self.env = simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)
        self.sim = Simulation(self.engine, cfg.run.duration_s, env=self.env)
        self.recorder = Recorder(city, self.engine)
        self.interval = cfg.run.record_interval_s
        self.sim.add_reader(self.interval, self._tick)
        self.checker = FeedChecker({k: {"lanes": v} for k, v in lanes_of.items()}, self.out / "dead_letters.jsonl",
                                   interval_s=self.interval)
        self.turns = LiveTurnCounts(city, self.out / "dead_letters.jsonl", self.interval)  # turning-count records
        self.inbox: queue.Queue = queue.Queue()  # records from other threads (HTTP)
        self._lock = threading.Lock()
        self._observed: dict[tuple[int, int], float] = {}  # (interval index, loop) -> count
        self._state: dict[str, Any] = {"time_s": 0.0, "status": "running"}
        self.subscribers: list[queue.Queue] = []
        from twin.live.fork import ForkDesk

        self.forks = ForkDesk(cfg, city, self.out, scheduler=fork_scheduler)  # what-if branches from now (POST /fork)
        self.env.process(self._drain())
        if self.assimilator is not None:
            self._assim_counts = np.zeros(len(self.loop_ids))
            self.sim.add_reader(cfg.assimilation.interval_s, self._assimilate)
            if cfg.assimilation.method == "kalman+inflow":
                self._nudge_counts = np.zeros(len(self.loop_ids))
                self.sim.add_reader(cfg.assimilation.inflow_interval_s, self._nudge)
        self.monitor = None
        if cfg.monitoring is not None:
            from twin.live.alerts import StopMonitor

            self.monitor = StopMonitor(city, [v.name for v in demand.trips.vtypes], cfg.monitoring, demand.trips.ids)
            self.sim.add_reader(cfg.monitoring.probe_interval_s, self._probe)

    # -------------------------------------------------------- assimilation
    def _setup_assimilation(self, cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, loops) -> RoutedDemand:
        from twin.config.loader import ConfigError
        from twin.live.assimilation import DemandAssimilator, expand_reserve, route_incidence, trip_groups

        a, rec = cfg.assimilation, cfg.run.record_interval_s
        k = a.interval_s / rec
        if abs(k - round(k)) > 1e-9 or round(k) < 1:
            raise ConfigError(f"assimilation.interval_s ({a.interval_s:g}) must be a multiple of "
                              f"run.record_interval_s ({rec:g})")
        if a.interval_s > cfg.run.duration_s:
            raise ConfigError(f"assimilation.interval_s ({a.interval_s:g}) exceeds run.duration_s "
                              f"({cfg.run.duration_s:g})")
        ki = a.inflow_interval_s / rec
        if a.method == "kalman+inflow" and (abs(ki - round(ki)) > 1e-9 or round(ki) < 1):
            raise ConfigError(f"assimilation.inflow_interval_s ({a.inflow_interval_s:g}) must be a multiple of "
                              f"run.record_interval_s ({rec:g})")
        rng = RngStreams(cfg.seed).generator("assimilation")
        full, rank, _ = expand_reserve(demand, a.reserve_factor, rng, jitter_s=a.jitter_s,
                                       min_depart_s=cfg.run.engine.step_length_s)
        groups, names = trip_groups(city, full, a.groups)
        steering = None
        if a.lane_steering:
            from twin.live.lane_steering import LaneShareSteering

            steering = LaneShareSteering(city, loops, gain=a.lane_steering_gain, memory=a.lane_steering_memory,
                                         deadband=a.lane_steering_deadband, initial=a.initial_lane_steering)
        self.assimilator = DemandAssimilator(a, full, rank, groups, names, route_incidence(city, full, loops),
                                             steering)
        return full

    def _window_observed(self, t: float, w: float) -> np.ndarray:
        """Observed count of each loop over the ``w`` seconds to ``t`` (NaN if a record is missing)."""
        k1 = int(round(t / self.interval))
        ks = range(k1 - int(round(w / self.interval)) + 1, k1 + 1)
        with self._lock:
            return np.array([sum(self._observed[(k, j)] for k in ks) if all((k, j) in self._observed for k in ks)
                             else np.nan for j in range(len(self.loop_ids))])

    def _nudge(self, t: float) -> None:
        count = self.engine.observe().loop_count
        s = count - self._nudge_counts
        self._nudge_counts = count
        y = self._window_observed(t, self.cfg.assimilation.inflow_interval_s)
        for action in self.assimilator.nudge(t, y, s, self.engine.trip_table()):
            self.engine.apply(action)

    def _assimilate(self, t: float) -> None:
        w = self.cfg.assimilation.interval_s
        count = self.engine.observe().loop_count
        s = count - self._assim_counts
        self._assim_counts = count
        y = self._window_observed(t, w)
        for action in self.assimilator.update(t, y, s, self.engine.trip_table(),
                                              self.engine.observe(vehicles=True).vehicles):
            self.engine.apply(action)
        with self._lock:
            self._state = dict(self._state, assimilation=self.assimilator.state())

    # ------------------------------------------------------------- records
    def ingest(self, where: str, raw: dict) -> bool:
        """Check one record and keep it if accepted (thread-safe: the HTTP server calls it too)."""
        with self._lock:
            if is_turn_record(raw):
                return self.turns.ingest(where, raw)
            rec = self.checker.check(where, raw)
            if rec is None:
                return False
            k = int(np.ceil(rec.time / self.interval - 1e-9))
            key = (max(k, 1), self.loop_ids.index(rec.sensor))
            self._observed[key] = self._observed.get(key, 0.0) + rec.count
            return True

    def feed_process(self, records: Iterable[tuple[str, dict]]):
        """A simpy process replaying ``(where, record)`` pairs at their timestamps."""
        for where, raw in records:
            t = raw.get("time")
            try:
                t = float(t)
            except (TypeError, ValueError):
                t = self.env.now  # the checker rejects it with its reason
            if t > self.env.now:
                yield self.env.timeout(min(t, self.sim.duration) - self.env.now)
            self.ingest(where, raw)

    def _drain(self):
        while True:
            while not self.inbox.empty():
                where, raw = self.inbox.get_nowait()
                self.ingest(where, raw)
            self.forks.service(self.engine, self.engine.demand)
            yield self.env.timeout(self.engine.step_length)

    # --------------------------------------------------------------- state
    def _probe(self, t: float) -> None:
        new = self.monitor.update(t, self.engine.observe(vehicles=True).vehicles)
        if new:
            with self._lock:
                self._state = dict(self._state, alerts=list(self.monitor.alerts))
            for q in list(self.subscribers):
                q.put({"alerts": new, "time_s": t})

    def _tick(self, t: float) -> None:
        snap = self.recorder.sample(t)
        k = int(round(t / self.interval))
        snaps = self.recorder.snapshots
        prev = snaps[-2] if len(snaps) > 1 else snap
        sim = (snap.loop_count - prev.loop_count) if snap.loop_count is not None else np.zeros(0)
        with self._lock:
            obs = {self.loop_ids[j]: c for (i, j), c in self._observed.items() if i == k}
            feed = self.checker.state()
            turns = self.turns.state(k, (snap.turn_entered - prev.turn_entered)
                                     if snap.turn_entered is not None else None)
        state = {"time_s": t, "status": "running", "running": snap.running, "waiting": snap.waiting,
                 "arrived": snap.arrived, "teleports": snap.teleports, "feed": feed,
                 "interval_s": self.interval, "alerts": list(self.monitor.alerts) if self.monitor else [],
                 "sensors": {lid: {"simulated": float(sim[j]), "observed": obs.get(lid)}
                             for j, lid in enumerate(self.loop_ids)}, "turns": turns}
        if self.assimilator is not None:
            state["assimilation"] = self.assimilator.state()
        with self._lock:
            self._state = state
        for q in list(self.subscribers):
            q.put(state)

    def state(self) -> dict[str, Any]:
        with self._lock:
            st = json.loads(json.dumps(self._state))
        st["forks"] = self.forks.status()
        return st

    # ----------------------------------------------------------------- run
    def run(self, records: Iterable[tuple[str, dict]] | None = None):
        from twin.runner import RunResult, package_versions
        from twin.results import compute_kpis

        if records is not None:
            self.env.process(self.feed_process(records))
        wall0 = time.perf_counter()
        self.sim.run()
        self.engine.close()
        ds = self.recorder.to_dataset(self.demand, self.engine.trip_table(),
                                      {"scenario": self.cfg.name, "seed": self.cfg.seed, "engine": "native",
                                       "live": 1, "versions": package_versions()})
        obs = np.full((ds.sizes["time"], len(self.loop_ids)), np.nan)
        times = ds["time"].values
        for (i, j), c in self._observed.items():
            ti = np.flatnonzero(np.isclose(times, i * self.interval))
            if ti.size:
                obs[ti[0], j] = c
        ds["observed_count"] = (("time", "sensor"), obs, {"units": "veh", "long_name": "accepted feed counts"})
        ds = self.turns.add_to(ds)
        if self.monitor is not None:
            ds = self.monitor.add_to(ds)
        if self.assimilator is not None:
            ds = ds.assign(self.assimilator.to_dataset_vars())
        kpis = compute_kpis(ds)
        feed = self.checker.state()
        self.checker.close()
        feed["turns"] = self.turns.close()
        self.forks.join()
        manifest_forks = self.forks.status()
        with self._lock:
            self._state = dict(self._state, status="finished", feed=feed)
        manifest = {"scenario": self.cfg.name, "config": self.cfg.model_dump(mode="json"), "live": True,
                    "feed": feed, "forks": manifest_forks, "wall_time_s": round(time.perf_counter() - wall0, 3),
                    "vehicle_updates": int(ds.attrs["vehicle_updates"])}
        if self.assimilator is not None:
            manifest["assimilation"] = self.assimilator.state()
        result = RunResult(ds, kpis, manifest, None, self.city)
        result.save(self.out)
        (self.out / "state.json").write_text(json.dumps(self.state(), indent=2))
        return result
