"""The SUMO engine: Eclipse SUMO behind twin's Engine protocol, through libsumo (default) or TraCI.

The city and demand go to SUMO as files: a city imported from SUMO runs on its
original ``.net.xml`` (with the signal programs of its additional files); any
other city is exported (:mod:`twin.engines.sumo.export`). The demand is always
written by twin (same trips, routes and vehicle types, car-following model
IDM), so both engines simulate the same vehicles.

Measurements: SUMO writes edge data (``edgeData``) every ``measure_interval``
seconds; :meth:`SumoEngine.observe` adds up the intervals written so far
(SUMO flushes each interval when it ends), so cumulative edge values are
exact at multiples of the interval. ``entered`` counts vehicles that entered
or departed on the edge (as twin's native engine), ``veh_time`` is SUMO's
``sampledSeconds``, distance ``speed × sampledSeconds``, halting time SUMO's
``waitingTime``; queue length is not measured by SUMO (NaN). Pollutants per
edge (an ``edgeData`` emissions output) and per trip (tripinfo) are SUMO's own
emission model, each vehicle with the emission class twin gives it
(:func:`twin.demand.emissions.vehicle_classes`, written into its vType):
CO2, CO, HC, NOx, PMx and fuel as SUMO reports them, PM10 = SUMO's PMx (HBEFA4's
PMx is PM10, exhaust and non-exhaust), PM2.5 not reported (NaN). Turning movements come from
SUMO's vehicle routes with exit times, complete after :meth:`SumoEngine.close`
(:mod:`twin.engines.sumo.turns`).
"""
from __future__ import annotations

import itertools
import logging
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from twin.city.model import CityModel
from twin.config.base import EngineConfig
from twin.demand.emissions import MODEL_POLLUTANTS, PM10, PM25, PMX, POLLUTANTS, vehicle_classes
from twin.demand.trips import RoutedDemand
from twin.engines.base import (
    Action, AddVehicle, Checkpoint, EngineError, Rerouting, SetLaneAccess, SetSignalProgram, SetSpeedLimit, Snapshot, TripTable,
    TurnCountsAfterRun, UnsupportedActionError, VehicleArrays,
)
from twin.engines.sumo.export import export_network, export_routes, find_sumo_binary
from twin.engines.sumo.turns import VEHROUTE_OPTIONS, cumulative_turns, turn_events

log = logging.getLogger(__name__)
_labels = itertools.count()
_INTERVAL = re.compile(rb"<interval\b[^>]*?(?:/>|>.*?</interval>)", re.S)  # empty ones close themselves
_TRIPINFO = re.compile(rb"<tripinfo\b[^>]*?(?:/>|>.*?</tripinfo>)", re.S)


def rerouting_options(rerouting: dict | None) -> list[str]:
    """SUMO's options for ``run.rerouting`` (a :class:`~twin.config.models.ReroutingConfig` as a dict): its
    ``--device.rerouting.*`` options, the rest at SUMO's defaults (``pre-period`` 60 s: equipped vehicles are
    routed at their insertion too); none when off."""
    if not rerouting or rerouting["probability"] <= 0:
        return []
    if rerouting.get("min_delay_s", 0.0) > 0:
        raise ValueError("rerouting.min_delay_s is the native engine's (SUMO's device has no such gate): leave it 0 "
                         "with the SUMO engine")
    return ["--device.rerouting.probability", f"{rerouting['probability']:g}",
            "--device.rerouting.period", f"{rerouting['period_s']:g}",
            "--device.rerouting.adaptation-interval", f"{rerouting['adaptation_interval_s']:g}",
            *(["--device.rerouting.adaptation-steps", str(int(rerouting["adaptation_steps"]))]
              if rerouting["adaptation_steps"] else
              ["--device.rerouting.adaptation-weight", f"{rerouting['adaptation_weight']:g}"])]


class SumoEngineConfig(EngineConfig):
    """``run.engine`` for Eclipse SUMO: ``api`` is libsumo (in-process, fast) or traci (a SUMO process)."""

    type: Literal["sumo"] = "sumo"
    api: Literal["libsumo", "traci"] = "libsumo"


