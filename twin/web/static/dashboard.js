/* twin command center: one screen of the city (docs/dashboard.md).
 * Data: /api/meta and /api/geometry once; then the live twin's /stream (server-sent events, one state per
 * recording interval, with the packed per-edge frame in state.map), or /api/map?k= for a finished run.
 * Per-edge arrays are base64 of one byte per edge in edge order (255 = no data). */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const NO_DATA = 255, REL_SCALE = 200, DIFF_SCALE = 127, VEHICLE_ZOOM = 15;
  const params = new URLSearchParams(location.search);
  const dash = window.dash = { ready: false, frames: 0, lastFrameMs: 0, sparks: {}, stations: {}, forks: {} };
  let meta = null, map = null, nEdges = 0, lastStateTime = -1, alertCount = -1, scenario = null, lastAirTime = null;

  // ------------------------------------------------------------ helpers
  function unpack(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function hms(t) {
    if (t == null || !isFinite(t)) return "–";
    t = Math.round(t); const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, s = t % 60;
    return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  }
  function fmt(v, d = 1) {
    if (v == null || (typeof v === "number" && !isFinite(v))) return "n/a";
    if (typeof v !== "number") return String(v);
    return Math.abs(v) >= 1000 ? v.toLocaleString("en", { maximumFractionDigits: 0 }) : v.toFixed(Number.isInteger(v) ? 0 : d);
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  async function getJSON(url) {
    const t = token();  // reads carry the token too, for a twin that protects them (--protect-reads)
    const r = await fetch(url, t ? { headers: { authorization: `Bearer ${t}` } } : undefined);
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  }
  function token() { return params.get("token") || sessionStorage.getItem("twin-token"); }
  async function post(url, body) {  // writes carry the bearer token (from ?token= or asked for once)
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = { "content-type": "application/json" };
      const t = token();
      if (t) headers.authorization = `Bearer ${t}`;
      const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
      if ((r.status === 401 || r.status === 403) && attempt === 0) {
        const given = window.prompt("This twin needs its access token for changes:");
        if (!given) return r;
        sessionStorage.setItem("twin-token", given.trim());
        continue;
      }
      return r;
    }
  }
  function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "badge " + (cls || ""); }

  // -------------------------------------------------------------- map
  const SPEED_COLOR = ["interpolate", ["linear"], ["feature-state", "v"],
    0, "#d73027", 0.35, "#fc8d59", 0.6, "#fee08b", 0.8, "#91cf60", 1.0, "#1a9850"];
  const DIFF_COLOR = ["interpolate", ["linear"], ["feature-state", "v"],
    -0.5, "#b2182b", -0.1, "#ef8a62", 0, "#f7f7f7", 0.1, "#67a9cf", 0.5, "#2166ac"];
  const EMIS_COLOR = ["interpolate", ["linear"], ["feature-state", "v"],
    0, "#2c2c54", 0.25, "#7b3294", 0.5, "#c2a5cf", 0.75, "#f4a582", 1.0, "#ca0020"];
  let colorMode = "speed";

  function edgeColor() {
    const ramp = colorMode === "diff" ? DIFF_COLOR : colorMode === "emission" ? EMIS_COLOR : SPEED_COLOR;
    return ["case", ["==", ["coalesce", ["feature-state", "v"], -9], -9], "#4a5260", ramp];
  }
  function legend() {
    const L = {
      speed: ["speed / limit", "linear-gradient(90deg,#d73027,#fc8d59,#fee08b,#91cf60,#1a9850)", "0 (jam)", "1 (free)"],
      diff: ["Δ speed / limit (policy − baseline)", "linear-gradient(90deg,#b2182b,#ef8a62,#f7f7f7,#67a9cf,#2166ac)", "−0.5", "+0.5"],
      emission: ["emission per km", "linear-gradient(90deg,#2c2c54,#7b3294,#c2a5cf,#f4a582,#ca0020)", "0", "max"],
    }[colorMode];
    $("legend").innerHTML = `<div>${L[0]}</div><div class="bar" style="background:${L[1]}"></div>` +
      `<div class="ends"><span>${L[2]}</span><span>${L[3]}</span></div><div style="color:#8b949e">grey: no traffic</div>`;
  }

  function bounds(b) { return [[b[0], b[1]], [b[2], b[3]]]; }
  async function initMap() {
    map = dash.map = new maplibregl.Map({
      container: "map", attributionControl: false, maxPitch: 0, dragRotate: false,
      style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#0d1117" } }] },
      center: [0, 0], zoom: 1,
    });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "top-right");
    await new Promise((res) => map.on("load", res));
    const geo = await getJSON("/api/geometry");
    nEdges = geo.edges.features.length;
    if (!geo.buildings.features.length) $("lyr-buildings").parentElement.classList.add("hidden");
    map.addSource("buildings", { type: "geojson", data: geo.buildings });
    map.addLayer({ id: "buildings", type: "fill", source: "buildings",
      paint: { "fill-color": "#2d333b", "fill-outline-color": "#3d444d", "fill-opacity": 0.8 } });
    map.addSource("edges", { type: "geojson", data: geo.edges });
    if (meta.highlighted_edges) {
      map.addLayer({ id: "policy-edges", type: "line", source: "edges", filter: ["==", ["get", "policy"], true],
        layout: { "line-cap": "round" },
        paint: { "line-color": "#00e5ff", "line-opacity": 0.55,
          "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 10, 6, 18, 40] } });
    }
    map.addLayer({ id: "edges", type: "line", source: "edges", layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": edgeColor(),
        "line-width": ["interpolate", ["exponential", 1.6], ["zoom"], 10, ["*", 0.6, ["get", "lanes"]],
          18, ["*", 7, ["get", "lanes"]]] } });
    if (meta.highlighted_edges) {  // dashed on top too: a closed edge has no traffic to colour
      map.addLayer({ id: "policy-edges-top", type: "line", source: "edges", filter: ["==", ["get", "policy"], true],
        paint: { "line-color": "#00e5ff", "line-width": 2.5, "line-dasharray": [2, 1.5] } });
    }
    for (const [id, color, radius] of [["air", null, 0], ["sensors", "#f0883e", 4], ["stations", "#a371f7", 6], ["incidents", "#ff9800", 8],
      ["units", "#4fc3f7", 6], ["alerts", "#f85149", 9], ["vehicles", "#ffffff", 2.5]]) {
      if (id === "air") continue;
      map.addSource(id, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
      map.addLayer({ id, type: "circle", source: id, ...(id === "vehicles" ? { minzoom: VEHICLE_ZOOM } : {}),
        paint: { "circle-color": id === "units" ? ["case", ["get", "busy"], "#b388ff", color] : color,
          "circle-radius": radius, "circle-stroke-width": id === "vehicles" ? 0 : 1.5, "circle-stroke-color": "#0d1117",
          ...(id === "vehicles" ? { "circle-color": ["interpolate", ["linear"], ["get", "s"], 0, "#ff5252", 14, "#ffffff"] } : {}) } });
    }
    const sensors = Object.entries(meta.sensors || {}).map(([id, ll]) => point(ll, { id }));
    map.getSource("sensors").setData({ type: "FeatureCollection", features: sensors });
    map.getSource("stations").setData({ type: "FeatureCollection",
      features: Object.entries(meta.air_stations || {}).map(([id, ll]) => point(ll, { id })) });
    map.fitBounds(bounds(geo.bounds), { padding: 30, duration: 0 });
    const popup = new maplibregl.Popup({ closeButton: false, closeOnClick: false });
    map.on("mousemove", "edges", (e) => {
      const f = e.features[0], st = map.getFeatureState({ source: "edges", id: f.id });
      const p = f.properties;
      popup.setLngLat(e.lngLat).setHTML(`<b>${p.id}</b> ${p.name || ""}<br>${p.lanes} lanes, limit ${fmt(p.limit * 3.6, 0)} km/h` +
        (st.v != null ? `<br>${colorMode}: ${fmt(st.v, 2)}` : "") + (st.d != null ? `<br>density ${fmt(st.d, 0)} veh/km/lane` : "")).addTo(map);
    });
    map.on("mouseleave", "edges", () => popup.remove());
    map.on("zoomend", () => { if (wantVehicles()) refreshVehicles(); });
    $("lyr-buildings").onchange = (e) => map.setLayoutProperty("buildings", "visibility", e.target.checked ? "visible" : "none");
    $("lyr-sensors").onchange = (e) => map.setLayoutProperty("sensors", "visibility", e.target.checked ? "visible" : "none");
    $("lyr-vehicles").onchange = (e) => { map.setLayoutProperty("vehicles", "visibility", e.target.checked ? "visible" : "none"); refreshVehicles(); };
    $("lyr-emission").onchange = (e) => { colorMode = e.target.checked ? "emission" : "speed"; restyle(); redraw(); };
    $("lyr-air").onchange = (e) => { if (map.getLayer("air")) map.setLayoutProperty("air", "visibility", e.target.checked ? "visible" : "none"); };
    legend();
    dash.edgesDrawn = nEdges;
  }
  function point(ll, props) { return { type: "Feature", properties: props || {}, geometry: { type: "Point", coordinates: ll } }; }
  function restyle() { map.setPaintProperty("edges", "line-color", edgeColor()); legend(); }

  let lastMap = null;
  function applyFrame(m) {  // one packed frame -> feature states of every edge
    if (!m || !map || !nEdges) return;
    lastMap = m;
    const t0 = performance.now();
    let values, scale, offset = 0, dens = null;
    if (m.speed_rel_diff) { values = unpack(m.speed_rel_diff); scale = DIFF_SCALE; offset = -1; }
    else if (colorMode === "emission" && m.emission) { values = unpack(m.emission.values); scale = 254; }
    else { values = unpack(m.speed_rel); scale = REL_SCALE; }
    if (m.density) dens = unpack(m.density);
    const n = Math.min(values.length, nEdges);
    for (let i = 0; i < n; i++) {
      const b = values[i];
      const st = { v: b === NO_DATA ? null : b / scale + offset };
      if (dens) st.d = dens[i] === NO_DATA ? null : dens[i];
      map.setFeatureState({ source: "edges", id: i }, st);
    }
    dash.frames++;
    dash.lastFrameMs = performance.now() - t0;
  }
  function redraw() { if (lastMap) applyFrame(lastMap); }

  function wantVehicles() { return map && map.getZoom() >= VEHICLE_ZOOM && $("lyr-vehicles").checked; }
  function drawVehicles(v) {
    if (!v || !map) return;
    const ll = new Float32Array(unpack(v.lonlat).buffer), sp = unpack(v.speed), feats = [];
    for (let i = 0; i < v.n; i++) feats.push(point([ll[2 * i], ll[2 * i + 1]], { s: sp[i] / 2 }));
    map.getSource("vehicles").setData({ type: "FeatureCollection", features: feats });
  }
  async function refreshVehicles() {
    if (!wantVehicles()) return;
    const q = meta.mode === "live" ? "" : `&k=${$("slider").value}`;
    try { drawVehicles((await getJSON(`/api/map?vehicles=1${q}`)).vehicles); } catch (e) { /* next frame */ }
  }

  // ----------------------------------------------------------- sensors
  function sparkOpts(w) {
    return { width: w, height: 34, legend: { show: false }, cursor: { show: false }, select: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: "#f0883e", width: 1.5, spanGaps: false }, { stroke: "#58a6ff", width: 1.2 }] };
  }
  function buildSensors(ids) {
    const box = $("sensors");
    box.innerHTML = "";
    for (const id of ids) {
      const chart = el("div", { class: "spark" }), vals = el("span", { class: "vals" }, "–");
      const row = el("div", { class: "sensor", "data-sensor": id, title: id,
        onclick: () => { const ll = (meta.sensors || {})[id]; if (ll) map.flyTo({ center: ll, zoom: 17 }); } },
        el("span", { class: "sid" }, id), chart, vals);
      box.append(row);
      dash.sparks[id] = { plot: new uPlot(sparkOpts(190), [[], [], []], chart), row, vals };
    }
  }
  async function refreshSensors(k) {
    const q = k == null ? "" : `&k=${k}`;
    const h = await getJSON(`/api/sensors?last=60${q}`);
    for (const [id, s] of Object.entries(h.sensors)) {
      const sp = dash.sparks[id];
      if (!sp) continue;
      sp.plot.setData([h.times, s.observed, s.simulated]);
      const o = s.observed.length ? s.observed[s.observed.length - 1] : null;
      const m = s.simulated.length ? s.simulated[s.simulated.length - 1] : null;
      sp.vals.textContent = `${o == null ? "–" : fmt(o, 0)} / ${m == null ? "–" : fmt(m, 0)}`;
      sp.row.dataset.observed = JSON.stringify(s.observed);
    }
  }
  function buildStations(ids) {  // air-quality stations: modelled vs observed, beside the loops
    for (const id of ids) {
      const chart = el("div", { class: "spark" }), vals = el("span", { class: "vals" }, "–");
      const row = el("div", { class: "sensor station", "data-station": id, title: `air-quality station ${id}`,
        onclick: () => { const ll = (meta.air_stations || {})[id]; if (ll) map.flyTo({ center: ll, zoom: 16 }); } },
        el("span", { class: "sid" }, "◆ " + id), chart, vals);
      $("sensors").append(row);
      dash.stations[id] = { plot: new uPlot(sparkOpts(150), [[], [], []], chart), row, vals };
    }
  }
  function showStations(a) {
    if (!a) return;
    for (const [id, s] of Object.entries(a.stations)) {
      const sp = dash.stations[id];
      if (!sp) continue;
      sp.plot.setData([a.times, s.observed, s.modelled]);
      const o = s.observed.length ? s.observed[s.observed.length - 1] : null;
      const m = s.modelled.length ? s.modelled[s.modelled.length - 1] : null;
      sp.vals.textContent = `${s.pollutant} ${o == null ? "–" : fmt(o, 0)} / ${m == null ? "–" : fmt(m, 0)} µg/m³`;
      sp.row.dataset.observed = JSON.stringify(s.observed);
      sp.row.dataset.modelled = JSON.stringify(s.modelled);
    }
  }
  function showAssimilation(a) {
    if (!a) return;
    const box = $("assimilation");
    box.classList.remove("hidden");
    const m = Object.values(a.multipliers || {}).sort((x, y) => x - y);
    box.innerHTML = `<div>assimilation: ${a.updates ?? 0} updates every ${fmt(a.interval_s, 0)} s` +
      (m.length ? `, ${m.length} ${a.groups || ""} multipliers ${fmt(m[0], 2)}–${fmt(m[m.length - 1], 2)}` : "") +
      `${a.trips_admitted != null ? `; ${a.trips_admitted} trips admitted, ${a.trips_cancelled} cancelled` : ""}</div>`;
  }

  // ---------------------------------------------------- alerts, incidents
  function showAlerts(alerts) {
    if (!alerts) return;
    $("sec-alerts").classList.remove("hidden");
    $("alertcount").textContent = alerts.length;
    const ul = $("alerts");
    ul.innerHTML = "";
    for (const a of alerts.slice().reverse()) {
      ul.append(el("li", { "data-vehicle": a.vehicle, onclick: () => a.lonlat && map.flyTo({ center: a.lonlat, zoom: 17 }) },
        el("b", {}, "⚠ abnormal stop "), `${a.vehicle} on ${a.edge} since ${hms(a.stopped_since_s)} (alert ${hms(a.time_s)})`));
    }
    map.getSource("alerts").setData({ type: "FeatureCollection",
      features: alerts.filter((a) => a.lonlat).map((a) => point(a.lonlat, { vehicle: a.vehicle })) });
  }
  function showIncidents(inc, units) {
    if (!inc && !units) return;
    $("sec-incidents").classList.remove("hidden");
    const ul = $("incidents");
    ul.innerHTML = "";
    for (const i of inc || []) ul.append(el("li", { onclick: () => map.flyTo({ center: i.lonlat, zoom: 16 }) },
      `● ${i.kind} on ${i.edge} (reported ${hms(i.reported_s)})${i.unit && i.unit !== "None" ? `, unit ${i.unit}` : ""}`));
    const busy = (units || []).filter((u) => u.busy).length;
    ul.append(el("li", {}, `${(units || []).length} units, ${busy} at a scene`));
    map.getSource("incidents").setData({ type: "FeatureCollection", features: (inc || []).map((i) => point(i.lonlat, { kind: i.kind })) });
    map.getSource("units").setData({ type: "FeatureCollection", features: (units || []).map((u) => point(u.lonlat, { id: u.id, busy: u.busy })) });
  }
  let epiPlot = null, epiData = null;
  function showEpidemic(e) {
    if (!e) return;
    epiData = dash.epidemic = e;
    $("sec-epidemic").classList.remove("hidden");
    const days = e.time_s.map((t) => t / 86400),
      data = [days, e.susceptible || [], e.exposed || [], e.infectious || [], e.recovered || []];
    if (!epiPlot) {
      epiPlot = new uPlot({ width: 370, height: 160, scales: { x: { time: false } },
        axes: [{ stroke: "#8b949e", grid: { stroke: "#21262d" }, label: "day" }, { stroke: "#8b949e", grid: { stroke: "#21262d" } }],
        series: [{}, { label: "S", stroke: "#58a6ff" }, { label: "E", stroke: "#d29922" }, { label: "I", stroke: "#f85149" },
          { label: "R", stroke: "#3fb950" }] }, data, $("epichart"));
    } else epiPlot.setData(data);
  }
  function liveEpidemic(p) {  // live: the state's latest point of the curve; the whole curve when one was missed
    if (!p || !p.n) return;
    const have = epiData ? epiData.time_s.length : 0;
    if (have === p.n) return;
    if (have && have + 1 === p.n) {
      const e = {};
      for (const k of Object.keys(epiData)) e[k] = epiData[k].concat([p[k]]);
      showEpidemic(e);
    } else getJSON("/api/overlays").then((o) => showEpidemic(o.epidemic)).catch(() => {});
  }
  function showModes(m) {
    if (!m) return;
    $("sec-modes").classList.remove("hidden");
    $("modes").className = "bars";
    $("modes").innerHTML = Object.entries(m).map(([k, v]) =>
      `<div><span style="width:70px">${k}</span><i style="width:${Math.round(v * 250)}px"></i>${(v * 100).toFixed(1)} %</div>`).join("");
  }
  function showAir(a) {
    if (!a) return;
    $("sec-air").classList.remove("hidden");
    const vals = unpack(a.values), c = document.createElement("canvas");
    c.width = a.width; c.height = a.height;
    const ctx = c.getContext("2d"), img = ctx.createImageData(a.width, a.height);
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i] === NO_DATA ? 0 : vals[i] / 254;
      img.data[4 * i] = 255; img.data[4 * i + 1] = Math.round(220 * (1 - v)); img.data[4 * i + 2] = 0;
      img.data[4 * i + 3] = Math.round(200 * Math.sqrt(v));
    }
    ctx.putImageData(img, 0, 0);
    const url = c.toDataURL();
    if (map.getSource("air")) map.getSource("air").updateImage({ url, coordinates: a.corners });
    else {
      map.addSource("air", { type: "image", url, coordinates: a.corners });
      map.addLayer({ id: "air", type: "raster", source: "air", paint: { "raster-opacity": 0.7, "raster-resampling": "nearest" },
        layout: { visibility: $("lyr-air").checked ? "visible" : "none" } }, "edges");
    }
    const w = a.weather, f = a.feed;
    $("airinfo").textContent = `${a.pollutant} ${fmt(a.min, 1)}–${fmt(a.max, 1)} ${a.units} (layer: lowest clear, highest red)` +
      (w ? `; wind ${fmt(w.wind_speed_ms, 1)} m/s from ${fmt(w.wind_direction_deg, 0)}°, class ${w.stability}` : "") +
      (f ? `; station/weather records ${f.accepted} ok / ${f.rejected} rejected` : "");
    $("airinfo").dataset.weather = JSON.stringify(w || null);
  }
  function showOverlays(o) {
    if (!o) return;
    showAssimilation(o.assimilation); showAlerts(o.alerts); showIncidents(o.incidents, o.units); showEpidemic(o.epidemic); showModes(o.modes); showAir(o.air);
    showStations(o.air_stations);
  }

  // ------------------------------------------------- network time series
  const NET_COLORS = ["#58a6ff", "#d29922", "#3fb950", "#f778ba"];
  let netPlot = null, netData = null, netCursor = null;
  function netChart(times, series) {  // series: {name: [values per time]}
    const names = Object.keys(series);
    netData = [times.slice(), ...names.map((n) => series[n].slice())];
    if (netPlot) { netPlot.setData(netData); return; }
    netPlot = new uPlot({ width: 370, height: 150, scales: { x: { time: false } }, legend: { show: true },
      axes: [{ stroke: "#8b949e", grid: { stroke: "#21262d" }, values: (u, v) => v.map((t) => hms(t).slice(0, 5)) },
        { stroke: "#8b949e", grid: { stroke: "#21262d" } }],
      series: [{ label: "time", value: (u, v) => hms(v) }, ...names.map((n, i) => ({ label: n, stroke: NET_COLORS[i % 4], width: 1.5 }))],
      hooks: { draw: [(u) => {  // the slider's moment
        if (netCursor == null) return;
        const x = u.valToPos(netCursor, "x", true), c = u.ctx;
        c.save(); c.strokeStyle = "#e6edf3"; c.setLineDash([4, 3]); c.beginPath();
        c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke(); c.restore();
      }] } }, netData, $("netchart"));
  }
  function netPush(t, values) {  // live: one state more
    if (!netData) { netChart([t], Object.fromEntries(Object.entries(values).map(([k, v]) => [k, [v]]))); return; }
    if (t <= netData[0][netData[0].length - 1]) return;
    netData[0].push(t);
    Object.values(values).forEach((v, i) => netData[i + 1].push(v));
    netPlot.setData(netData);
  }

  // ---------------------------------------------------------- KPIs, clock
  function kpis(pairs) {
    $("kpis").innerHTML = pairs.map(([k, v, u]) => `<div class="kpi"><label>${k}</label><span>${fmt(v)}${u ? " " + u : ""}</span></div>`).join("");
  }
  setInterval(() => { $("realclock").textContent = new Date().toISOString().slice(11, 19) + " UTC"; }, 500);

  // --------------------------------------------------------------- live
  function onState(st) {
    $("simclock").textContent = hms(st.time_s);
    setStatus(st.status || "running", st.status);
    const f = st.feed || {};
    kpis([["running", st.running], ["waiting", st.waiting], ["arrived", st.arrived], ["teleports", st.teleports],
      ["records", f.accepted != null ? `${f.accepted} ok / ${f.rejected} rejected` : null]]);
    if (st.map && st.time_s !== lastStateTime) {
      lastStateTime = st.time_s;
      netPush(st.time_s, { running: st.running, waiting: st.waiting, arrived: st.arrived });
      applyFrame(st.map);
      refreshSensors().catch(() => {});
      refreshVehicles();
    }
    if (st.assimilation) showAssimilation(st.assimilation);
    if (st.epidemic) liveEpidemic(st.epidemic);
    if (st.air && st.air.time_s != null && st.air.time_s !== lastAirTime) {  // a new field and station values
      lastAirTime = st.air.time_s;
      getJSON("/api/overlays").then(showOverlays).catch(() => {});
    }
    if (st.modes && st.modes.trips) { showModes(st.modes.shares); dash.modeTrips = st.modes.trips; }
    const n = (st.alerts || []).length;
    if (meta.panels.alerts && n !== alertCount) {
      alertCount = n;
      getJSON("/api/overlays").then(showOverlays).catch(() => {});
    }
    if (st.forks) showForks(st.forks);
  }
  function connect() {
    const t = token();  // EventSource cannot send headers: the token goes in the query
    const es = new EventSource(t ? `/stream?token=${encodeURIComponent(t)}` : "/stream");
    es.onmessage = (ev) => {
      const st = JSON.parse(ev.data);
      if (st.alerts && st.status === undefined && st.running === undefined) {  // an alert pushed between states
        alertCount = -1; getJSON("/api/overlays").then(showOverlays).catch(() => {}); return;
      }
      onState(st);
      if (st.status === "finished") es.close();
    };
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) setStatus("disconnected", "error"); };
  }

  // ------------------------------------------------------------ what-if
  function buildLibrary() {
    $("sec-whatif").classList.remove("hidden");
    const lib = $("library");
    lib.innerHTML = meta.policies.length ? "" : '<div class="hint" style="float:none">the scenario lists no policies: write one below</div>';
    meta.policies.forEach((p, i) => lib.append(el("label", {}, el("input", { type: "checkbox", "data-policy": i }), " " + p.label)));
    $("forkbtn").onclick = forkNow;
  }
  async function forkNow() {
    const branches = {};
    document.querySelectorAll("#library input:checked").forEach((c) => {
      const p = meta.policies[+c.dataset.policy]; branches[p.label] = [p.policy];
    });
    const custom = $("custompolicy").value.trim();
    $("forkmsg").textContent = "";
    if (custom) {
      try { const p = JSON.parse(custom); branches[`custom ${p.type || ""}`.trim()] = Array.isArray(p) ? p : [p]; }
      catch (e) { $("forkmsg").textContent = "the policy is not JSON: " + e.message; return; }
    }
    if (!Object.keys(branches).length) { $("forkmsg").textContent = "choose at least one policy"; return; }
    const r = await post("/fork", { horizon_s: 60 * +$("horizon").value, branches });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { $("forkmsg").textContent = `refused (${r.status}): ${body.detail || ""}`; return; }
    dash.forks[body.id] = { status: "queued" };
    showForks({ [body.id]: { status: "queued", branches: Object.keys(branches) } });
  }
  const KPI_ROWS = [["trips_completed", "trips completed", 1], ["mean_travel_time_s", "mean travel time [s]", -1],
    ["vehicle_hours_travelled", "vehicle hours", -1], ["vehicle_km_travelled", "vehicle km", 0], ["co2_kg", "CO₂ [kg]", -1],
    ["trips_unserved", "trips not served", -1], ["trips_running", "running at end", -1], ["teleports", "teleports", -1]];
  function showForks(forks) {
    const box = $("forks");
    for (const [id, f] of Object.entries(forks)) {
      let div = box.querySelector(`[data-fork="${id}"]`);
      if (!div) { div = el("div", { class: "fork", "data-fork": id }); box.prepend(div); }
      const known = dash.forks[id] || {};
      if (known.status === "done") continue;
      dash.forks[id] = Object.assign(known, f);
      if (f.status === "done" && !known.fetching) {
        known.fetching = true;
        getJSON(`/forks/${id}`).then((full) => { dash.forks[id] = full; forkTable(div, id, full); }).catch(() => { known.fetching = false; });
      } else if (f.status !== "done") {
        div.innerHTML = `<h3>${id}: ${f.status}${f.error ? " — " + f.error : ""}</h3>`;
        div.dataset.status = f.status;
      }
    }
  }
  function forkTable(div, id, full) {
    const r = full.result, names = Object.keys(r.branches), base = r.branches["no-action"];
    let html = `<details open><summary><h3>${id}: from ${hms(r.fork_time_s)} for ${fmt(r.horizon_s / 60, 0)} min</h3></summary>` +
      "<table><tr><th></th>" +
      names.map((n) => `<th>${n}</th>`).join("") + "</tr>";
    for (const [k, label, sign] of KPI_ROWS) {
      html += `<tr><td>${label}</td>` + names.map((n) => {
        const v = r.branches[n][k];
        if (n === "no-action") return `<td>${fmt(v)}</td>`;
        const d = v - base[k], cls = !sign || !d ? "" : (d * sign > 0 ? "better" : "worse");
        return `<td class="${cls}">${fmt(v)}<br><small>${d > 0 ? "+" : ""}${fmt(d)}</small></td>`;
      }).join("") + "</tr>";
    }
    div.innerHTML = html + "</table></details>";  // folds away once read (a click on its title)
    div.dataset.status = "done";
  }
  setInterval(() => {  // forks finish between states: ask for those still running
    for (const [id, f] of Object.entries(dash.forks)) {
      if (f.status === "queued" || f.status === "running") getJSON(`/forks/${id}`).then((s) => showForks({ [id]: s })).catch(() => {});
    }
  }, 2000);

  // ------------------------------------------------------- finished runs
  async function loadRunFrame(k) {
    const q = meta.mode === "compare" ? `&scenario=${encodeURIComponent(scenario)}` : "";
    const fr = await getJSON(`/api/map?k=${k}${q}`);
    $("simclock").textContent = hms(fr.time_s);
    $("slidertime").textContent = hms(fr.time_s);
    netCursor = fr.time_s; if (netPlot) netPlot.redraw(false, false);
    applyFrame(fr.map);
    refreshVehicles();
    if (meta.mode === "run") {
      refreshSensors(k).catch(() => {});
      showOverlays(await getJSON(`/api/overlays?k=${k}`));
    }
  }
  function initTimebar() {
    const n = meta.times.length;
    $("timebar").classList.remove("hidden");
    const s = $("slider");
    s.max = Math.max(0, n - 1); s.value = Math.max(0, n - 1);
    let pending = null;
    s.oninput = () => { clearTimeout(pending); pending = setTimeout(() => loadRunFrame(+s.value), 60); };
    let timer = null;
    $("play").onclick = () => {
      if (timer) { clearInterval(timer); timer = null; $("play").textContent = "▶"; return; }
      $("play").textContent = "❚❚";
      timer = setInterval(() => { s.value = (+s.value + 1) % n; loadRunFrame(+s.value); }, 700);
    };
    const sel = $("scenario");
    if (meta.mode === "compare") {
      for (const sc of meta.scenarios) sel.append(el("option", { value: sc }, sc === "difference" ? "difference (policy − baseline)" : sc));
      scenario = "difference"; sel.value = scenario;
      sel.onchange = () => { scenario = sel.value; colorMode = scenario === "difference" ? "diff" : "speed"; restyle(); loadRunFrame(+s.value); };
      colorMode = "diff"; restyle();
    } else sel.classList.add("hidden");
  }
  function compareTable() {
    $("sec-compare").classList.remove("hidden");
    const rows = Object.entries(meta.kpis || {});
    $("comparekpis").innerHTML = `<tr><th>KPI</th><th>${meta.baseline}</th><th>${meta.policy}</th><th>difference</th></tr>` +
      rows.map(([k, s]) => `<tr><td>${k}</td><td>${fmt(s.baseline_mean, 2)}</td><td>${fmt(s.policy_mean, 2)}</td>` +
        `<td class="diffcell">${fmt(s.difference, 2)}${s.significant ? " *" : ""}</td></tr>`).join("");
  }

  // --------------------------------------------------------------- start
  async function start() {
    try {
      meta = dash.meta = await getJSON("/api/meta");
      $("name").textContent = meta.name;
      $("mode").textContent = meta.mode === "live" ? "live" : meta.mode === "compare" ? "comparison" : "finished run";
      document.title = `twin — ${meta.name}`;
      document.querySelectorAll(".air-only").forEach((e) => e.classList.toggle("hidden", !meta.panels.air));
      document.querySelectorAll(".emission-only").forEach((e) => e.classList.add("hidden"));
      await initMap();
      const ids = meta.mode === "live" ? Object.keys(meta.sensors) : (meta.sensor_ids || []);
      buildSensors(ids);
      buildStations(Object.keys(meta.air_stations || {}));
      if (!ids.length) $("sec-sensors").classList.add("hidden");
      if (meta.mode === "live") {
        buildLibrary();
        if (meta.panels.alerts) $("sec-alerts").classList.remove("hidden");
        $("sec-modes").querySelector("h2").textContent = "Mode shares (trips started today)";
        connect();
      } else {
        initTimebar();
        if (meta.series) netChart(meta.times, meta.series);
        if (meta.mode === "compare") { compareTable(); setStatus("comparison", "finished"); }
        else {
          setStatus("finished", "finished");
          kpis(Object.entries(meta.kpis || {}).filter(([k, v]) => typeof v === "number").slice(0, 6).map(([k, v]) => [k.replace(/_/g, " "), v]));
        }
        await loadRunFrame(+$("slider").value);
        if (lastMap && lastMap.emission) document.querySelectorAll(".emission-only").forEach((e) => e.classList.remove("hidden"));
      }
      dash.ready = true;
      document.body.dataset.ready = "1";
    } catch (e) {
      setStatus("error", "error");
      console.error(e);
    }
  }
  start();
})();
