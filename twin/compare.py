"""``run_sim.py compare``: a policy scenario against its baseline over replications."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twin.config.models import ScenarioConfig
from twin.ensemble import run_ensemble
from twin.results.comparison import compare_kpis, edge_changes, stack, summary_markdown
from twin.core.interrupt import deferred
from twin.core.files import write_text_atomic
from twin.results.io import write_json, write_netcdf
from twin.results.kpis import KPI_UNITS, kpi_units


def compare(policy: ScenarioConfig, baseline: ScenarioConfig, replications: int, out: str | Path, *,
            base_seed: int = 0, scheduler: str | None = None,
            progress: Callable[[int, int], None] | None = None, city=None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if city is not None:  # the geometry for maps of the comparison
        city.save(out / "city.npz")
    bname, pname = baseline.name, policy.name
    ens = run_ensemble({bname: baseline, pname: policy}, replications, base_seed=base_seed, scheduler=scheduler,
                       progress=progress)
    with deferred():  # a signal now waits for the files to be whole
        return _write(out, ens, policy, baseline, replications, base_seed)


def _write(out: Path, ens, policy: ScenarioConfig, baseline: ScenarioConfig, replications: int,
           base_seed: int) -> dict:
    bname, pname = baseline.name, policy.name
    b_ok, p_ok = ens.ok(bname), ens.ok(pname)
    failed = [(r.name, r.error) for r in ens.failed]
    stats = compare_kpis({r: t.kpis for r, t in b_ok.items()}, {r: t.kpis for r, t in p_ok.items()})
    report: dict = {"scenario": pname, "baseline": bname, "replications": replications,
                    "seeds": [base_seed + i for i in range(replications)],
                    "paired_replications": sorted(set(b_ok) & set(p_ok)), "kpis": stats,
                    "policies": [p.model_dump(mode="json") for p in policy.policies],  # maps highlight their edges
                    "failed": [{"replication": n, "error": e} for n, e in failed],
                    "partial": bool(ens.interrupted)}
    if ens.interrupted:
        report["interrupted"] = ens.interrupted
    if b_ok and p_ok:
        ds = stack({bname: {r: t.dataset for r, t in b_ok.items()}, pname: {r: t.dataset for r, t in p_ok.items()}})
        ds.attrs.update({"baseline": bname, "policy": pname, "replications": replications,
                         "seeds": [base_seed + i for i in range(replications)]})
        ds.attrs["partial"] = bool(ens.interrupted)
        write_netcdf(ds, out / "compare.nc")
        report["edges"] = edge_changes(ds, bname, pname)
    else:
        report["edges"] = {"gained": [], "lost": []}
    units: dict[str, str] = dict(KPI_UNITS)  # and those the runs' components declared
    for t in (*b_ok.values(), *p_ok.values()):
        units.update(kpi_units(t.dataset))
    md = summary_markdown(pname, bname, stats, report["edges"], len(report["paired_replications"]), failed, units)
    write_text_atomic(out / "compare.md", md)
    write_json(out / "compare.json", report)
    report["markdown"] = md
    return report
