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

SIGTERM or SIGINT (when :meth:`LiveTwin.run` runs in the main thread) stops
the twin at its next step; the results so far are saved, marked partial
(``partial`` in the Dataset's attributes and the manifest).
"""
from __future__ import annotations

import json
import math
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
from twin.demand.trips import RoutedDemand
from twin.core.interrupt import Interrupted, stop_on_signals
from twin.live.feed import BadLine, FeedChecker
from twin.live.turn_feed import LiveTurnCounts, is_turn_record


class LiveTwin:
    def __init__(self, cfg: ScenarioConfig, city: CityModel, demand: RoutedDemand, out: str | Path, *,
                 speed: float = 1.0, fork_scheduler: str | None = None, future_s: float = 60.0,
                 fork_limits: dict | None = None) -> None:
        """The scenario assembled as every run is (:class:`twin.runner.Twin`: its engine, policies,
        components, monitoring and recorder) on simpy's real-time clock, plus the feeds, the state for
        the API and, with an ``assimilation`` section, the demand correction."""
        from twin.city.sensors import resolve_loops
        from twin.config.loader import ConfigError
        from twin.runner import Twin, build_components

        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.cfg, self.city, self.demand, self.out = cfg, city, demand, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        loops = resolve_loops(city, cfg.sensors)
        if not loops:
            raise ValueError("a live twin needs sensors: give the scenario induction loops (sensors: ...)")
        self.loop_ids = [lid for lid, _, _ in loops]
        lanes_of = {lid: 1 for lid in self.loop_ids}
        components = build_components(cfg, city)
        self.assimilator = None
        if cfg.assimilation is not None:
            adding = [c.name for c in components if c.name in ("population", "epidemic", "events")]
            if adding:  # their trips join the demand after the reserve is drawn: the filter would not see them
                raise ConfigError(f"a live twin with assimilation cannot run {', '.join(adding)} yet "
                                  "(their trips would escape the demand correction)")
            self.demand = demand = self._setup_assimilation(cfg, city, demand, loops)
        self.env = simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)
        self.twin = Twin(cfg, city=city, demand=demand, components=components, env=self.env)
        self.engine, self.sim, self.recorder = self.twin.engine, self.twin.sim, self.twin.recorder
        self.demand = self.twin.demand
        if self.assimilator is not None:
            for action in self.assimilator.initial_actions():
                self.engine.apply(action)
        self.interval = cfg.run.record_interval_s
        self.sim.add_reader(self.interval, self._tick)
        self.checker = FeedChecker({k: {"lanes": v} for k, v in lanes_of.items()}, self.out / "dead_letters.jsonl",
                                   interval_s=self.interval, clock=lambda: self.env.now, future_s=future_s)
        self.stop_signal: int | None = None  # set by request_stop (a signal handler)
        self.turns = LiveTurnCounts(city, self.out / "dead_letters.jsonl", self.interval)  # turning-count records
        self.air = None  # air-quality station and weather readings, live concentrations (twin.air.live)
        air = next((c for c in self.twin.components if c.name == "air"), None)
        if air is not None:
            from twin.air.live import LiveAir

            self.air = LiveAir(air, self.out / "dead_letters.jsonl", clock=lambda: self.env.now, future_s=future_s)
        self.inbox: queue.Queue = queue.Queue()  # records from other threads (HTTP)
        self._lock = threading.Lock()
        self._observed: dict[tuple[int, int], float] = {}  # (interval index, loop) -> count
        self._state: dict[str, Any] = {"time_s": 0.0, "status": "running"}
        self.subscribers: list[queue.Queue] = []
        self._vehicles_wanted = -1e9  # time.monotonic() of the last request for vehicle positions
        self.vehicles: dict | None = None  # their latest packed frame (twin.web.mapdata.vehicle_frame)
        from twin.live.fork import ForkDesk

        # what-if branches from now (POST /fork); fork_limits: ForkDesk's max_horizon_s, max_running, ...
        self.forks = ForkDesk(cfg, city, self.out, scheduler=fork_scheduler, **(fork_limits or {}))
        from twin.engines.base import Checkpoint

        if Checkpoint not in self.engine.capabilities:
            self.forks.unsupported = (f"engine {self.engine.name!r} has no checkpoints, so this twin cannot fork "
                                      "(forks need an engine with the Checkpoint capability)")
        self.env.process(self._drain())
        if self.assimilator is not None:
            self._assim_counts = np.zeros(len(self.loop_ids))
            self.sim.add_reader(cfg.assimilation.interval_s, self._assimilate)
            if cfg.assimilation.method == "kalman+inflow":
                self._nudge_counts = np.zeros(len(self.loop_ids))
                self.sim.add_reader(cfg.assimilation.inflow_interval_s, self._nudge)
        self.monitor = self.twin.monitor  # updated by the Twin's own reader; here: tell the stream
        self._alerts_told = 0
        if self.monitor is not None:
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
    def ingest(self, where: str, raw: dict | BadLine, reason: str | None = None) -> bool:
        """Check one record and keep it if accepted (thread-safe: the HTTP server calls it too).

        ``reason`` rejects it as it is (twin's reason: e.g. a request body that is not JSON).
        """
        from twin.air.live import is_air_record

        with self._lock:
            if reason is None and is_turn_record(raw):
                return self.turns.ingest(where, raw)
            if reason is None and is_air_record(raw):
                if self.air is None:  # the loops' books take it, with the reason
                    reason = "no air section: this twin takes no air-quality station or weather records"
                else:
                    return self.air.ingest(where, raw)
            rec = self.checker.check(where, raw, reason)
            if rec is None:
                return False
            k = int(np.ceil(rec.time / self.interval - 1e-9))
            key = (max(k, 1), self.loop_ids.index(rec.sensor))
            self._observed[key] = self._observed.get(key, 0.0) + rec.count
            return True

    def feed_process(self, records: Iterable[tuple[str, dict]]):
        """A simpy process replaying ``(where, record)`` pairs at their timestamps.

        A record the checker would reject as in the future even at the end of the run is
        checked at once, so it does not hold back the records after it.
        """
        for where, raw in records:
            try:
                t = float(raw.get("time"))
            except (AttributeError, TypeError, ValueError, OverflowError):
                t = self.env.now  # the checker rejects it with its reason
            if not math.isfinite(t) or t > self.sim.duration + self.checker.future:
                t = self.env.now
            if t > self.env.now:
                yield self.env.timeout(min(t, self.sim.duration) - self.env.now)
            self.ingest(where, raw)

    def request_stop(self, signum: int) -> None:
        """Stop at the next step and save what was simulated (safe to call from a signal handler)."""
        if self.stop_signal is None:
            self.stop_signal = signum

    def _drain(self):
        while True:
            if self.stop_signal is not None:
                raise Interrupted(self.stop_signal)
            while not self.inbox.empty():
                where, raw = self.inbox.get_nowait()
                self.ingest(where, raw)
            self.forks.service(self.engine, self.engine.demand)
            yield self.env.timeout(self.engine.step_length)

    # --------------------------------------------------------------- state
    def _probe(self, t: float) -> None:
        new = list(self.monitor.alerts[self._alerts_told:])  # raised by the Twin's probe at this instant
        self._alerts_told += len(new)
        if new:
            with self._lock:
                self._state = dict(self._state, alerts=list(self.monitor.alerts))
            for q in list(self.subscribers):
                q.put({"alerts": new, "time_s": t})

    def _tick(self, t: float) -> None:
        last = self.recorder.last  # the Twin's recorder sampled at this instant (its reader comes first)
        snap = last if abs(last.time - t) < 1e-9 else self.recorder.sample(t)
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
        if self.air is not None:
            self._air_tick(t, prev, snap)
            state["air"] = self.air.state()
        for comp in self.twin.components:  # read-outs of the components that have one (epidemic, modes, ...)
            if hasattr(comp, "live"):
                state.update(comp.live(t))
        state["map"] = self._map_frame(prev, snap)
        with self._lock:
            self._state = state
        for q in list(self.subscribers):
            q.put(state)

    def _air_tick(self, t: float, prev, snap) -> None:
        """The interval's concentrations from its road emissions (the engine's cumulative per-edge grams)."""
        if snap.edge_emission is None or snap.time <= prev.time:
            return
        from twin.demand.emissions import POLLUTANTS
        from twin.web.mapdata import interval_speed_density

        cols = [POLLUTANTS.index(p) for p in self.air.comp.emitted]
        emission = (snap.edge_emission - prev.edge_emission)[:, cols]
        speed = flow = None
        if self.air.comp.canyons is not None:
            speed, _ = interval_speed_density(self.city, prev, snap)
            flow = (snap.edge_entered - prev.edge_entered) / (snap.time - prev.time)
        self.air.tick(t, snap.time - prev.time, emission, speed, flow)

    def _map_frame(self, prev, snap) -> dict:
        """Per-edge speed and density over the last interval, packed for maps (see :mod:`twin.web.mapdata`);
        vehicle positions too while a client asked for them in the last 30 s (:meth:`want_vehicles`)."""
        from twin.web.mapdata import edge_frame, interval_speed_density, vehicle_frame

        frame = edge_frame(self.city, *interval_speed_density(self.city, prev, snap))
        if time.monotonic() - self._vehicles_wanted < 30.0:
            v = self.engine.observe(vehicles=True).vehicles
            self.vehicles = vehicle_frame(self.city, v.x, v.y, v.speed) | {"time_s": snap.time}
        return frame

    def want_vehicles(self) -> dict | None:
        """Vehicle positions from now on, at each recording interval; the latest ones (None before)."""
        self._vehicles_wanted = time.monotonic()
        return self.vehicles

    def state(self) -> dict[str, Any]:
        with self._lock:
            st = json.loads(json.dumps(self._state))
            st["feed"] = self.checker.state()  # the books as they are now, not at the last tick
            if self.air is not None and "air" in st:
                st["air"]["feed"] = self.air.checker.state()
        st["forks"] = self.forks.status()
        return st

    # ----------------------------------------------------------------- run
    def run(self, records: Iterable[tuple[str, dict]] | None = None):
        """Run to the end (or to a SIGTERM/SIGINT) and save the results in ``out``; the RunResult."""
        if records is not None:
            self.env.process(self.feed_process(records))
        with stop_on_signals() as stop:  # a signal stops the clock at its next step; the results are saved
            result = self._run()
            if stop.signum and self.stop_signal is None:
                self.stop_signal = stop.signum
            return result

    def _run(self):
        result = self.twin.run()  # an engine failure or an interrupt ends it early, marked partial
        partial = result.partial
        ds = result.dataset
        ds.attrs["live"] = 1
        if result.interrupted:
            ds.attrs["interrupted_by"] = result.interrupted
        obs = np.full((ds.sizes["time"], len(self.loop_ids)), np.nan)
        times = ds["time"].values
        for (i, j), c in self._observed.items():
            ti = np.flatnonzero(np.isclose(times, i * self.interval))
            if ti.size:
                obs[ti[0], j] = c
        loops = np.isin(ds["sensor"].values, self.loop_ids)  # (air stations may share the sensor dimension)
        full = np.full((ds.sizes["time"], ds.sizes["sensor"]), np.nan)
        full[:, np.flatnonzero(loops)] = obs[:, [self.loop_ids.index(x) for x in ds["sensor"].values[loops]]]
        ds["observed_count"] = (("time", "sensor"), full, {"units": "veh", "long_name": "accepted feed counts"})
        ds = self.turns.add_to(ds)
        if self.assimilator is not None:
            ds = ds.assign(self.assimilator.to_dataset_vars())
        feed = self.checker.state()
        self.checker.close()
        feed["turns"] = self.turns.close()
        if self.air is not None:
            feed["air"] = self.air.close()
        # an interrupted twin does not wait for its forks, nor one interrupted while it waits
        self.forks.close(cancel=partial, stop=lambda: self.stop_signal is not None)
        manifest_forks = self.forks.status()
        with self._lock:
            self._state = dict(self._state, status="finished", feed=feed)
        manifest = dict(result.manifest, live=True, feed=feed, forks=manifest_forks)
        if self.assimilator is not None:
            manifest["assimilation"] = self.assimilator.state()
        if result.interrupted:
            manifest.update(interrupted_by=result.interrupted, interrupted_at_s=float(ds.attrs["end_time_s"]))
        result.dataset, result.manifest = ds, manifest
        result.save(self.out)
        final = self.state()
        (self.out / "state.json").write_text(json.dumps(final, indent=2))
        for q in list(self.subscribers):  # /stream clients end on the finished state
            q.put(final)
        return result
