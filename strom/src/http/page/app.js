// The status page of `strom run`: polls api/jobs about once per second and redraws.
// Plain DOM and SVG, no framework. Every value may be null or missing: it shows "–".
"use strict";

const POLL_MS = 1000;
const FETCH_TIMEOUT_MS = 3000;
const MAX_SERIES = 5;
const SVG_NS = "http://www.w3.org/2000/svg";

const view = { snapshot: null, job: null, sink: null };

// ---------- small helpers ----------

const $ = (selector) => document.querySelector(selector);

/** An element; attrs with null/undefined values are left out; children may be strings. */
function make(ns, tag, attrs, children) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children || []) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}
const h = (tag, attrs, ...children) => make(null, tag, attrs, children);
const s = (tag, attrs, ...children) => make(SVG_NS, tag, attrs, children);

const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : null);
const list = (x) => (Array.isArray(x) ? x : []);
const text = (x) => (x === null || x === undefined ? "–" : String(x));
const DASH = "–";

function fmtInt(x) {
  const n = num(x);
  return n === null ? DASH : Math.round(n).toLocaleString("en-US");
}

function fmtShort(x) {
  const n = num(x);
  if (n === null) return DASH;
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
  if (a >= 10 || n === Math.round(n)) return n.toFixed(0);
  return n.toFixed(1);
}

const fmtRate = (x) => (num(x) === null ? DASH : fmtShort(x) + "/s");
const fmtPercent = (x) => (num(x) === null ? DASH : Math.round(x * 100) + "%");

function fmtBytes(x) {
  const n = num(x);
  if (n === null) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

function fmtDuration(ms) {
  const n = num(ms);
  if (n === null) return DASH;
  if (n < 1000) return Math.max(0, Math.round(n)) + " ms";
  const sec = n / 1000;
  if (sec < 60) return sec.toFixed(1) + " s";
  const parts = [
    [Math.floor(sec / 86400), "d"],
    [Math.floor(sec / 3600) % 24, "h"],
    [Math.floor(sec / 60) % 60, "m"],
    [Math.floor(sec) % 60, "s"],
  ];
  const first = parts.findIndex(([v]) => v > 0);
  return parts.slice(first, first + 2).map(([v, u]) => v + u).join(" ");
}

/** A time as "YYYY-MM-DD HH:MM:SS" in UTC (the unit of event time in logs). */
function fmtTime(ms) {
  const n = num(ms);
  if (n === null) return DASH;
  const d = new Date(n);
  if (Number.isNaN(d.getTime())) return DASH;
  return d.toISOString().slice(0, 19).replace("T", " ");
}

function fmtClock(ms) {
  const t = fmtTime(ms);
  return t === DASH ? t : t.slice(11);
}

const ago = (ms) => (num(ms) === null ? null : Date.now() - ms);

// ---------- polling ----------

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch("api/jobs", { cache: "no-store", signal: abort.signal });
    if (!response.ok) throw new Error("HTTP " + response.status);
    view.snapshot = await response.json();
    render();
  } catch (e) {
    setConnection(false, "backend unreachable (" + (e && e.message ? e.message : e) + ")");
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}

function setConnection(ok, message) {
  const line = $("#connection");
  line.dataset.ok = ok ? "true" : "false";
  line.textContent = message;
}

// ---------- rendering ----------

function render() {
  const jobs = list(view.snapshot && view.snapshot.jobs).filter((j) => j && typeof j === "object");
  renderJobPicker(jobs);
  const job = jobs.find((j) => j.name === view.job) || jobs[0] || null;
  view.job = job ? job.name : null;
  const failures = [];
  const sections = [renderHeader, renderGraph, renderPartitions, renderCheckpoints, renderSinks, renderErrors, renderChart];
  for (const section of sections) {
    try {
      section(job || {});
    } catch (e) {
      failures.push(section.name + ": " + (e && e.message ? e.message : e));
    }
  }
  if (failures.length > 0) {
    setConnection(false, "page error: " + failures.join("; "));
  } else {
    setConnection(true, job ? "updated " + fmtClock(Date.now()) : "no job running");
  }
}

function renderJobPicker(jobs) {
  const picker = $("#job-picker");
  $("#job-picker-box").hidden = jobs.length < 2;
  fillSelect(picker, jobs.map((j) => text(j.name)), view.job);
  picker.onchange = () => {
    view.job = picker.value;
    render();
  };
}

/** Replaces a select's options when they changed, keeping the chosen one. */
function fillSelect(select, names, chosen) {
  const current = Array.from(select.options).map((o) => o.value);
  if (current.join("\n") !== names.join("\n")) {
    select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  }
  if (chosen !== null && names.includes(chosen)) select.value = chosen;
}

