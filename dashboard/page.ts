// The dashboard's one page: HTML, CSS and a script, no build step. The script
// builds the DOM with createElement and textContent only: names, groups and
// topics come from peers and are never parsed as HTML. Module-private.

import { jsonSafe } from "./parts.ts";

const CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --dim: #888; --line: #8884; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.sub { color: var(--dim); } table { border-collapse: collapse; margin: .2rem 0; }
th, td { text-align: left; padding: .15rem .7rem .15rem 0; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-up { color: var(--ok); font-weight: 600; } .state-down { color: var(--bad); font-weight: 600; }
.state-left, .state-removed, .state-passive { color: var(--dim); font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem 2.5rem; align-items: flex-start; } .tree { text-align: center; }
#live { font-weight: 600; } #live.on { color: var(--ok); } #live.off { color: var(--bad); }
svg text { font: 11px system-ui, sans-serif; fill: currentColor; }
`;

const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
const fmt = (n) => n === undefined || n === null ? "–" : typeof n !== "number" ? String(n)
  : Number.isInteger(n) ? n.toLocaleString("en") : n.toLocaleString("en", { maximumFractionDigits: 3 });
function table(head, rows, numeric) {
  const t = el("table");
  t.append(el("tr", {}, ...head.map((h, i) => el("th", numeric && numeric[i] ? { class: "num" } : {}, h))));
  for (const r of rows) {
    const tr = el("tr", r.attrs || {});
    r.cells.forEach((c, i) => tr.append(c instanceof Node ? el("td", {}, c)
      : el("td", numeric && numeric[i] ? { class: "num" } : {}, fmt(c))));
    t.append(tr);
  }
  return t;
}
function kv(obj) {
  return table(["counter", "value"], Object.entries(obj).map(([k, v]) => ({ cells: [k, v] })), [false, true]);
}
function treeSvg(self, tree) {
  const peers = [...tree.eager.map((p) => [p, "eager"]), ...tree.lazy.map((p) => [p, "lazy"])];
  const W = 220, H = 190, cx = W / 2, cy = H / 2 - 5, r = 70;
  const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-root": tree.root });
  peers.forEach(([p, kind], i) => {
    const a = (2 * Math.PI * i) / Math.max(1, peers.length) - Math.PI / 2;
    const x = cx + r * Math.cos(a), y = cy + r * Math.sin(a);
    s.append(svg("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: kind === "eager" ? "#1f6feb" : "#999",
      "stroke-width": kind === "eager" ? 2.5 : 1.5, "stroke-dasharray": kind === "eager" ? "" : "4 3",
      "data-link": kind }));
    s.append(svg("circle", { cx: x, cy: y, r: 5, fill: p === tree.root ? "#bf8700" : "#888" }));
    s.append(svg("text", { x, y: y + (y < cy ? -9 : 17), "text-anchor": "middle" }, p));
  });
  s.append(svg("circle", { cx, cy, r: 7, fill: self === tree.root ? "#bf8700" : "#1f6feb" }));
  s.append(svg("text", { x: cx, y: cy + 20, "text-anchor": "middle" }, self));
  return el("div", { class: "tree" }, s, el("div", {}, "root " + tree.root + " · " +
    tree.eager.length + " eager, " + tree.lazy.length + " lazy"));
}
const tags = (t) => Object.entries(t || {}).map(([k, v]) => k + "=" + v).join(" ") || "–";
/** Nodes on a circle, the pairs as lines: the overlay, or one root's tree. */
function graphSvg(names, edges, attrs, root) {
  const W = 360, H = 300, cx = W / 2, cy = H / 2, r = Math.min(W, H) / 2 - 34;
  const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, ...attrs });
  const at = new Map(names.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, names.length) - Math.PI / 2;
    return [n, [cx + r * Math.cos(a), cy + r * Math.sin(a)]];
  }));
  for (const [a, b] of edges) {
    const p = at.get(a), q = at.get(b);
    if (!p || !q) continue;
    s.append(svg("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], stroke: root ? "#1f6feb" : "#888",
      "stroke-width": root ? 2.5 : 1.5, "data-edge": a + " " + b }));
  }
  for (const [n, [x, y]] of at) {
    s.append(svg("circle", { cx: x, cy: y, r: 6, fill: n === root ? "#bf8700" : "#1f6feb" }));
    s.append(svg("text", { x, y: y + (y < cy ? -10 : 18), "text-anchor": "middle" }, n));
  }
  return s;
}
function renderCluster(st) {
  const c = st.cluster;
  $("cluster-section").hidden = !c;
  if (!c) return;
  const cols = ["framesIn", "framesOut", "bytesIn", "bytesOut", "connections", "deliveries", "duplicates", "sendDrops"];
  $("cluster-sub").textContent = c.nodes.length + " nodes answered" +
    (c.unreachable.length ? ", unreachable: " + c.unreachable.join(", ") : "") +
    (c.sampled ? " (a sample)" : "") + " · gathered in " + c.ms + " ms";
  const rows = c.nodes.map((n) => ({ attrs: { "data-node": n.name },
    cells: [n.name, n.address, tags(n.tags), n.neighbours.length, ...cols.map((k) => n.stats[k])] }));
  rows.push({ attrs: { "data-node": "(sum)" }, cells: ["sum", "", "", "", ...cols.map((k) => c.sums[k])] });
  $("cluster").replaceChildren(table(["node", "address", "tags", "neighbours", ...cols], rows,
    [false, false, false, true, ...cols.map(() => true)]));
  const names = c.nodes.map((n) => n.name);
  const graphs = [el("div", { class: "tree" }, graphSvg(names, c.links, { "data-graph": "overlay" }),
    el("div", {}, "overlay: " + c.links.length + " links")) ];
  for (const t of c.trees.slice(0, 3)) {
    graphs.push(el("div", { class: "tree" }, graphSvg(names, t.edges, { "data-cluster-root": t.root }, t.root),
      el("div", {}, "tree of root " + t.root + " · " + t.edges.length + " eager links")));
  }
  $("cluster-graphs").replaceChildren(...graphs);
}
function render(st) {
  $("title").textContent = "murmur · " + st.node.name;
  $("sub").textContent = st.node.strategy + " · " + st.node.address + " · " +
    new Date(st.at).toLocaleTimeString();
  const conns = (c) => Object.entries(c).map(([ch, n]) => ch + ":" + n).join(" ") || "–";
  $("members").replaceChildren(table(
    ["name", "state", "incarnation", "address", "tags", "connections", "last heard (ms)"],
    st.members.map((m) => ({
      attrs: { "data-member": m.name, "data-state": m.state },
      cells: [m.name + (m.self ? " (self)" : ""), el("span", { class: "state-" + m.state }, m.state),
        String(m.incarnation), m.address || "–", tags(m.tags), conns(m.connections), m.lastHeardMs],
    })), [false, false, true, false, false, false, true]));
  renderCluster(st);
  const r = st.rates;
  $("traffic").replaceChildren(table(["", "frames/s", "bytes/s", "frames", "bytes"], [
    { cells: ["in", r.framesIn, r.bytesIn, st.stats.framesIn, st.stats.bytesIn] },
    { cells: ["out", r.framesOut, r.bytesOut, st.stats.framesOut, st.stats.bytesOut] },
  ], [false, true, true, true, true]), kv({ connections: st.stats.connections,
    queuedBytes: st.stats.queuedBytes, sendDrops: st.stats.sendDrops, callsOutstanding:
    st.stats.callsOutstanding, acksOutstanding: st.stats.acksOutstanding, retransmits:
    st.stats.retransmits, badConnections: st.stats.badConnections, handshakesRefused:
    st.stats.handshakesRefused, refutations: st.stats.refutations, tombstones: st.stats.tombstones }));
  const pt = st.plumtree;
  $("plumtree-section").hidden = !pt;
  if (pt) {
    $("broadcast").replaceChildren(kv({ "deliveries/s": r.deliveries, "RMR (last minute)": r.rmr1m,
      deliveries: pt.stats.deliveries, duplicates: pt.stats.duplicates, eager: pt.stats.eager,
      announced: pt.stats.lazy, grafts: pt.stats.graft, prunes: pt.stats.prune,
      lazyDropped: pt.stats.lazyDropped, missing: pt.pending.missing, inbox: pt.pending.inbox }));
    $("trees").replaceChildren(...(pt.trees.length ? pt.trees.map((t) => treeSvg(st.node.name, t))
      : [el("p", { class: "sub" }, "no broadcast seen yet")]));
  }
  $("publishers-section").hidden = st.publishers.length === 0;
  $("publishers").replaceChildren(...st.publishers.map((p) => el("div", { "data-scope": p.scope },
    el("h3", {}, p.name + " (" + p.kind + ", scope " + p.scope + ")"),
    el("div", { class: "sub" }, "peers: " + (p.peers.join(", ") || "–") + " · updates local " +
      p.stats.localUpdates + ", remote " + p.stats.remoteUpdates + (p.truncated ? " · truncated" : "")),
    table(["group / topic", "members"], Object.entries(p.groups).map(([g, ms]) =>
      ({ cells: [g, ms.join(", ") || "–"] }))))));
  $("durable-section").hidden = st.durable.length === 0;
  $("durable").replaceChildren(table(
    ["server", "queue", "dead letters", "lock", "lease", "commits", "conflicts", "failures", "timeouts"],
    st.durable.map((d) => "error" in d.status ? { cells: [d.name, d.status.error, "", "", "", "", "", "", ""] } : {
      attrs: { "data-durable": d.name },
      cells: [d.name, d.status.queueLength, d.status.deadLetters + (d.status.deadLettersMore ? "+" : ""),
        d.status.lock ? (d.status.lock.mine ? "held here" : "held by " + d.status.lock.owner) : "free",
        d.status.lease ? (d.status.lease.mine ? "held here" : "held by " + d.status.lease.owner) : "free",
        d.status.stats.commits, d.status.stats.conflicts, d.status.stats.failures, d.status.stats.timeouts],
    }), [false, true, true, false, false, true, true, true, true]));
  document.body.dataset.updated = String(st.at);
}
const initial = document.getElementById("initial");
if (initial) render(JSON.parse(initial.textContent));
const live = $("live");
const es = new EventSource("events" + location.search);
es.onopen = () => { live.textContent = "live"; live.className = "on"; };
es.onerror = () => { live.textContent = "disconnected (retrying)"; live.className = "off"; };
es.onmessage = (e) => render(JSON.parse(e.data));
`;

/**
 * The whole page, with `initial` (the state when it was asked for) inside:
 * the first paint already shows it; the event stream keeps it live. The JSON
 * is escaped so that no peer-chosen name can end the script element.
 */
export function page(initial?: unknown): string {
  const data = initial === undefined
    ? ""
    : `<script id="initial" type="application/json">${
      JSON.stringify(initial, jsonSafe).replace(/</g, "\\u003c").replace(/>/g, "\\u003e")
        .replace(/&/g, "\\u0026")
    }</script>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>murmur dashboard</title><style>${CSS}</style></head>
<body>
<h1 id="title">murmur</h1><div><span id="sub" class="sub">connecting…</span> · <span id="live">…</span></div>
<section id="cluster-section" hidden><h2>Cluster</h2><div id="cluster-sub" class="sub"></div>
<div id="cluster"></div><div id="cluster-graphs" class="grid"></div></section>
<section><h2>Members (this node's view)</h2><div id="members"></div></section>
<section><h2>Traffic</h2><div id="traffic" class="grid"></div></section>
<section id="plumtree-section" hidden><h2>Broadcast (Plumtree)</h2><div class="grid">
<div id="broadcast"></div><div id="trees" class="grid"></div></div></section>
<section id="publishers-section" hidden><h2>Publishers</h2><div id="publishers"></div></section>
<section id="durable-section" hidden><h2>Durable servers</h2><div id="durable"></div></section>
${data}<script>${SCRIPT}</script>
</body></html>`;
}
