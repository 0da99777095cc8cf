// fleetmatch dashboard: renders the JSON of fleetmatch/dashboard/views.py, pushed over SSE by
// /dashboard/api/stream (one "snapshot" with the history, then "update"s with one point each).
// Hand-written, no framework and no build step; charts are inline SVG. User data (names, messages)
// only ever goes through textContent, never innerHTML.
"use strict";

const HISTORY_MS = 10 * 60 * 1000;
const STATES = ["Ready", "Allocated", "Reserved", "Scheduled", "Creating", "RequestReady", "Unhealthy", "Error", "Shutdown"];
const COLORS = { desired: "#e2e8f0", ready: "#22c55e", allocated: "#38bdf8", failures: "#f43f5e", rate: "#38bdf8" };
const STATE_COLORS = { Ready: "#22c55e", Allocated: "#38bdf8", Reserved: "#a78bfa", Unhealthy: "#f43f5e", Error: "#f43f5e", Shutdown: "#64748b" };

let history = [];
let state = null;
let stateFilter = new Set();
const openRows = new Set();

// -- small DOM helpers ----------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    // style through the CSSOM: the page's Content-Security-Policy refuses inline style attributes
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
const $ = (id) => document.getElementById(id);
function fmtAge(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const fmtSec = (s) => (s === null || s === undefined ? "–" : s < 10 ? `${s.toFixed(2)}s` : fmtAge(s));
const fmtNum = (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: 2 }));

// -- charts -----------------------------------------------------------------------------------
function lineChart(svg, series, { step = true, bars = false } = {}) {
  const w = Math.max(200, Math.round(svg.clientWidth || 600)), h = Math.max(80, Math.round(svg.clientHeight || 150));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const left = 34, right = 8, top = 8, bottom = 20;
  const now = state ? Date.parse(state.at) : Date.now();
  const oldest = history.length ? history[0].t : now;
  const span = Math.max(60 * 1000, now - oldest);
  let max = 0;
  for (const s of series) for (const [, v] of s.points) max = Math.max(max, v);
  max = max <= 1 ? 1 : Math.ceil(max * 1.15);
  const x = (t) => left + ((t - (now - span)) / span) * (w - left - right);
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac, yy = y(v);
    svg.append(svgEl("line", { x1: left, x2: w - right, y1: yy, y2: yy, class: "grid" }));
    const label = svgEl("text", { x: left - 6, y: yy + 4, "text-anchor": "end" });
    label.textContent = Number.isInteger(v) ? v : v.toFixed(1);
    svg.append(label);
  }
  const minutes = Math.round(span / 60000);
  for (const [t, text, anchor] of [[now - span, `-${minutes}m`, "start"], [now, "now", "end"]]) {
    const label = svgEl("text", { x: x(t), y: h - 5, "text-anchor": anchor });
    label.textContent = text;
    svg.append(label);
  }
  for (const s of series) {
    if (!s.points.length) continue;
    if (bars) { // one bar per sample: discrete events read better as bars than as spikes
      const width = Math.max(2, ((w - left - right) * 1000) / span - 1);
      for (const [t, v] of s.points) {
        if (v > 0) svg.append(svgEl("rect", { x: (x(t) - width).toFixed(1), y: y(v).toFixed(1), width: width.toFixed(1), height: (y(0) - y(v)).toFixed(1), fill: s.color, rx: 1 }));
      }
      continue;
    }
    let d = "";
    s.points.forEach(([t, v], i) => {
      const px = x(t).toFixed(1), py = y(v).toFixed(1);
      if (i === 0) d += `M${px},${py}`;
      else d += step ? `H${px}V${py}` : `L${px},${py}`;
    });
    d += `H${x(now).toFixed(1)}`;
    svg.append(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": s.width || 2, "stroke-dasharray": s.dash || "", "stroke-linejoin": "round" }));
  }
}
function legend(items) {
  return el("div", { class: "legend" }, ...items.map(([label, color]) => el("span", {}, el("i", { style: `background:${color}` }), label)));
}