function renderHeader(job) {
  $("#job-name").textContent = text(job.name);
  const state = $("#job-state");
  state.textContent = text(job.state);
  state.dataset.state = job.state || "";
  $("#job-uptime").textContent = fmtDuration(ago(job.started_at));
  $("#job-incarnation").textContent = fmtInt(job.incarnation);
  $("#dead-letters").textContent = fmtInt(job.dead_letters);
}

// ----- the operator graph: columns by depth in the DAG, left to right -----

const BOX_W = 220;
const BOX_H = 92;
const GAP_X = 70;
const GAP_Y = 18;
const PAD = 12;

/** The longest distance of every operator from a source (cycles cut after n rounds). */
function depths(ids, edges) {
  const depth = new Map(ids.map((id) => [id, 0]));
  for (let round = 0; round < ids.length; round += 1) {
    let changed = false;
    for (const e of edges) {
      if (depth.get(e.to) < depth.get(e.from) + 1) {
        depth.set(e.to, depth.get(e.from) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

function byId(a, b) {
  const x = Number(a);
  const y = Number(b);
  if (Number.isFinite(x) && Number.isFinite(y) && x !== y) return x - y;
  return String(a).localeCompare(String(b));
}

function renderGraph(job) {
  const box = $("#graph .scroll");
  const ops = list(job.operators).filter((o) => o && o.id !== null && o.id !== undefined);
  if (ops.length === 0) {
    box.replaceChildren(h("p", { class: "empty" }, "no operators"));
    return;
  }
  const ids = ops.map((o) => String(o.id));
  const known = new Set(ids);
  const edges = list(job.edges)
    .filter((e) => e && known.has(String(e.from)) && known.has(String(e.to)) && String(e.from) !== String(e.to))
    .map((e) => ({ from: String(e.from), to: String(e.to), kind: e.kind }));
  const depth = depths(ids, edges);

  // Columns; inside one, operators ordered by where their inputs sit (fewer crossings).
  const columns = [];
  for (const id of ids) {
    const d = depth.get(id);
    (columns[d] = columns[d] || []).push(id);
  }
  const row = new Map();
  for (const column of columns.filter(Boolean)) {
    const key = (id) => {
      const ins = edges.filter((e) => e.to === id && row.has(e.from)).map((e) => row.get(e.from));
      return ins.length ? ins.reduce((a, b) => a + b, 0) / ins.length : Infinity;
    };
    column.sort((a, b) => key(a) - key(b) || byId(a, b));
    column.forEach((id, i) => row.set(id, i));
  }
  const tallest = Math.max(...columns.filter(Boolean).map((c) => c.length));
  const width = PAD * 2 + columns.length * BOX_W + (columns.length - 1) * GAP_X;
  const height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y;
  const place = new Map();
  columns.forEach((column, d) => {
    if (!column) return;
    const top = PAD + ((tallest - column.length) * (BOX_H + GAP_Y)) / 2;
    column.forEach((id, i) => place.set(id, { x: PAD + d * (BOX_W + GAP_X), y: top + i * (BOX_H + GAP_Y) }));
  });

  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "operator graph" });
  svg.append(
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z" }))),
  );
  for (const e of edges) {
    const a = place.get(e.from);
    const b = place.get(e.to);
    const x1 = a.x + BOX_W;
    const y1 = a.y + BOX_H / 2;
    const x2 = b.x;
    const y2 = b.y + BOX_H / 2;
    const bend = Math.max(30, Math.abs(x2 - x1) / 2);
    svg.append(s("path", {
      class: "edge", "data-from": e.from, "data-to": e.to, "data-kind": e.kind,
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)",
    }));
    if (e.kind && e.kind !== "forward") {
      svg.append(s("text", { class: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, e.kind));
    }
  }
  for (const op of ops) svg.append(operatorBox(op, place.get(String(op.id))));
  box.replaceChildren(svg);
}

function operatorBox(op, at) {
  const name = text(op.name);
  const short = name.length > 28 ? name.slice(0, 27) + "…" : name;
  const busy = num(op.busy_ratio);
  const pressure = num(op.backpressured_ratio);
  const meterW = (BOX_W - 20) / 2 - 4;
  const meter = (x, ratio, cls) => [
    s("rect", { class: "meter-bg", x, y: 78, width: meterW, height: 5, rx: 2 }),
    s("rect", { class: cls, x, y: 78, width: meterW * Math.min(1, Math.max(0, ratio || 0)), height: 5, rx: 2 }),
  ];
  const parallelism = num(op.parallelism) === null ? "" : " ×" + op.parallelism;
  return s("g", {
    class: "op", transform: `translate(${at.x} ${at.y})`,
    "data-operator-id": op.id, "data-kind": op.kind,
    "data-in-rate": num(op.records_in_per_s), "data-out-rate": num(op.records_out_per_s),
    "data-busy": busy, "data-backpressure": pressure,
  },
  s("title", {}, `${name} (${text(op.kind)}${parallelism}): in ${fmtInt(op.records_in)}, out ${fmtInt(op.records_out)} records`),
  s("rect", { class: "box", width: BOX_W, height: BOX_H, rx: 6 }),
  s("text", { class: "name", x: 10, y: 18 }, short),
  s("text", { class: "muted kind", x: 10, y: 34 }, text(op.kind) + parallelism),
  s("text", { class: "rates", x: 10, y: 53 },
    s("tspan", { class: "in-rate" }, "in " + fmtRate(op.records_in_per_s)),
    s("tspan", { dx: 12, class: "out-rate" }, "out " + fmtRate(op.records_out_per_s))),
  s("text", { class: "muted load", x: 10, y: 71 },
    s("tspan", { class: "busy" }, "busy " + fmtPercent(busy)),
    s("tspan", { x: 10 + meterW + 8, class: "backpressure" }, "backpressure " + fmtPercent(pressure))),
  ...meter(10, busy, "busy"),
  ...meter(10 + meterW + 8, pressure, "backpressure"));
}

// ----- tables -----

function renderPartitions(job) {
  const rows = list(job.partitions)
    .filter((p) => p && typeof p === "object")
    .slice()
    .sort((a, b) => String(a.topic).localeCompare(String(b.topic)) || (num(a.partition) ?? 0) - (num(b.partition) ?? 0));
  $("#partitions tbody").replaceChildren(...rows.map((p) => {
    const lag = num(p.lag);
    return h("tr", { "data-topic": p.topic, "data-partition": p.partition },
      h("td", {}, text(p.topic)),
      h("td", {}, text(p.partition)),
      h("td", { class: "position" }, fmtInt(p.position)),
      h("td", { class: "log-end" }, fmtInt(p.log_end)),
      h("td", { class: lag !== null && lag >= 1000 ? "lag high" : "lag", "data-lag": lag }, fmtInt(lag)),
      h("td", { class: "watermark", "data-watermark": num(p.watermark), title: text(p.watermark) }, fmtTime(p.watermark)),
      h("td", { class: "idle" }, p.idle === true ? "idle" : p.idle === false ? "" : DASH));
  }));
}

function renderCheckpoints(job) {
  const c = job.checkpoints && typeof job.checkpoints === "object" ? job.checkpoints : {};
  const history = list(c.history).filter((x) => x && typeof x === "object");
  $("#checkpoints-completed").textContent = fmtInt(c.completed);
  $("#checkpoints-failed").textContent = fmtInt(c.failed);
  $("#checkpoints-age").textContent = fmtDuration(ago(c.last_completed_at));
  $("#checkpoints-restore").textContent = fmtDuration(c.restore_ms);

  // Bars of the durations, oldest left.
  const W = 500;
  const H = 60;
  const longest = Math.max(1, ...history.map((x) => num(x.duration_ms) || 0));
  const step = W / Math.max(history.length, 20);
  $("#checkpoints-longest").textContent = history.length ? fmtDuration(longest) : DASH;
  const bars = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", height: H, preserveAspectRatio: "none", role: "img", "aria-label": "checkpoint durations" });
  history.forEach((x, i) => {
    const d = num(x.duration_ms) || 0;
    const bh = Math.max(1, (d / longest) * H);
    bars.append(s("rect", {
      class: x.outcome === "failed" ? "failed" : "completed", "data-checkpoint-bar": x.id,
      x: i * step + 1, y: H - bh, width: Math.max(1, step - 2), height: bh,
    }, s("title", {}, `#${text(x.id)}: ${fmtDuration(d)}, ${text(x.outcome)}`)));
  });
  $("#checkpoints .bars").replaceChildren(bars);

  $("#checkpoints tbody").replaceChildren(...history.slice().reverse().map((x) =>
    h("tr", { "data-checkpoint-id": x.id, "data-outcome": x.outcome },
      h("td", {}, text(x.id)),
      h("td", {}, fmtClock(x.started_at)),
      h("td", {}, fmtDuration(x.duration_ms)),
      h("td", {}, fmtBytes(x.size_bytes)),
      h("td", { class: "outcome" }, text(x.outcome)))));
}

function renderSinks(job) {
  $("#sinks tbody").replaceChildren(...list(job.sinks).filter(Boolean).map((k) =>
    h("tr", { "data-sink": k.name },
      h("td", {}, text(k.name)),
      h("td", {}, text(k.kind)),
      h("td", {}, fmtInt(k.records)),
      h("td", {}, fmtInt(k.transactions_committed)),
      h("td", {}, fmtInt(k.transactions_aborted)))));
}

function renderErrors(job) {
  const errors = list(job.errors).filter(Boolean).slice().reverse();
  $("#errors ul").replaceChildren(...errors.map((e) =>
    h("li", {}, h("time", {}, fmtTime(e.at)), text(e.message))));
  $("#errors .empty").hidden = errors.length > 0;
}

// ----- the results chart -----

const CW = 900;
const CH = 220;
const M = { left: 56, right: 12, top: 10, bottom: 26 };

function renderChart(job) {
  // Sinks with rows and the two columns the chart needs.
  const results = list(job.results).filter((r) => r && list(r.rows).length > 0
    && list(r.types).includes("timestamp") && list(r.types).includes("number"));
  const picker = $("#sink-picker");
  const names = results.map((r) => text(r.sink));
  picker.hidden = results.length < 2;
  if (!names.includes(view.sink)) view.sink = names[0] || null;
  fillSelect(picker, names, view.sink);
  picker.onchange = () => {
    view.sink = picker.value;
    render();
  };
  const plot = $("#chart .plot");
  const legend = $("#chart .legend");
  const result = results.find((r) => text(r.sink) === view.sink);
  if (!result) {
    plot.replaceChildren(h("p", { class: "empty" }, "no results yet"));
    legend.replaceChildren();
    return;
  }
  const types = list(result.types);
  const columns = list(result.columns);
  const xi = types.indexOf("timestamp");
  const yi = types.lastIndexOf("number");
  const si = types.indexOf("string");

  // One series per value of the first string column; a later row for the same x wins.
  const series = new Map();
  for (const row of list(result.rows)) {
    if (!Array.isArray(row)) continue;
    const x = num(row[xi]);
    const y = num(row[yi]);
    if (x === null || y === null) continue;
    const key = si < 0 ? text(columns[yi]) : text(row[si]);
    if (!series.has(key)) series.set(key, new Map());
    series.get(key).set(x, y);
  }
  const total = (points) => Array.from(points.values()).reduce((a, b) => a + b, 0);
  const top = Array.from(series.entries())
    .sort((a, b) => total(b[1]) - total(a[1]) || a[0].localeCompare(b[0]))
    .slice(0, MAX_SERIES)
    .map(([name, points]) => ({ name, points: Array.from(points.entries()).sort((a, b) => a[0] - b[0]) }));
  if (top.length === 0) {
    plot.replaceChildren(h("p", { class: "empty" }, `${view.sink}: no rows with values yet`));
    legend.replaceChildren();
    return;
  }

  const xs = top.flatMap((t) => t.points.map((p) => p[0]));
  const ys = top.flatMap((t) => t.points.map((p) => p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 - 30000, x1 + 30000];
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys) > y0 ? Math.max(...ys) : y0 + 1;
  const px = (x) => M.left + ((x - x0) / (x1 - x0)) * (CW - M.left - M.right);
  const py = (y) => CH - M.bottom - ((y - y0) / (y1 - y0)) * (CH - M.top - M.bottom);

  const svg = s("svg", { viewBox: `0 0 ${CW} ${CH}`, width: "100%", role: "img", "aria-label": `${view.sink}: ${text(columns[yi])} over ${text(columns[xi])}` });
  for (let i = 0; i <= 4; i += 1) {
    const y = y0 + ((y1 - y0) * i) / 4;
    svg.append(
      s("line", { class: "axis", x1: M.left, x2: CW - M.right, y1: py(y), y2: py(y) }),
      s("text", { class: "muted", x: M.left - 6, y: py(y) + 4, "text-anchor": "end" }, fmtShort(y)));
  }
  for (let i = 0; i <= 4; i += 1) {
    const x = x0 + ((x1 - x0) * i) / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg.append(s("text", { class: "muted", x: px(x), y: CH - 8, "text-anchor": anchor }, fmtClock(x)));
  }
  top.forEach((t, i) => {
    const d = t.points.map(([x, y], j) => `${j === 0 ? "M" : "L"} ${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join(" ");
    const group = s("g", { class: "s" + i });
    group.append(s("path", { class: "series s" + i, "data-series": t.name, d }, s("title", {}, t.name)));
    for (const [x, y] of t.points) {
      group.append(s("circle", { cx: px(x).toFixed(1), cy: py(y).toFixed(1), r: 2.5, fill: "currentColor", class: "s" + i, style: "fill: var(--swatch)" },
        s("title", {}, `${t.name} ${fmtTime(x)}: ${y}`)));
    }
    svg.append(group);
  });
  plot.replaceChildren(svg);
  const by = si < 0 ? "" : ` by ${text(columns[si])}`;
  legend.replaceChildren(
    h("li", { class: "axis-note" }, `${text(columns[yi])} over ${text(columns[xi])} (UTC)${by}:`),
    ...top.map((t, i) => h("li", { class: "s" + i, "data-series": t.name }, t.name)));
}

poll();
