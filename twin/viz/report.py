"""``run_sim.py report``: one self-contained HTML file (images embedded) for a run or a comparison."""
from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from pathlib import Path


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430}
h1{margin-bottom:.2rem} .sub{color:#555;margin-top:0} table{border-collapse:collapse;margin:1rem 0}
td,th{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:right} th{background:#f3f5f8}
td:first-child,th:first-child{text-align:left} img{max-width:100%;border:1px solid #ddd;margin:.5rem 0}
.sig{color:#b00020;font-weight:600} .grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:,.2f}"
    return html.escape(f"{v:,}" if isinstance(v, int) else str(v))


def run_report(results_dir: str | Path, out: str | Path, *, stills: bool = True) -> Path:
    from twin.results.io import open_results
    from twin.results.kpis import kpi_units
    from twin.viz.charts import kpi_timeseries, speed_heatmap

    d = Path(results_dir)
    ds = open_results(d)
    kpis = json.loads((d / "kpis.json").read_text())
    manifest = json.loads((d / "manifest.json").read_text())
    cfg = manifest.get("config", {})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = [_img(kpi_timeseries(ds, tmp / "ts.png"), "vehicles over time"),
                  _img(speed_heatmap(ds, tmp / "heat.png"), "speed heat map")]
        air = []
        if "concentration" in ds:
            from twin.city.model import CityModel
            from twin.viz.charts import concentration_map

            city_m = CityModel.load(d / "city.npz") if (d / "city.npz").is_file() else None
            for pol in ds["air_pollutant"].values:
                air.append(_img(concentration_map(ds, tmp / f"air_{pol}.png", str(pol), city_m),
                                f"{pol} concentration map"))
        views = []
        if stills and (d / "city.npz").is_file():
            from twin.viz.render import render_still

            for cam in ("overview", "street"):
                render_still(d, tmp / f"{cam}.png", camera=cam, size=(1200, 760))
                views.append(_img(tmp / f"{cam}.png", f"3D view ({cam})"))
        units = kpi_units(ds)
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td><td>{units.get(k, '')}</td></tr>"
                       for k, v in kpis.items())
        city = manifest.get("city", {})
        body = f"""
<h1>{html.escape(str(manifest.get('scenario', '')))}</h1>
<p class="sub">{html.escape(str(cfg.get('description', '')))}</p>
<p>City <b>{html.escape(str(city.get('name', '')))}</b>: {city.get('edges', '?')} edges, {city.get('traffic_lights', '?')}
signals, {city.get('buildings', '?')} buildings. Engine <b>{html.escape(str(manifest.get('engine')))}</b>, seed
{manifest.get('seed')}, {manifest.get('demand', {}).get('trips', '?')} trips, config hash
<code>{html.escape(str(manifest.get('config_hash', ''))[:12])}</code>, simulated in {manifest.get('simulate_s')} s.</p>
<h2>Key performance indicators</h2><table><tr><th>KPI</th><th>value</th><th>unit</th></tr>{rows}</table>
<h2>Over time</h2>{''.join(images)}
{'<h2>Air quality</h2><div class="grid">' + ''.join(air) + '</div>' if air else ''}
{'<h2>The city</h2><div class="grid">' + ''.join(views) + '</div>' if views else ''}
"""
    return _write(out, f"twin report: {manifest.get('scenario', '')}", body)


def compare_report(compare_dir: str | Path, out: str | Path) -> Path:
    from twin.viz.charts import comparison_bars

    d = Path(compare_dir)
    c = json.loads((d / "compare.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        imgs = [_img(comparison_bars(c, tmp / "bars.png"), "KPI changes")]
        if (d / "city.npz").is_file() and (d / "compare.nc").is_file():
            from twin.viz.render import render_compare_summary

            render_compare_summary(d, tmp / "diff.png")
            imgs.append(_img(tmp / "diff.png", "speed change on the map"))
        rows = []
        for k, s in c["kpis"].items():
            ci = "n/a" if s.get("ci95_low") is None or not math.isfinite(s["ci95_low"]) else \
                f"[{s['ci95_low']:,.2f}, {s['ci95_high']:,.2f}]"
            sig = '<span class="sig">significant</span>' if s.get("significant") else ""
            rows.append(f"<tr><td>{html.escape(k)}</td><td>{_fmt(s['baseline_mean'])}</td>"
                        f"<td>{_fmt(s['policy_mean'])}</td><td>{s['difference']:+,.2f}</td><td>{ci}</td><td>{sig}</td></tr>")
        edges = "".join(f"<tr><td>{html.escape(e['edge'])}</td><td>{e['baseline']:,.1f}</td><td>{e['policy']:,.1f}</td>"
                        f"<td>{e['difference']:+,.1f}</td></tr>" for e in c["edges"]["gained"] + c["edges"]["lost"])
        failed = "".join(f"<li>{html.escape(f['replication'])}: {html.escape(f['error'])}</li>" for f in c["failed"])
        body = f"""
<h1>{html.escape(c['scenario'])} against {html.escape(c['baseline'])}</h1>
<p class="sub">{len(c['paired_replications'])} paired replications (seeds {c['seeds']}), common random numbers,
95 % confidence intervals of the differences.</p>
<table><tr><th>KPI</th><th>baseline</th><th>policy</th><th>difference</th><th>95 % CI</th><th></th></tr>
{''.join(rows)}</table>
{''.join(imgs)}
<h2>Edges that changed most (vehicles entering over the run)</h2>
<table><tr><th>edge</th><th>baseline</th><th>policy</th><th>difference</th></tr>{edges}</table>
{'<h2>Failed replications</h2><ul>' + failed + '</ul>' if failed else ''}
"""
    return _write(out, f"twin comparison: {c['scenario']}", body)


def _write(out: str | Path, title: str, body: str) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                   f'<style>{STYLE}</style></head><body>{body}</body></html>\n', encoding="utf-8")
    return out


def report(path: str | Path, out: str | Path) -> Path:
    """A run's results directory or a comparison directory (with compare.json)."""
    d = Path(path)
    if (d / "compare.json").is_file():
        return compare_report(d, out)
    if (d / "results.nc").is_file():
        return run_report(d, out)
    raise FileNotFoundError(f"{d}: neither results.nc nor compare.json here")


__all__ = ["report", "run_report", "compare_report"]
