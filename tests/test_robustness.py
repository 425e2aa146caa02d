"""Issue 18, runs and files: results always land, interrupts, checkpoints, one-line errors.

Each test replays one case we broke twin with. CLI cases run ``run_sim.py`` in a
subprocess on small scenarios; interrupts send real signals to it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from twin.engines.base import EngineError
from twin.engines.native import NativeEngine
from twin.npzio import load_npz, save_npz

from conftest import ROOT, make_trips, run_cli

SMALL = """name: {name}
city: {{type: corridor, edges: 3, length_m: 300}}
demand: {{type: trips, trips: [{{origin: e0, destination: e2, count: 20, headway_s: 5}}]}}
run: {{duration_s: 120, record_interval_s: 60}}
"""
# a grid with enough traffic that the simulation lasts a few seconds of wall time
LONG = """name: long
city: {type: grid, blocks_x: 8, blocks_y: 8}
demand: {type: od, trips: 12000, end_s: 3600}
run: {duration_s: 36000, record_interval_s: 60, snapshot_interval_s: 0}
"""


def scenario(tmp_path: Path, text: str = SMALL.format(name="small"), name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, one ``error:`` line naming ``needles``."""
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from twin.city import corridor_city
    from twin.demand import route_demand

    city = corridor_city(3, 500.0)
    demand = route_demand(city, make_trips(city, [("e0", "e2", 2.0 * k) for k in range(200)]))
    eng = NativeEngine()
    eng.start(city, demand, seed=1)
    eng.advance(120.0)
    path = tmp_path_factory.mktemp("cp") / "cp.npz"
    eng.checkpoint(path)
    return path, city, demand


def _tampered(checkpoint, tmp_path, change) -> Path:
    """The checkpoint with ``change(arrays)`` applied and signed again (so the checks behind the checksum run)."""
    path, _, _ = checkpoint
    meta, arrays = load_npz(path, "twin-native-checkpoint/1", EngineError, "checkpoint")
    change(arrays)
    meta = {k: v for k, v in meta.items() if k not in ("format", "sha256")}
    return save_npz(tmp_path / "bad.npz", "twin-native-checkpoint/1", meta, arrays, compress=False)


def test_checkpoint_restores_and_runs(checkpoint):
    path, city, demand = checkpoint
    eng = NativeEngine.restore(path, city, demand)
    eng.advance(600.0)
    assert eng.observe().arrived > 0


@pytest.mark.parametrize("change, message", [
    (lambda a: a["lane"].__setitem__(np.flatnonzero(a["state"] == 2)[0], 10_000), "lane index"),
    (lambda a: a.__setitem__("pos", a["pos"][:-5]), "'pos' has shape"),
    (lambda a: a["state"].__setitem__(0, 77), "trip state"),
    (lambda a: a["route_edges"].__setitem__(0, -3), "edge index"),
    (lambda a: a["route_off"].__setitem__(3, 10 ** 6), "route offset"),
    (lambda a: a.__setitem__("speed", a["speed"].astype(np.float32)), "type float32"),
    (lambda a: a.pop("e_dist"), "'e_dist' is missing"),
])
def test_bad_checkpoint_is_an_engine_error_naming_it(checkpoint, tmp_path, change, message):
    _, city, demand = checkpoint
    bad = _tampered(checkpoint, tmp_path, change)
    with pytest.raises(EngineError, match="bad checkpoint") as err:
        NativeEngine.restore(bad, city, demand)
    assert message in str(err.value)


def test_changed_checkpoint_fails_its_checksum(checkpoint, tmp_path):
    path, city, demand = checkpoint
    meta, arrays = load_npz(path, "twin-native-checkpoint/1", EngineError, "checkpoint")
    arrays["lane"][np.flatnonzero(arrays["state"] == 2)[0]] = 10_000
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)  # the old checksum kept
    np.savez(tmp_path / "bad.npz", __meta__=header, **arrays)
    with pytest.raises(EngineError, match="checksum mismatch"):
        NativeEngine.restore(tmp_path / "bad.npz", city, demand)


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.0])
def test_truncated_checkpoint_is_an_engine_error(checkpoint, tmp_path, keep):
    path, city, demand = checkpoint
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EngineError, match="damaged/truncated|not a twin"):
        NativeEngine.restore(tmp_path / "cut.npz", city, demand)