class SumoEngine:
    """Eclipse SUMO as a twin engine.

    Parameters
    ----------
    step_length : float  [s]
    teleport_time : float  [s]       SUMO's ``--time-to-teleport``
    api : "libsumo" | "traci"        libsumo (in-process, fast) or TraCI (a SUMO process over a socket)
    measure_interval : float  [s]    period of SUMO's edge data (set it to the recording interval)
    keep_files : bool                keep SUMO's working directory (its path is logged)
    rerouting : ReroutingConfig or its dict, or None
        SUMO's rerouting device (``--device.rerouting.*``, :func:`rerouting_options`); None: off
    """

    name: ClassVar[str] = "sumo"
    Config: ClassVar[type[EngineConfig]] = SumoEngineConfig
    demand: RoutedDemand | None = None  # set by start()
    rerouted: int = 0  # vehicles given a new route by actions
    capabilities: ClassVar[frozenset[type]] = frozenset(
        {SetSpeedLimit, SetLaneAccess, SetSignalProgram, AddVehicle, TurnCountsAfterRun, Checkpoint, Rerouting})

    def __init__(self, step_length: float = 1.0, teleport_time: float = 300.0, api: str = "libsumo",
                 measure_interval: float = 60.0, keep_files: bool = False,
                 loops: list[tuple[str, int, float]] | None = None, rerouting=None) -> None:
        if api not in ("libsumo", "traci"):
            raise ValueError(f"api must be 'libsumo' or 'traci', got {api!r}")
        if step_length <= 0 or measure_interval <= 0 or teleport_time <= 0:
            raise ValueError("step_length, measure_interval and teleport_time must be > 0")
        self._dt = float(step_length)
        self._teleport_time = float(teleport_time)
        self._api_name = api
        self._interval = float(measure_interval)
        self._keep = keep_files
        self._loop_spec = list(loops or [])
        self._rerouting = None if rerouting is None else \
            dict(rerouting if isinstance(rerouting, dict) else rerouting.model_dump())
        rerouting_options(self._rerouting)  # (what SUMO cannot do is an error now, not at the start)
        self._api: Any = None
        self._trips: TripTable | None = None
        self._step = 0
        self._closed = False
        self._restored = False  # started from a checkpoint (SUMO's saved vehicles have no emission devices)
        self._restored_on_edge: np.ndarray | None = None  # vehicles on each edge at the checkpoint (see restore)

    @classmethod
    def from_config(cls, cfg: SumoEngineConfig, *, record_interval_s: float,
                    loops: list[tuple[str, int, float]] | None = None, rerouting=None) -> "SumoEngine":
        """The engine a scenario's ``run.engine`` section describes (see :class:`SumoEngineConfig`), with
        ``run.rerouting`` (:class:`~twin.config.models.ReroutingConfig`) if given."""
        return cls(step_length=cfg.step_length_s, teleport_time=cfg.teleport_time_s, api=cfg.api,
                   measure_interval=record_interval_s, loops=loops, rerouting=rerouting)

    # ----------------------------------------------------------------- setup
    @property
    def time(self) -> float:
        return self._step * self._dt

    @property
    def step_length(self) -> float:
        return self._dt

    def start(self, city: CityModel, demand: RoutedDemand, *, seed: int) -> None:
        self._launch(city, demand, seed)

    def _launch(self, city: CityModel, demand: RoutedDemand, seed: int, state: Path | None = None,
                begin: float = 0.0) -> None:
        """Start SUMO on the city and demand at ``begin`` [s], from the saved ``state`` if given."""
        if self._api is not None:
            raise EngineError("engine already started")
        self._seed = int(seed)
        self.city, self.demand = city, demand
        self.workdir = Path(tempfile.mkdtemp(prefix="twin-sumo-"))
        net, tls_files = self._network(city)
        classes = vehicle_classes(demand.trips.vtypes, demand.trips.vtype, demand.trips.ids, seed)
        routes = export_routes(demand, city, self.workdir / "demand.rou.xml", emission_classes=classes)
        self._edgedata = self.workdir / "edgedata.xml"
        self._emissiondata = self.workdir / "emissions.xml"
        self._tripinfo = self.workdir / "tripinfo.xml"
        self._vehroutes = self.workdir / "vehroutes.xml"  # turning movements (engines/sumo/turns.py)
        self._turns: tuple[np.ndarray, np.ndarray] | None = None
        self._errlog = self.workdir / "sumo-errors.log"
        meas = self.workdir / "measure.add.xml"
        loops_xml = "".join(
            f'  <inductionLoop id="{lid}" lane="{city.lane_id(ln)}" pos="{min(p, city.lane_length[ln] - 0.1):.3f}" '
            f'period="{self._interval:g}" file="loops.xml"/>\n' for lid, ln, p in self._loop_spec)
        meas.write_text(f'<additional>\n  <edgeData id="twin" file="{self._edgedata.name}" '
                        f'period="{self._interval:g}" excludeEmpty="false"/>\n'
                        f'  <edgeData id="twin_emissions" type="emissions" file="{self._emissiondata.name}" '
                        f'period="{self._interval:g}" excludeEmpty="true" withInternal="true"/>\n{loops_xml}'
                        f'</additional>\n')
        m = len(self._loop_spec)
        self.loop_count, self.loop_speed_sum, self.loop_occ_time = np.zeros(m), np.zeros(m), np.zeros(m)
        self._on_loop: list[set[str]] = [set() for _ in range(m)]
        cmd = [find_sumo_binary("sumo"), "-n", str(net), "-r", str(routes),
               "-a", ",".join(map(str, [*tls_files, meas])),
               "--step-length", f"{self._dt:g}", "--time-to-teleport", f"{self._teleport_time:g}",
               "--seed", str(seed % (2**31)), "--begin", f"{begin:g}", "--save-state.rng", "true", "--save-state.precision", "17", "--route-steps", "0",
               *(["--load-state", str(state)] if state is not None else []),
               "--tripinfo-output", str(self._tripinfo), "--tripinfo-output.write-unfinished", "true",
               "--device.emissions.probability", "1", "--step-method.ballistic", "true",
               "--no-step-log", "true", "--no-warnings", "true", "--error-log", str(self._errlog),
               "--collision.action", "warn", "--vehroute-output", str(self._vehroutes), *VEHROUTE_OPTIONS,
               *rerouting_options(self._rerouting)]
        self._edge_pos = {eid: i for i, eid in enumerate(city.edge_ids)}
        ne = city.n_edges
        self._cum = {k: np.zeros(ne) for k in ("entered", "veh_time", "dist", "halt_time")}
        self._emission = np.zeros((ne, len(POLLUTANTS)))
        self._emission[:, PM25] = np.nan  # SUMO does not report PM2.5
        self._read_upto = 0
        self._read_em_upto = 0
        self._updates = 0
        self._arrived = 0
        self._teleport_ids: dict[str, int] = {}
        self._original_allowed: dict[str, tuple[str, ...]] = {}
        self._departed: set[str] = set()
        n_trips = len(demand.trips)
        self._depart_t = np.full(n_trips, np.nan)  # insertion and arrival times as they happen, so that the
        self._arrive_t = np.full(n_trips, np.nan)  # trip table can be read mid-run (tripinfo comes at close)
        self.rerouted = 0
        self._reroute_on_load = False
        self._programs = 0
        self._ids = {tid: i for i, tid in enumerate(demand.trips.ids)}
        self._network_actions: list[Action] = []  # what changed the network (replayed on a restore)
        self._added: dict[str, dict[str, float]] = {}  # vehicles of AddVehicle: state, arrival [s], distance [m]
        self._added_live: set[str] = set()  # those on the road
        try:
            if self._api_name == "libsumo":
                import libsumo

                if libsumo.simulation.isLoaded():
                    raise EngineError("another libsumo simulation is running in this process "
                                      "(libsumo runs one at a time; use api='traci' for several)")
                libsumo.start(cmd)
                self._api = libsumo
            else:
                import traci

                label = f"twin{next(_labels)}"
                traci.start(cmd, label=label)
                self._api = traci.getConnection(label)
        except EngineError:
            raise
        except Exception as exc:  # SUMO refused the files
            raise EngineError(f"SUMO failed to start: {exc}; {self._errors()}") from None
        log.info("SUMO (%s) running in %s", self._api_name, self.workdir)
        self._emission_edge_pos = {**self._edge_pos, **self._internal_edges()}

    def _internal_edges(self) -> dict[str, int]:
        """SUMO's junction-internal edges, each to the index of the edge its vehicles come from: their emissions
        count there, as the native engine counts a vehicle crossing a junction on its approach edge."""
        api, out = self._api, {}
        known = set(api.edge.getIDList())
        for eid, k in self._edge_pos.items():
            if eid not in known:
                continue
            todo = [f"{eid}_{j}" for j in range(api.edge.getLaneNumber(eid))]
            while todo:
                for link in api.lane.getLinks(todo.pop()):
                    via = link[4]
                    if via and api.lane.getEdgeID(via) not in out:
                        out[api.lane.getEdgeID(via)] = k
                        todo.append(via)  # a turn crossing the junction in two internal parts
        return out

    @property
    def loop_ids(self) -> list[str]:
        return [lid for lid, _, _ in self._loop_spec]

    def _network(self, city: CityModel) -> tuple[Path, list[str]]:
        src = city.attrs.get("sumo_net")
        if src and Path(src).is_file():
            tls = [a for a in city.attrs.get("sumo_additional", []) if Path(a).is_file()
                   and (b"<tlLogic" in (data := Path(a).read_bytes()) or b"<WAUT" in data)]
            return Path(src), tls
        return export_network(city, self.workdir), []

    def _errors(self) -> str:
        try:
            lines = [ln for ln in self._errlog.read_text().splitlines() if ln.strip()]
        except OSError:
            return "no SUMO error log"
        return "SUMO said: " + " | ".join(lines[-3:]) if lines else "SUMO's error log is empty"

    # ------------------------------------------------------------------- run
    def advance(self, until: float) -> None:
        if self._api is None or self._closed:
            raise EngineError("engine is not running (start it first; it cannot run after close)")
        target = int(round(until / self._dt))
        if abs(target * self._dt - until) > 1e-6:
            raise EngineError(f"advance target {until} s is not a multiple of the step {self._dt} s")
        api = self._api
        try:
            while self._step < target:
                self._step += 1
                api.simulationStep(self._step * self._dt)
                if self._reroute_on_load:
                    for vid in api.simulation.getLoadedIDList():
                        api.vehicle.rerouteTraveltime(vid, False)
                departed = api.simulation.getDepartedIDList()
                self._departed.update(departed)
                now = self._step * self._dt
                for vid in departed:
                    k = self._ids.get(vid)
                    if k is not None and np.isnan(self._depart_t[k]):
                        self._depart_t[k] = now
                if self._added:
                    self._follow_added(departed)
                self._updates += api.vehicle.getIDCount()
                arrived = api.simulation.getArrivedIDList()
                self._arrived += len(arrived)
                for vid in arrived:
                    k = self._ids.get(vid)
                    if k is not None:
                        self._arrive_t[k] = now
                for k, (lid, _, _) in enumerate(self._loop_spec):
                    ids = api.inductionloop.getLastStepVehicleIDs(lid)
                    if ids or self._on_loop[k]:
                        new = [v for v in ids if v not in self._on_loop[k]]  # vehicles that reached the loop
                        self.loop_count[k] += len(new)
                        if new:  # (a vehicle may already have left the network: use the loop's mean speed)
                            self.loop_speed_sum[k] += len(new) * max(api.inductionloop.getLastStepMeanSpeed(lid), 0.0)
                        self._on_loop[k] = set(ids)
                        self.loop_occ_time[k] += api.inductionloop.getLastStepOccupancy(lid) / 100.0 * self._dt
                if api.simulation.getStartingTeleportNumber():
                    for vid in api.simulation.getStartingTeleportIDList():
                        self._teleport_ids[vid] = self._teleport_ids.get(vid, 0) + 1
        except Exception as exc:
            raise EngineError(f"SUMO failed at t={self.time:g} s: {exc}; {self._errors()}") from None

    def _follow_added(self, departed) -> None:
        """Track vehicles added by AddVehicle: departures, arrivals (time) and distance driven."""
        api = self._api
        for vid in departed:
            if vid in self._added:
                self._added[vid]["state"] = 2
                self._added_live.add(vid)
        if self._added_live:
            for vid in api.simulation.getArrivedIDList():
                if vid in self._added_live:
                    self._added_live.discard(vid)
                    self._added[vid].update(state=3, arrival=self.time)
            for vid in self._added_live:
                self._added[vid]["distance"] = api.vehicle.getDistance(vid)

    def _add_vehicle(self, a: AddVehicle) -> None:
        if a.vid in self._added or a.vid in self._ids:
            raise ValueError(f"vehicle id {a.vid!r} is already in use")
        names = [v.name for v in self.demand.trips.vtypes]
        if a.vtype not in names:
            raise KeyError(f"vehicle {a.vid!r}: unknown vehicle type {a.vtype!r} (the demand has {names})")
        if not a.route:
            raise ValueError(f"vehicle {a.vid!r}: empty route")
        for eid in a.route:
            if eid not in self._edge_pos:
                raise KeyError(f"unknown edge {eid!r}")
        try:
            self._api.route.add(f"twin-added-{a.vid}", list(a.route))
            self._api.vehicle.add(a.vid, f"twin-added-{a.vid}", typeID=a.vtype, depart="now", departLane="best",
                                  departSpeed="max", departPos="base")
        except Exception as exc:  # noqa: BLE001 - SUMO's own reason (e.g. a route that is not connected)
            raise ValueError(f"vehicle {a.vid!r}: SUMO refused it: {exc}") from None
        self._added[a.vid] = {"state": 1, "arrival": float("nan"), "distance": 0.0}

    def vehicle_status(self, vids) -> dict[str, np.ndarray]:
        """Where vehicles added by :class:`AddVehicle` are, as :meth:`NativeEngine.vehicle_status`
        (``edge`` is -1 inside junctions; ``distance`` of an arrived vehicle is as of its last step)."""
        try:
            recs = [self._added[v] for v in vids]
        except KeyError as exc:
            raise KeyError(f"no vehicle {exc.args[0]!r} was added to this engine") from None
        n = len(recs)
        out = {"state": np.array([r["state"] for r in recs], dtype=np.int8), "edge": np.full(n, -1, np.int32),
               "pos": np.zeros(n), "arrival": np.array([r["arrival"] for r in recs]),
               "distance": np.array([r["distance"] for r in recs])}
        if not self._closed:
            api = self._api
            for k, vid in enumerate(vids):
                if vid in self._added_live:
                    out["edge"][k] = self._edge_pos.get(api.vehicle.getRoadID(vid), -1)
                    out["pos"][k] = api.vehicle.getLanePosition(vid)
                    out["distance"][k] = api.vehicle.getDistance(vid)
        return out

    # --------------------------------------------------------------- actions
    def apply(self, action: Action) -> None:
        if type(action) not in self.capabilities:
            raise UnsupportedActionError(self.name, action)
        self._apply(action)
        if isinstance(action, (SetSpeedLimit, SetLaneAccess, SetSignalProgram)):
            self._network_actions.append(action)

    def _apply(self, action: Action, replay: bool = False) -> None:
        if isinstance(action, SetSpeedLimit):
            if action.speed <= 0:
                raise ValueError(f"speed limit must be > 0 m/s, got {action.speed}")
            for eid in action.edges:
                if eid not in self._edge_pos:
                    raise KeyError(f"unknown edge {eid!r}")
                self._api.edge.setMaxSpeed(eid, float(action.speed))
        elif isinstance(action, SetLaneAccess):
            from twin.engines.sumo.export import sumo_vclass

            api = self._api
            for eid, k in action.lanes:
                if eid not in self._edge_pos:
                    raise KeyError(f"unknown edge {eid!r}")
                lane = f"{eid}_{k}"
                original = self._original_allowed.setdefault(lane, tuple(api.lane.getAllowed(lane)))
                if action.vclasses is None:
                    api.lane.setAllowed(lane, list(original))
                elif not action.vclasses:
                    api.lane.setDisallowed(lane, ["all"])  # closed to every class
                else:
                    api.lane.setAllowed(lane, sorted({sumo_vclass(v) for v in action.vclasses}))
            if action.reroute and not replay:  # (a restored state has the routes already)
                # running vehicles, and every trip not yet departed: now if SUMO has loaded it, else on load
                self._reroute_on_load = True
                running = api.vehicle.getIDList()
                self.rerouted += len(running)
                for vid in (*running, *(t for t in self.demand.trips.ids if t not in self._departed)):
                    try:
                        api.vehicle.rerouteTraveltime(vid, False)
                    except Exception:  # noqa: BLE001 - not loaded yet: re-routed when SUMO loads it
                        pass
        elif isinstance(action, SetSignalProgram):
            api = self._api
            if action.tls not in self.city.tls_index:
                raise KeyError(f"unknown traffic light {action.tls!r}")
            self._programs += 1
            phases = [api.trafficlight.Phase(float(d), st) for d, st in action.phases]
            logic = api.trafficlight.Logic(f"twin{self._programs}", 0, 0, phases)
            api.trafficlight.setProgramLogic(action.tls, logic)
            api.trafficlight.setProgram(action.tls, f"twin{self._programs}")
            if action.offset:
                log.warning("SUMO engine: signal offset %g s of %s is not applied (program starts now)",
                            action.offset, action.tls)
        elif isinstance(action, AddVehicle):
            self._add_vehicle(action)

    # ---------------------------------------------------------- checkpoints
    _FORMAT: ClassVar[str] = "twin-sumo-checkpoint/1"
    _ARRAYS: ClassVar[tuple[str, ...]] = ("loop_count", "loop_speed_sum", "loop_occ_time", "_emission", "_depart_t",
                                          "_arrive_t")

    def checkpoint(self, path) -> None:
        """Save the running state in one file (``.npz``): SUMO's own ``saveState`` (vehicles, routes, signal
        states and, with ``--save-state.rng``, its random number generators) and what twin counted so far
        (cumulative edge values and emissions, loops, insertion and arrival times, teleports, added vehicles,
        the network changes of actions). :meth:`restore` resumes it (docs/live.md, "Checkpoints on SUMO": what SUMO restores)."""
        from dataclasses import asdict

        from twin.npzio import save_npz

        if self._api is None or self._closed:
            raise EngineError("nothing to checkpoint: the engine is not running")
        self._read_edgedata()
        xml = self.workdir / "checkpoint-state.xml"
        try:
            self._api.simulation.saveState(str(xml))
        except Exception as exc:  # noqa: BLE001 - SUMO's reason
            raise EngineError(f"SUMO could not save its state at t={self.time:g} s: {exc}; {self._errors()}") from None
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays.update({f"cum_{k}": v for k, v in self._cum.items()})
        arrays["sumo_state"] = np.frombuffer(xml.read_bytes(), dtype=np.uint8)
        on_edge = np.zeros(self.city.n_edges)  # vehicles on each edge now (see restore)
        for vid in self._api.vehicle.getIDList():
            k = self._edge_pos.get(self._api.vehicle.getRoadID(vid))
            if k is not None:
                on_edge[k] += 1
        arrays["on_edge"] = on_edge
        meta = {"city": self.city.name, "n_edges": self.city.n_edges, "trips": len(self.demand.trips),
                "options": {"step_length": self._dt, "teleport_time": self._teleport_time, "api": self._api_name,
                            "measure_interval": self._interval, "loops": [list(x) for x in self._loop_spec],
                            "rerouting": self._rerouting},
                "seed": self._seed, "step": self._step, "updates": self._updates, "arrived": self._arrived,
                "rerouted": self.rerouted, "reroute_on_load": self._reroute_on_load,
                "teleports": self._teleport_ids, "departed": sorted(self._departed),
                "added": self._added, "added_live": sorted(self._added_live),
                "original_allowed": {k: list(v) for k, v in self._original_allowed.items()},
                "on_loop": [sorted(x) for x in self._on_loop],
                "actions": [{"type": type(a).__name__, **asdict(a)} for a in self._network_actions]}
        save_npz(path, self._FORMAT, meta, arrays)

    @classmethod
    def restore(cls, path, city: CityModel, demand: RoutedDemand) -> "SumoEngine":
        """A SUMO engine in the state saved by :meth:`checkpoint` (same city and demand): a new SUMO started on
        the same files at the checkpoint's time with ``--load-state``, the network changes of earlier actions
        applied again. With libsumo already running a simulation in this process, the restored one runs over
        TraCI (a SUMO process of its own), which simulates the same."""
        from twin.npzio import load_npz

        meta, arrays = load_npz(path, cls._FORMAT, EngineError, "SUMO engine checkpoint")
        if meta["city"] != city.name or meta["n_edges"] != city.n_edges or meta["trips"] != len(demand.trips):
            raise EngineError(f"{path}: checkpoint of city {meta['city']!r} with {meta['trips']} trips does not "
                              f"match city {city.name!r} with {len(demand.trips)} trips")
        opts = dict(meta["options"])
        opts["loops"] = [(str(a), int(b), float(c)) for a, b, c in opts["loops"]]
        if opts["api"] == "libsumo":
            import libsumo

            if libsumo.simulation.isLoaded():
                log.info("libsumo is running another simulation in this process: the restored SUMO runs over TraCI")
                opts["api"] = "traci"
        eng = cls(**opts)
        begin = meta["step"] * eng._dt
        state = Path(tempfile.mkdtemp(prefix="twin-sumo-state-")) / "state.xml"
        try:
            state.write_bytes(arrays["sumo_state"].tobytes())
            eng._launch(city, demand, int(meta["seed"]), state=state, begin=begin)
        finally:
            shutil.rmtree(state.parent, ignore_errors=True)
        eng._restored = True
        eng._step, eng._updates, eng._arrived = int(meta["step"]), int(meta["updates"]), int(meta["arrived"])
        eng.rerouted, eng._reroute_on_load = int(meta["rerouted"]), bool(meta["reroute_on_load"])
        eng._teleport_ids = {str(k): int(v) for k, v in meta["teleports"].items()}
        eng._departed = set(meta["departed"])
        eng._added = {str(k): {kk: float(vv) for kk, vv in v.items()} for k, v in meta["added"].items()}
        for rec in eng._added.values():
            rec["state"] = int(rec["state"])
        eng._added_live = set(meta["added_live"])
        eng._on_loop = [set(x) for x in meta["on_loop"]]
        for k in cls._ARRAYS:
            setattr(eng, k, arrays[k].copy())
        eng._cum = {k: arrays[f"cum_{k}"].copy() for k in eng._cum}
        # SUMO's edge data count the vehicles it puts back on the road from the state as departing there:
        # they entered their edge before the checkpoint, so they are taken off its first interval
        eng._restored_on_edge = arrays["on_edge"].copy()
        try:
            for rec in meta["actions"]:
                action = _action_from_json(rec)
                eng._apply(action, replay=True)
                eng._network_actions.append(action)
        except Exception as exc:  # noqa: BLE001
            eng.close()
            raise EngineError(f"{path}: an action of the checkpoint could not be applied again: {exc}") from None
        eng._original_allowed = {k: tuple(v) for k, v in meta["original_allowed"].items()}
        return eng

    # ------------------------------------------------------------ observing
    def _new_edges(self, path: Path, upto: int, index: dict[str, int] | None = None
                   ) -> tuple[list[tuple[int, ET.Element]], int]:
        """The ``<edge>`` elements of the complete ``<interval>``s SUMO wrote to ``path`` after byte ``upto``
        (as (edge index, element); ``index`` maps SUMO's edge ids, default the city's edges), and the byte
        offset read to; only the new part of the file is read."""
        index = self._edge_pos if index is None else index
        try:
            with open(path, "rb") as f:
                f.seek(upto)
                data = f.read()
        except OSError:
            return [], upto
        out, end = [], 0
        for m in _INTERVAL.finditer(data):
            for e in ET.fromstring(m.group(0)).iter("edge"):
                k = index.get(e.get("id"))
                if k is not None:
                    out.append((k, e))
            end = m.end()
        return out, upto + end

    def _read_edgedata(self) -> None:
        edges, self._read_upto = self._new_edges(self._edgedata, self._read_upto)
        if edges and self._restored_on_edge is not None:
            self._cum["entered"] -= self._restored_on_edge
            self._restored_on_edge = None
        for k, e in edges:
            sampled = float(e.get("sampledSeconds", 0.0))
            self._cum["entered"][k] += float(e.get("entered", 0)) + float(e.get("departed", 0))
            self._cum["veh_time"][k] += sampled
            self._cum["dist"][k] += float(e.get("speed", 0.0)) * sampled
            self._cum["halt_time"][k] += float(e.get("waitingTime", 0.0))
        self._read_emissions()

    def _read_emissions(self) -> None:
        """Add SUMO's edge emissions [mg] of the intervals written since the last read (as g); those on a
        junction's internal edges count on the edge the vehicles come from (:meth:`_internal_edges`)."""
        edges, self._read_em_upto = self._new_edges(self._emissiondata, self._read_em_upto,
                                                    self._emission_edge_pos)
        for k, e in edges:
            for p, name in enumerate(MODEL_POLLUTANTS):
                self._emission[k, p] += float(e.get(f"{name}_abs", 0.0)) / 1000.0
        self._emission[:, PM10] = self._emission[:, PMX]

    def observe(self, vehicles: bool = False) -> Snapshot:
        if self._api is None:
            raise EngineError("engine is not running")
        self._read_edgedata()
        total = len(self.demand.trips)
        if self._closed:
            running = waiting = 0
        else:
            api = self._api
            running = api.vehicle.getIDCount()
            waiting = len(api.simulation.getPendingVehicles())
        scheduled = max(0, total + len(self._added) - running - waiting - self._arrived)
        veh = None
        if vehicles and not self._closed:
            veh = self._vehicle_arrays()
        phases = np.array([self._api.trafficlight.getPhase(t) for t in self.city.tls_ids], dtype=np.int32) \
            if not self._closed else np.zeros(self.city.n_tls, dtype=np.int32)
        return Snapshot(time=self.time, scheduled=scheduled, waiting=waiting, running=running,
                        arrived=self._arrived, teleports=sum(self._teleport_ids.values()),
                        vehicle_updates=self._updates, edge_entered=self._cum["entered"].copy(),
                        edge_veh_time=self._cum["veh_time"].copy(), edge_dist=self._cum["dist"].copy(),
                        edge_halt_time=self._cum["halt_time"].copy(),
                        edge_queue_time=np.full(self.city.n_edges, np.nan), signal_phase=phases, vehicles=veh,
                        loop_count=self.loop_count.copy(), loop_speed_sum=self.loop_speed_sum.copy(),
                        loop_occ_time=self.loop_occ_time.copy(), added=len(self._added),
                        edge_emission=self._emission.copy())

    def _vehicle_arrays(self) -> VehicleArrays:
        api, city = self._api, self.city
        ids = [v for v in api.vehicle.getIDList() if v in self._ids]
        n = len(ids)
        trip = np.array([self._ids[v] for v in ids], dtype=np.int64)
        edge = np.array([self._edge_pos.get(api.vehicle.getRoadID(v), -1) for v in ids], dtype=np.int32)
        lane_idx = np.array([api.vehicle.getLaneIndex(v) for v in ids], dtype=np.int32)
        lane = np.where(edge >= 0, city.edge_lane_start[np.maximum(edge, 0)] + lane_idx, -1).astype(np.int32)
        xy = np.array([api.vehicle.getPosition(v) for v in ids], dtype=np.float64).reshape(n, 2)
        ang = np.array([api.vehicle.getAngle(v) for v in ids], dtype=np.float64)
        return VehicleArrays(trip=trip, edge=edge, lane=lane,
                             pos=np.array([api.vehicle.getLanePosition(v) for v in ids], dtype=np.float64),
                             speed=np.array([api.vehicle.getSpeed(v) for v in ids], dtype=np.float64),
                             x=xy[:, 0].copy(), y=xy[:, 1].copy(), angle=np.radians(90.0 - ang),
                             vtype=self.demand.trips.vtype[trip].astype(np.int32))

    def trip_table(self) -> TripTable:
        """Per-trip results: from SUMO's tripinfo after :meth:`close` (SUMO writes it whole then); while
        running, insertion and arrival times and states as they happened, distances of the vehicles on the
        road, and NaN time loss and CO2 (SUMO reports those per trip only in its tripinfo)."""
        if self._trips is not None:
            return self._trips
        if self._api is None:
            raise EngineError("engine is not running")
        trips = self.demand.trips
        state = np.where(np.isfinite(self._arrive_t), 3, np.where(np.isfinite(self._depart_t), 2,
                                                                 np.where(trips.depart <= self.time, 1, 0)))
        dist = np.where(state == 3, self.demand.route_length, 0.0)
        for k in np.flatnonzero(state == 2):
            try:
                dist[k] = self._api.vehicle.getDistance(trips.ids[k])
            except Exception:  # noqa: BLE001 - teleporting or just left
                dist[k] = np.nan
        teleports = np.array([self._teleport_ids.get(t, 0) for t in trips.ids], dtype=np.int32)
        return TripTable(depart=trips.depart.copy(), depart_actual=self._depart_t.copy(),
                         arrival=self._arrive_t.copy(), route_length=self.demand.route_length.copy(), distance=dist,
                         time_loss=np.full(len(trips), np.nan), co2=np.full(len(trips), np.nan),
                         teleports=teleports, state=state.astype(np.int8))

    def turn_entered_at(self, times: np.ndarray) -> np.ndarray:
        """Cumulative turning movements [veh] at each of ``times`` [s] (rows), after :meth:`close`: SUMO
        writes a vehicle's route exit times when it arrives or when the run ends."""
        if self._turns is None:
            raise EngineError("SUMO's turning movements are available after close()")
        return cumulative_turns(*self._turns, np.asarray(times, dtype=float), self.city.edge_successors[1].size)

    def _parse_tripinfo(self) -> TripTable:
        n = len(self.demand.trips)
        depart_actual = np.full(n, np.nan)
        arrival = np.full(n, np.nan)
        dist = np.zeros(n)
        loss = np.zeros(n)
        co2 = np.zeros(n)
        emission = np.zeros((n, len(POLLUTANTS)))
        emission[:, PM25] = np.nan
        data = self._tripinfo.read_bytes() if self._tripinfo.is_file() else b""
        for m in _TRIPINFO.finditer(data):  # complete elements only: a truncated file still yields its trips
            el = ET.fromstring(m.group(0))
            k = self._ids.get(el.get("id"))
            if k is None:
                continue
            dep = float(el.get("depart", -1))
            arr = float(el.get("arrival", -1))
            if dep >= 0:
                depart_actual[k] = dep
            if arr >= 0:
                arrival[k] = arr
            dist[k] = float(el.get("routeLength", 0))
            loss[k] = float(el.get("timeLoss", 0))
            em = el.find("emissions")
            if em is None and self._restored:  # a vehicle of SUMO's saved state: no emission device
                co2[k] = np.nan
                emission[k] = np.nan
            if em is not None:
                co2[k] = float(em.get("CO2_abs", 0)) / 1000.0  # mg -> g
                for p, name in enumerate(MODEL_POLLUTANTS):
                    emission[k, p] = float(em.get(f"{name}_abs", 0)) / 1000.0
                emission[k, PM10] = emission[k, PMX]
        # vehicles on the road when SUMO died have no tripinfo: their insertion times as they happened
        depart_actual = np.where(np.isfinite(depart_actual), depart_actual, self._depart_t)
        # arrivals without a tripinfo (before a restored checkpoint; or SUMO died before writing it): the arrival
        # as it happened (SUMO's time of the step it arrived in, the one before the step's end time kept in
        # _arrive_t), the route driven, time loss and pollutants not known
        untold = ~np.isfinite(arrival) & np.isfinite(self._arrive_t)
        arrival[untold] = self._arrive_t[untold] - self._dt
        dist[untold] = self.demand.route_length[untold]
        loss[untold] = co2[untold] = np.nan
        emission[untold] = np.nan
        state = np.where(np.isfinite(arrival), 3, np.where(np.isfinite(depart_actual), 2,
                                                           np.where(self.demand.trips.depart <= self.time, 1, 0)))
        teleports = np.array([self._teleport_ids.get(t, 0) for t in self.demand.trips.ids], dtype=np.int32)
        return TripTable(depart=self.demand.trips.depart.copy(), depart_actual=depart_actual, arrival=arrival,
                         route_length=self.demand.route_length.copy(), distance=dist, time_loss=loss, co2=co2,
                         teleports=teleports, state=state.astype(np.int8), emission=emission)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._api is not None:
            try:
                self._api.close()
            except Exception as exc:  # SUMO already gone
                log.warning("closing SUMO: %s", exc)
        self._read_edgedata()
        try:
            self._trips = self._parse_tripinfo()
            self._turns = turn_events(self._vehroutes, self.city)
        finally:
            if self._keep:
                log.warning("SUMO files kept in %s", self.workdir)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _action_from_json(rec: dict) -> Action:
    """An action saved in a checkpoint (its class name and fields, tuples as lists) as the action again."""
    def tup(x):
        return tuple(tup(v) for v in x) if isinstance(x, list) else x

    kinds = {c.__name__: c for c in (SetSpeedLimit, SetLaneAccess, SetSignalProgram)}
    rec = dict(rec)
    return kinds[rec.pop("type")](**{k: tup(v) for k, v in rec.items()})