// -- panels ------------------------------------------------------------------------------------
function tile(label, value, sub, tone, key) {
  return el("div", { class: `tile ${tone || ""}`, "data-tile": key }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), el("div", { class: "sub", text: sub || "" }));
}
function minuteRate() {
  // the mean of the per-second samples of the last minute: steadier to read than the last second
  const recent = history.filter((p) => p.t >= (history.length ? history[history.length - 1].t : 0) - 60000);
  return recent.length ? Math.round((100 * recent.reduce((a, p) => a + p.allocationsPerSecond, 0)) / recent.length) / 100 : 0;
}
function renderTiles(s) {
  const m = s.summary;
  $("tiles").replaceChildren(
    tile("Game servers", fmtNum(m.gameServers), `${m.fleets} fleet${m.fleets === 1 ? "" : "s"}${m.unhealthy ? ` · ${m.unhealthy} unhealthy` : ""}`, "", "servers"),
    tile("Ready", fmtNum(m.ready), "free to allocate", "good", "ready"),
    tile("Allocated", fmtNum(m.allocated), "in a game", "info", "allocated"),
    tile("Allocations / s", fmtNum(minuteRate()), `last minute · now ${fmtNum(m.allocationsPerSecond)}/s · ${fmtNum(s.allocations.allocated)} in all`, "", "rate"),
    tile("Failures", fmtNum(m.failuresLastMinute), "allocation failures, last minute", m.failuresLastMinute ? "warn" : "", "failures"),
    tile("Players waiting", m.waitingPlayers === null ? "–" : fmtNum(m.waitingPlayers), m.timeToMatchP95 === null ? "time to match p95 –" : `time to match p95 ${fmtSec(m.timeToMatchP95)}`, "", "waiting"),
  );
}
function renderErrors(s) {
  const entries = Object.entries(s.errors || {});
  const box = $("errors");
  box.hidden = entries.length === 0;
  box.replaceChildren(...entries.map(([k, v]) => el("div", {}, el("b", { text: `${k}: ` }), v)));
}
function fleetCard(f) {
  const total = Math.max(1, f.current);
  const bar = el("div", { class: "stack", title: Object.entries(f.states).map(([k, v]) => `${k} ${v}`).join(", ") },
    ...STATES.filter((st) => f.states[st]).map((st) => el("span", { style: `width:${(100 * f.states[st]) / total}%;background:${STATE_COLORS[st] || "#f59e0b"}` })));
  const points = (i) => history.filter((p) => p.fleets[f.name]).map((p) => [p.t, p.fleets[f.name][i]]);
  const chart = svgEl("svg", { class: "chart", role: "img", "aria-label": `fleet ${f.name} over time` });
  const rollout = f.rollout.inProgress
    ? el("span", {}, "rollout ", el("span", { class: "progress" }, el("i", { style: `width:${(100 * f.rollout.updated) / Math.max(1, f.rollout.replicas)}%` })), ` ${f.rollout.updated}/${f.rollout.replicas} updated`)
    : el("span", {}, "rollout ", el("b", { text: "complete" }));
  const a = f.autoscaler;
  const scaler = a
    ? el("span", {}, "autoscaler ", el("b", { text: a.name }), ` buffer ${a.bufferSize}, ${a.minReplicas}–${a.maxReplicas || "∞"}, wants ${a.desiredReplicas}${a.scalingLimited ? " (limited)" : ""}`)
    : el("span", {}, "no autoscaler");
  const warn = f.conditions.filter((c) => c.status === "True" && c.type !== "Ready" && c.reason).map((c) => el("span", { class: "err", text: `${c.type}: ${c.reason}` }));
  const card = el("article", { class: "fleet", "data-fleet": f.name },
    el("header", {}, el("span", { class: "name", text: f.name }), el("span", { class: "meta", text: `${f.scheduling} · ${f.strategy}` })),
    el("div", { class: "nums" },
      el("div", { class: "desired" }, el("b", { "data-count": "desired", text: f.desired }), el("span", { text: "desired" })),
      el("div", { class: "ready" }, el("b", { "data-count": "ready", text: f.ready }), el("span", { text: "ready" })),
      el("div", { class: "allocated" }, el("b", { "data-count": "allocated", text: f.allocated }), el("span", { text: "allocated" })),
      el("div", { class: "reserved" }, el("b", { "data-count": "reserved", text: f.reserved }), el("span", { text: "reserved" })),
      el("div", {}, el("b", { "data-count": "current", text: f.current }), el("span", { text: "servers" }))),
    bar, chart, legend([["desired", COLORS.desired], ["ready", COLORS.ready], ["allocated", COLORS.allocated]]),
    el("div", { class: "detail" }, rollout, scaler, ...warn));
  return [card, () => lineChart(chart, [
    { points: points(0), color: COLORS.desired, dash: "5 4", width: 1.5 },
    { points: points(1), color: COLORS.ready },
    { points: points(2), color: COLORS.allocated },
  ])];
}
function renderFleets(s) {
  const box = $("fleets");
  if (!s.fleets.length) { box.replaceChildren(el("p", { class: "empty", text: "no fleets in this namespace: fleetmatch fleet apply -f FILE" })); return; }
  const made = s.fleets.map(fleetCard);
  box.replaceChildren(...made.map(([card]) => card));
  for (const [, draw] of made) draw();
}
function renderAllocations(s) {
  $("alloc-total").textContent = `${fmtNum(s.allocations.perSecond)}/s now · ${fmtNum(s.allocations.allocated)} since start`;
  lineChart($("alloc-chart"), [
    { points: history.map((p) => [p.t, p.allocationsPerSecond]), color: COLORS.rate },
    { points: history.map((p) => [p.t, p.failuresPerSecond]), color: COLORS.failures, width: 1.5 },
  ], { bars: true });
  const body = $("failures").tBodies[0];
  if (!s.failures.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "no failed allocations" })));
  else body.replaceChildren(...s.failures.map((f) => el("tr", { "data-reason": f.reason },
    el("td", { text: f.reason === "UnAllocated" ? "UnAllocated (no Ready server)" : f.reason }), el("td", { class: "num", text: fmtNum(f.lastMinute) }), el("td", { class: "num", text: fmtNum(f.total) }))));
}
function renderQueues(s) {
  const body = $("queues").tBodies[0];
  if (s.queues === null) { body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", text: s.errors.queues || "queue statistics unavailable" }))); return; }
  if (!s.queues.length) { body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "no queues" }))); return; }
  body.replaceChildren(...s.queues.map((q) => el("tr", { "data-queue": q.name },
    el("td", {}, el("b", { text: q.name })), el("td", { class: "num", "data-col": "players", text: fmtNum(q.waitingPlayers) }), el("td", { class: "num", text: fmtNum(q.waitingTickets) }),
    el("td", { class: "num", text: q.waitingTickets ? fmtSec(q.oldestWaitSeconds) : "–" }), el("td", { class: "num", text: fmtSec(q.p50) }), el("td", { class: "num", text: fmtSec(q.p95) }),
    el("td", { class: "muted", text: Object.entries(q.byRegion).map(([r, n]) => `${r === "-" ? "any" : r} ${n}`).join(", ") || "–" }))));
}
function renderServers(s) {
  const counts = {};
  for (const g of s.gameServers) counts[g.state] = (counts[g.state] || 0) + 1;
  $("state-filters").replaceChildren(...Object.keys(counts).sort((a, b) => STATES.indexOf(a) - STATES.indexOf(b)).map((st) => {
    const chip = el("button", { class: "chip", type: "button", "aria-pressed": stateFilter.has(st) ? "true" : "false" }, `${st} ${counts[st]}`);
    chip.addEventListener("click", () => { stateFilter.has(st) ? stateFilter.delete(st) : stateFilter.add(st); render(); });
    return chip;
  }));
  const q = $("search").value.trim().toLowerCase();
  const lastEvent = {};
  for (const e of s.events) if (e.kind === "GameServer" && !(e.name in lastEvent)) lastEvent[e.name] = e;
  const rows = s.gameServers.filter((g) => (!stateFilter.size || stateFilter.has(g.state)) &&
    (!q || [g.name, g.fleet, g.node, g.state, `${g.address}:${g.port}`].some((v) => String(v).toLowerCase().includes(q))));
  $("servers-count").textContent = `${rows.length} shown of ${s.gameServersTotal}`;
  const body = $("servers").tBodies[0];
  const out = [];
  for (const g of rows) {
    const ev = lastEvent[g.name];
    const tr = el("tr", { "data-server": g.name, "data-state": g.state, style: "cursor:pointer" },
      el("td", { class: "mono", text: g.name }), el("td", {}, el("span", { class: `badge s-${g.state}`, text: g.state })), el("td", { text: g.fleet || "–" }),
      el("td", { class: "mono", text: g.port ? `${g.address}:${g.port}` : "–" }), el("td", { text: g.node || "–" }), el("td", { class: "num", text: fmtAge(g.ageSeconds) }),
      el("td", { class: ev && ev.type === "Warning" ? "err" : "muted", text: ev ? `${ev.reason} · ${fmtAge(ev.ageSeconds)} ago` : "–" }));
    tr.addEventListener("click", () => { openRows.has(g.name) ? openRows.delete(g.name) : openRows.add(g.name); render(); });
    out.push(tr);
    if (openRows.has(g.name)) {
      const mine = s.events.filter((e) => e.kind === "GameServer" && e.name === g.name);
      out.push(el("tr", { class: "details" }, el("td", { colspan: 7 },
        g.error ? el("div", { class: "err", text: g.error }) : null,
        mine.length ? el("div", {}, ...mine.map((e) => el("div", { text: `${fmtAge(e.ageSeconds)} ago · ${e.reason}${e.count > 1 ? ` ×${e.count}` : ""}: ${e.message}` })))
          : el("div", { text: "no events recorded for this server" }))));
    }
  }
  if (!out.length) out.push(el("tr", {}, el("td", { colspan: 7, class: "muted", text: s.gameServersTotal ? "no server matches the filter" : "no game servers" })));
  body.replaceChildren(...out);
}
function renderNodes(s) {
  const body = $("nodes").tBodies[0];
  if (!s.nodes.length) { body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "no node agents (on Kubernetes, see kubectl get nodes)" }))); return; }
  body.replaceChildren(...s.nodes.map((n) => el("tr", { "data-node": n.name },
    el("td", {}, el("b", { text: n.name })), el("td", { class: n.ready ? "ok" : "notok", text: n.ready ? "Ready" : "NotReady" }), el("td", { class: "mono", text: n.address }),
    el("td", { class: "num", text: `${n.heartbeatAgeSeconds.toFixed(1)}s ago` }),
    el("td", {}, el("span", { class: "bar-mini" }, el("i", { style: `width:${(100 * n.servers) / Math.max(1, n.capacity)}%` })), `${n.servers}/${n.capacity}`))));
}
function renderEvents(s) {
  const list = $("events");
  if (!s.events.length) { list.replaceChildren(el("li", { class: "none", text: "no events yet: failures, replacements and evictions appear here" })); return; }
  list.replaceChildren(...s.events.slice(0, 60).map((e) => el("li", { class: e.type },
    el("span", { class: "muted", text: `${fmtAge(e.ageSeconds)} ago` }), el("span", { class: "reason", text: `${e.reason}${e.count > 1 ? ` ×${e.count}` : ""}` }),
    el("span", { class: "msg", title: e.message, text: `${e.kind}/${e.name}: ${e.message}` }))));
}

function render() {
  if (!state) return;
  $("namespace").textContent = state.namespace;
  $("updated").textContent = new Date(state.at).toLocaleTimeString();
  renderTiles(state); renderErrors(state); renderFleets(state); renderAllocations(state);
  renderQueues(state); renderServers(state); renderNodes(state); renderEvents(state);
}

// -- the live stream ---------------------------------------------------------------------------
function setLive(mode, text) { $("live").dataset.state = mode; $("live-text").textContent = text; }
function connect() {
  const source = new EventSource("/dashboard/api/stream");
  source.addEventListener("snapshot", (e) => { const m = JSON.parse(e.data); history = m.history; state = m.state; setLive("live", "live"); render(); });
  source.addEventListener("update", (e) => {
    const m = JSON.parse(e.data);
    state = m.state;
    if (m.point) { history.push(m.point); const cut = m.point.t - HISTORY_MS; while (history.length && history[0].t < cut) history.shift(); }
    render();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) { setLive("down", "disconnected"); setTimeout(() => location.reload(), 3000); }
    else setLive("connecting", "reconnecting");
  };
}
document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("input", render);
  let resize; window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(render, 150); });
  connect();
});