def test_kernels_never_run_on_a_bad_checkpoint(checkpoint, tmp_path):
    """In a subprocess: a segfault would show as a negative return code."""
    bad = _tampered(checkpoint, tmp_path, lambda a: a["lane"].__setitem__(slice(None), 10 ** 6))
    code = ("import sys; sys.path.insert(0, 'tests'); from conftest import make_trips\n"
            "from twin.city import corridor_city; from twin.demand import route_demand\n"
            "from twin.engines.native import NativeEngine; from twin.engines.base import EngineError\n"
            "city = corridor_city(3, 500.0)\n"
            "demand = route_demand(city, make_trips(city, [('e0', 'e2', 2.0 * k) for k in range(200)]))\n"
            f"try:\n    NativeEngine.restore({str(bad)!r}, city, demand).advance(300.0)\n"
            "except EngineError as e:\n    print('EngineError', e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "EngineError" in r.stdout and "lane index" in r.stdout


# ------------------------------------------------------------------ files
def test_attrs_netcdf_cannot_hold_are_stored(tmp_path):
    from twin.results.io import open_results, write_results

    ds = xr.Dataset({"x": ("t", np.arange(3.0), {"flag": True, "none": None})},
                    attrs={"seed": 10 ** 30, "partial": True, "none": None, "nested": {"a": {"b": [1, None]}},
                           "name": "a\x00b", "mixed": [1, "x"], "ints": [1, 2]})
    write_results(tmp_path, ds, {}, {})
    back = open_results(tmp_path)
    assert back.attrs["seed"] == str(10 ** 30)
    assert back.attrs["partial"] == 1 and back["x"].attrs["flag"] == 1
    assert json.loads(back.attrs["nested"]) == {"a": {"b": [1, None]}}
    assert back.attrs["none"] == "null" and back.attrs["name"] == "a\ufffdb"
    assert list(back.attrs["ints"]) == [1, 2] and json.loads(back.attrs["mixed"]) == [1, "x"]
    assert sorted(os.listdir(tmp_path)) == ["kpis.json", "manifest.json", "results.nc"]  # no temporary left


def test_safe_names_stay_in_the_results_folder():
    from twin.results.io import RESULTS_ROOT, default_output, safe_name

    for name in ("../../../../x", "/etc/passwd", "a\x00b", "..", "a/../../b", "C:\\x\\y", " .hidden", "\n"):
        s = safe_name(name)
        assert s and "/" not in s and "\\" not in s and "\x00" not in s and not s.startswith("."), (name, s)
        out = default_output(name).resolve()
        assert RESULTS_ROOT.resolve() in out.parents, (name, out)


def test_lock_refuses_a_second_writer(tmp_path):
    from twin.results.io import ResultsError, prepare_output

    folder, lock = prepare_output(tmp_path / "out", "x")
    code = ("import sys; from twin.results.io import prepare_output, ResultsError\n"
            f"try:\n    prepare_output({str(folder)!r}, 'x')\nexcept ResultsError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert f"pid {os.getpid()}" in r.stdout and "another run" in r.stdout, r.stdout + r.stderr
    lock.release()
    again, lock2 = prepare_output(folder, "x")  # free again
    lock2.release()
    with pytest.raises(ResultsError, match="is a file"):
        (tmp_path / "f").write_text("x")
        prepare_output(tmp_path / "f", "x")


def test_save_leaves_the_old_file_when_interrupted_midway(tmp_path):
    from twin.core.files import atomic_path

    target = tmp_path / "kpis.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["kpis.json"]


# ------------------------------------------------------------------ results always land (CLI)
def test_scenario_name_cannot_leave_the_results_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for i, name in enumerate(("../../../../escaped", str(tmp_path / "abs"), "a\\x00b/../c")):
        p = scenario(tmp_path, SMALL.format(name=json.dumps(name)), f"s{i}.yaml")
        r = run_cli("run", p, "-q", cwd=work)
        assert r.returncode == 0, r.stderr
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists()
    assert sorted(os.listdir(work / "results")) == ["a_x00b_.._c", "abs", "escaped"] or \
        all("/" not in n for n in os.listdir(work / "results"))
    for d in (work / "results").iterdir():
        assert (d / "results.nc").is_file() and not (d / ".twin.lock").exists()


def _read_only(folder: Path) -> bool:
    """Make ``folder`` read-only even for root (chattr +i); False if this system cannot."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


def test_read_only_folder_fails_before_the_run(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _read_only(ro):
        pytest.skip("cannot make a read-only folder here")
    try:
        r = run_cli("run", scenario(tmp_path), "--out", ro, "-q")
        one_line_error(r, str(ro), "cannot write here")
        assert "KPIs" not in r.stdout  # refused before simulating
    finally:
        subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)


def test_out_pointing_at_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(run_cli("run", scenario(tmp_path), "--out", f, "-q"), "is a file, not a folder")
    assert f.read_text() == "x"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 kB tmpfs (root only)."""
    d = tmp_path / "tiny"
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    yield d
    subprocess.run(["umount", str(d)], check=True)


def test_full_folder_fails_before_the_run(tmp_path, tiny_disk):
    (tiny_disk / "filler").write_bytes(b"\0" * (256 * 1024 - 8192))  # what is left: 8 kB
    one_line_error(run_cli("run", scenario(tmp_path), "--out", tiny_disk / "out", "-q"), "MB free")


def test_folder_that_fills_up_during_the_save_keeps_the_results_elsewhere(tmp_path, tiny_disk):
    """Enough room at the check, none left at the save (a filler written meanwhile): the results land in
    the temporary folder, named in one line."""
    p = scenario(tmp_path, SMALL.format(name="fill").replace("duration_s: 120, record_interval_s: 60",
                                                             "duration_s: 200000, record_interval_s: 3600, "
                                                             "snapshot_interval_s: 0"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), "run", str(p), "--out",
                             str(tiny_disk / "out"), "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if (tiny_disk / "out" / ".twin.lock").exists():
            break
        time.sleep(0.05)
    with open(tiny_disk / "filler", "wb") as fh:  # fill the disk
        try:
            fh.write(b"\0" * (1 << 20))
        except OSError:
            pass
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")][0]
    assert "cannot write the results" in line and "they are saved in" in line
    rescued = Path(line.rsplit("saved in ", 1)[1])
    assert (rescued / "results.nc").is_file() and json.loads((rescued / "kpis.json").read_text())["trips_total"] > 0
    import shutil

    shutil.rmtree(rescued)


def test_second_run_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    p = scenario(tmp_path, LONG)
    first = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), "run", str(p), "--out", str(out), "-q"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (out / ".twin.lock").exists():
                break
            time.sleep(0.05)
        one_line_error(run_cli("run", scenario(tmp_path), "--out", out, "-q"), "another run", str(first.pid))
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_seed_too_large_for_netcdf(tmp_path):
    r = run_cli("run", scenario(tmp_path), "--out", tmp_path / "o", "--seed", str(10 ** 25), "-q")
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(tmp_path / "o" / "results.nc") as ds:
        assert ds.attrs["seed"] == str(10 ** 25) and ds.attrs["partial"] == 0
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["seed"] == 10 ** 25


# ------------------------------------------------------------------ interrupts
def _start_then_signal(args, sig, *, after: str, delay: float = 1.5, cwd=ROOT):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.time() + 240
    while after not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stdout.readline()
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, seen + out, err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_the_simulation_keeps_partial_results(tmp_path, sig, code):
    out = tmp_path / "o"
    rc, stdout, err = _start_then_signal(["run", scenario(tmp_path, LONG), "--out", out, "-q"], sig,
                                         after="engine native")
    assert rc == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "marked partial" in err and signal.Signals(sig).name in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["partial"] is True and m["interrupted"] == signal.Signals(sig).name
    assert 0 < m["end_time_s"] < 36000
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds.attrs["partial"] == 1 and ds.attrs["interrupted"] == signal.Signals(sig).name
        assert float(ds.time[-1]) == m["end_time_s"]
        k = json.loads((out / "kpis.json").read_text())
        assert k["trips_running"] == int(ds["running"][-1]) and k["trips_completed"] == int(ds["arrived"][-1])
    assert sorted(os.listdir(out)) == ["city.npz", "kpis.json", "manifest.json", "results.nc"]


def test_signal_during_routing_stops_cleanly(tmp_path):
    """Making and routing a million trips in the 100 x 100-block metropolis takes several seconds (the city
    alone is built in about one); a SIGINT sent meanwhile stops the run at the next routing batch."""
    p = scenario(tmp_path, LONG.replace("grid, blocks_x: 8, blocks_y: 8", "metro, blocks_x: 100, blocks_y: 100")
                 .replace("12000", "1000000"))
    t0 = time.time()
    rc, _, err = _start_then_signal(["run", p, "--out", tmp_path / "o", "-q"], signal.SIGINT, after="",
                                    delay=4.0)
    assert rc == 130 and "Traceback" not in err and "nothing to save" in err, err
    assert time.time() - t0 < 60
    assert not (tmp_path / "o" / ".twin.lock").exists()


def test_signal_during_the_save_waits_for_whole_files(tmp_path):
    """Signals sent all through the run and save: exit 130/143, never a hang or half a file."""
    out = tmp_path / "o"
    p = scenario(tmp_path, LONG.replace("36000", "3600").replace("snapshot_interval_s: 0", "snapshot_interval_s: 1"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), "run", str(p), "--out", str(out), "-q"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "engine native" not in proc.stdout.readline():
        pass
    time.sleep(1.0)
    for _ in range(40):  # the first stops the run, the others arrive while it saves
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds.attrs["partial"] == 1 and ds["veh_x"].size > 0
    assert json.loads((out / "manifest.json").read_text())["partial"] is True


def test_signal_during_compare_keeps_finished_replications(tmp_path):
    p = scenario(tmp_path, LONG.replace("36000", "1800") + "policies: [{type: speed_limit, zones: [z1_1], "
                                                          "speed_kmh: 30}]\n")
    out = tmp_path / "c"
    rc, _, err = _start_then_signal(["compare", p, "--replications", "20", "--scheduler", "serial", "--out", out,
                                     "-q"], signal.SIGTERM, after="comparing", delay=8.0)
    assert rc == 143 and "Traceback" not in err and "marked partial" in err, err
    report = json.loads((out / "compare.json").read_text())
    assert report["partial"] is True and report["interrupted"] == "SIGTERM"
    assert len(report["paired_replications"]) < 20


def test_signal_during_validate_keeps_the_native_run(tmp_path):
    out = tmp_path / "v"
    rc, _, err = _start_then_signal(["validate", scenario(tmp_path, LONG), "--out", out, "-q"], signal.SIGINT,
                                    after="validating", delay=4.0)
    assert rc == 130 and "Traceback" not in err and "during the native run" in err, err
    v = json.loads((out / "validation.json").read_text())
    assert v["partial"] is True and v["runs_saved"] == ["native"]
    assert json.loads((out / "native" / "manifest.json").read_text())["partial"] is True
    assert not (out / "sumo").exists()


# ------------------------------------------------------------------ engine crash
@pytest.mark.slow
def test_kpis_after_sumo_dies_match_the_last_record():
    from twin.config.models import ScenarioConfig
    from twin.runner import run_scenario

    cfg = ScenarioConfig.model_validate({
        "name": "crash", "city": {"type": "grid", "blocks_x": 4, "blocks_y": 4},
        "demand": {"type": "od", "trips": 600, "end_s": 600, "profile": "flat"},
        "run": {"duration_s": 600, "record_interval_s": 60, "engine": {"type": "sumo", "api": "traci"}}})
    killed = []

    def kill_sumo(t, running):  # SUMO dies at t = 300 s
        if t < 300 or killed:
            return
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if stat.rsplit(") ", 1)[1].split()[1] == str(os.getpid()) and b"sumo" in cmd:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    r = run_scenario(cfg, progress=kill_sumo)
    assert killed and r.error and r.partial
    last = r.dataset.isel(time=-1)
    assert int(last["running"]) > 50
    assert r.kpis["trips_running"] == int(last["running"])
    assert r.kpis["trips_completed"] == int(last["arrived"])
    assert r.dataset.attrs["end_time_s"] == float(last.time)
    # SUMO counts as waiting only the vehicles it failed to insert; trips due in the last step are not yet
    assert 0 <= r.kpis["trips_waiting"] - int(last["waiting"]) <= 10


# ------------------------------------------------------------------ one-line errors, bounds
BAD_SCENARIOS = [
    ("profile: []", "demand: {type: od, trips: 10, profile: []}", "profile needs at least one weight"),
    ("duration inf", "run: {duration_s: .inf, record_interval_s: 60}", "run.duration_s"),
    ("duration nan", "run: {duration_s: .nan, record_interval_s: 60}", "run.duration_s"),
    ("duration 1e300", "run: {duration_s: 1.0e+300, record_interval_s: 60}", "2592000"),
    ("snapshot 1e-6", "run: {duration_s: 60, record_interval_s: 60, snapshot_interval_s: 1.0e-6}",
     "snapshot_interval_s"),
    ("records", "run: {duration_s: 2000000, record_interval_s: 1}", "100,000"),
    ("trips 1e11", "demand: {type: od, trips: 100000000000}", "demand.trips"),
    ("trips 1e11 text", "demand: {type: od, trips: 1e11}", "demand.trips"),
    ("seed true", "seed: true", "seed"),
    ("seed float", "seed: 1.5", "seed"),
    ("corridor edges", "city: {type: corridor, edges: 100000000, length_m: 300}", "city.edges"),
    ("grid block", "city: {type: grid, block_size_m: 1.0e+300}", "city.block_size_m"),
    ("loop on unknown lane", "sensors: {loops: [{id: x, lane: nope_0, pos_m: 10}]}", "unknown lane 'nope_0'"),
    ("loop file garbage", "sensors: {loop_files: [bad.add.xml]}", "bad.add.xml: line 1"),
    ("loop file pos", "sensors: {loop_files: [pos.add.xml]}", "pos is not a number"),
    ("trip count", "demand: {type: trips, trips: [{origin: e0, destination: e2, count: 100000000000}]}",
     "count"),
    ("probe interval", "monitoring: {vtypes: [car], probe_interval_s: 1.0e-6}", "monitoring.probe_interval_s"),
]


@pytest.mark.parametrize("label, line, expect", BAD_SCENARIOS, ids=[b[0] for b in BAD_SCENARIOS])
def test_bad_scenario_is_one_line_exit_2(tmp_path, label, line, expect):
    (tmp_path / "bad.add.xml").write_text("garbage<<")
    (tmp_path / "pos.add.xml").write_text('<additional><e1Detector id="d" lane="e1_0" pos="abc" '
                                          'period="60" file="x"/></additional>')
    base = dict(ln.split(": ", 1) for ln in SMALL.format(name="bad").strip().splitlines())
    key = line.split(":", 1)[0]
    base[key] = line.split(": ", 1)[1]
    text = "\n".join(f"{k}: {v}" for k, v in base.items()) + "\n"
    if key == "city" and "grid" in line:
        text = text.replace("trips: [{origin: e0, destination: e2, count: 20, headway_s: 5}]}",
                            "trips: [{origin: e0, destination: e2}]}")
    one_line_error(run_cli("run", scenario(tmp_path, text), "--out", tmp_path / "o", "-q"), expect)
    assert not (tmp_path / "o" / "results.nc").exists()


@pytest.fixture(scope="module")
def corridor_net(tmp_path_factory) -> Path:
    from twin.city import corridor_city
    from twin.engines.sumo.export import export_network

    return export_network(corridor_city(3, 300.0), tmp_path_factory.mktemp("net"))


def _sumocfg(tmp_path, net_file: Path, begin="0", end="60") -> Path:
    import shutil

    shutil.copy(net_file, tmp_path / "c.net.xml")
    (tmp_path / "c.rou.xml").write_text('<routes><vehicle id="v" depart="0"><route edges="e0 e1 e2"/>'
                                        "</vehicle></routes>")
    p = tmp_path / "c.sumocfg"
    p.write_text(f'<configuration><input><net-file value="c.net.xml"/><route-files value="c.rou.xml"/></input>'
                 f'<time><begin value="{begin}"/><end value="{end}"/></time></configuration>')
    return p


@pytest.mark.parametrize("begin, end, expect", [("0", "inf", "end: must be a finite time"),
                                                ("abc", "60", "begin: not a time in seconds: 'abc'"),
                                                ("0", "nan", "end: must be a finite time"),
                                                ("0", "1e300", "run.duration_s")])
def test_bad_sumocfg_times(tmp_path, corridor_net, begin, end, expect):
    one_line_error(run_cli("run", _sumocfg(tmp_path, corridor_net, begin, end), "--out", tmp_path / "o", "-q"),
                   expect)


def test_sumocfg_clock_times_are_read(tmp_path, corridor_net):
    from twin.config.sumocfg import read_sumocfg

    f = read_sumocfg(_sumocfg(tmp_path, corridor_net, "0", "1:00:30"))
    assert f.end == 3630.0


@pytest.mark.parametrize("attr, expect", [('accel="inf"', "accel must be a finite number"),
                                         ('maxSpeed="nan"', "max_speed must be a finite number"),
                                         ('accel="abc"', "could not convert")])
def test_bad_vehicle_type_in_a_route_file(tmp_path, corridor_net, attr, expect):
    p = _sumocfg(tmp_path, corridor_net)
    (tmp_path / "c.rou.xml").write_text(f'<routes><vType id="t" {attr}/><vehicle id="v" type="t" depart="0">'
                                        '<route edges="e0 e1 e2"/></vehicle></routes>')
    one_line_error(run_cli("run", p, "--out", tmp_path / "o", "-q"), "c.rou.xml", expect)


NET_DAMAGE = [
    ("length", 'speed="13.89" length="300.00"', 'speed="13.89" length="abc"', "is not a number"),
    ("shape", 'shape="0.00,-1.60 300.00,-1.60"', 'shape="0.00,-1.60 x,y"', "shape is not a list"),
    ("speed inf", 'id="e0_0" index="0" speed="13.89"', 'id="e0_0" index="0" speed="inf"', "is not a finite number"),
    ("speed 0", 'id="e0_0" index="0" speed="13.89"', 'id="e0_0" index="0" speed="0"', "is not > 0"),
    ("negative lane index", 'id="e0_0" index="0"', 'id="e0_0" index="-1"', "lane indices"),
    ("junction x", ' x="', ' x="east', "is not a number"),
    ("link index", 'fromLane="0"', 'fromLane="zero"', "is not a number"),
]


@pytest.mark.parametrize("label, old, new, expect", NET_DAMAGE, ids=[d[0] for d in NET_DAMAGE])
def test_damaged_network_is_one_line(tmp_path, corridor_net, label, old, new, expect):
    p = _sumocfg(tmp_path, corridor_net)
    net = tmp_path / "c.net.xml"
    text = net.read_text()
    assert old in text
    net.write_text(text.replace(old, new, 1))
    one_line_error(run_cli("run", p, "--out", tmp_path / "o", "-q"), "c.net.xml", expect)


def test_connections_from_unknown_edges_are_named(tmp_path, corridor_net, caplog):
    import logging

    from twin.city.sumo_net import read_sumo_net

    _sumocfg(tmp_path, corridor_net)
    net = tmp_path / "c.net.xml"
    net.write_text(net.read_text().replace("</net>", '<connection from="ghost" to="e1" fromLane="0" toLane="0"/>'
                                                    "</net>"))
    with caplog.at_level(logging.WARNING):
        city, rep = read_sumo_net(net)
    assert any("ghost" in n for n in rep.notes) and city.n_edges == 3


def test_fork_at_after_the_end_and_huge(tmp_path):
    p = scenario(tmp_path, SMALL.format(name="f").replace("120", "60"))
    one_line_error(run_cli("fork", p, "--at", "1e7", "--branch", p), "--at", "2,592,000")
    one_line_error(run_cli("fork", p, "--at", "100", "--branch", p, "--out", tmp_path / "o"),
                   "not before the end")


def test_live_port_out_of_range(tmp_path):
    one_line_error(run_cli("live", scenario(tmp_path), "--listen", "127.0.0.1:70000", "--out", tmp_path / "o"),
                   "1..65535")


def test_truncated_city_and_results_are_one_line(tmp_path):
    r = run_cli("run", scenario(tmp_path), "--out", tmp_path / "o", "-q")
    assert r.returncode == 0, r.stderr
    for name in ("city.npz", "results.nc"):
        f = tmp_path / "o" / name
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    one_line_error(run_cli("report", tmp_path / "o", "--out", tmp_path / "r.html"), "results.nc")
    cut = scenario(tmp_path, "name: cut\ncity: {type: file, path: o/city.npz}\n"
                             "demand: {type: trips, trips: [{origin: e0, destination: e2}]}\n", "cut.yaml")
    one_line_error(run_cli("run", cut, "--out", tmp_path / "o2", "-q"), "city.npz", "damaged/truncated")
