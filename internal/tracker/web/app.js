// murder tracker live page. It polls the tracker's JSON API (docs/status.md)
// and builds the page with DOM calls only: every name and address goes in
// as text (textContent), never as HTML, so a hostile torrent name cannot
// run script here.
"use strict";

const POLL_MS = 1000;
let selected = location.hash.replace(/^#/, "");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  if (!(n > 0)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
}

function rate(n) { return n > 0 ? bytes(n) + "/s" : "–"; }

function seconds(s) {
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s - 60 * m) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function progressBar(p) {
  const pct = Math.max(0, Math.min(1, p)) * 100;
  const fill = el("span");
  fill.style.width = pct.toFixed(1) + "%";
  return el("span", {class: "progress"}, el("span", {class: "bar"}, fill), el("span", {class: "pct"}, pct.toFixed(pct < 100 ? 1 : 0) + "%"));
}

function shortHash(h) { return h.slice(0, 12); }

function renderSwarms(list) {
  const body = document.querySelector("#swarms tbody");
  const rows = list.swarms.map(s => {
    const tr = el("tr", {class: "swarm" + (s.info_hash === selected ? " selected" : ""), "data-infohash": s.info_hash},
      el("td", {class: "name"}, s.name || "(unnamed)"),
      el("td", {class: "hash", title: s.info_hash}, shortHash(s.info_hash)),
      el("td", {class: "num"}, bytes(s.size)),
      el("td", {class: "num seeders"}, s.seeders),
      el("td", {class: "num leechers"}, s.leechers),
      el("td", {class: "num completed"}, s.completed),
      el("td", {}, progressBar(s.progress)),
      el("td", {class: "num"}, rate(s.download_rate)));
    tr.addEventListener("click", () => { location.hash = s.info_hash; });
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("noswarms").hidden = rows.length > 0;
}

function renderDeploys(list) {
  const body = document.querySelector("#deploys tbody");
  const rows = list.deploys.map(d => el("tr", {"data-infohash": d.info_hash},
    el("td", {class: "name"}, d.name || "(unnamed)"),
    el("td", {class: "hash", title: d.info_hash}, shortHash(d.info_hash)),
    el("td", {class: "num"}, d.hosts),
    el("td", {class: "num duration"}, seconds(d.seconds)),
    el("td", {}, new Date(d.started).toLocaleString()),
    el("td", {class: d.finished ? "state-done" : ""}, d.finished ? "done" : "running")));
  body.replaceChildren(...rows);
  document.getElementById("nodeploys").hidden = rows.length > 0;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// renderChart draws the hosts done over time as a step line.
function renderChart(d) {
  const chart = document.getElementById("chart");
  const W = 600, H = 200, L = 40, B = 20, T = 10, R = 10;
  const pts = d.done || [];
  const hosts = Math.max(pts.length, d.seeders + d.leechers, 1);
  let span = pts.length ? pts[pts.length - 1].seconds : 0;
  if (d.deploy) span = Math.max(span, d.deploy.seconds);
  span = Math.max(span, 1);
  const x = s => L + (W - L - R) * s / span;
  const y = n => H - B - (H - B - T) * n / hosts;
  const parts = [svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}),
    svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}),
    svg("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, String(hosts)),
    svg("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"),
    svg("text", {x: W - R, y: H - 4, "text-anchor": "end"}, seconds(span)),
    svg("text", {x: L, y: H - 4}, "0 s")];
  if (pts.length) {
    let path = "M" + x(0) + "," + y(0);
    pts.forEach((p, i) => { path += " H" + x(p.seconds) + " V" + y(i + 1); });
    if (d.deploy && !d.deploy.finished) path += " H" + x(d.deploy.seconds);
    parts.push(svg("path", {class: "line", d: path}));
  }
  chart.replaceChildren(...parts);
  document.getElementById("chartnote").textContent = pts.length
    ? pts.length + " of " + hosts + " hosts done" + (d.deploy && d.deploy.finished ? " in " + seconds(d.deploy.seconds) : "")
    : "no host done yet";
}

function renderPeers(d) {
  const groups = new Map();
  for (const p of d.peers) {
    const dc = p.datacenter || "";
    if (!groups.has(dc)) groups.set(dc, []);
    groups.get(dc).push(p);
  }
  const named = [...groups.keys()].some(k => k !== "");
  const out = [];
  for (const [dc, peers] of groups) {
    const done = peers.filter(p => p.seeder).length;
    const box = el("div", {class: "dc", "data-datacenter": dc});
    if (named) box.append(el("h3", {}, (dc || "unknown datacenter") + " — " + done + "/" + peers.length + " done"));
    const rows = peers.map(p => el("tr", {class: "peer", "data-peer": p.peer_id, "data-progress": String(p.progress)},
      el("td", {class: "addr"}, p.address + (p.rack ? " · rack " + p.rack : "")),
      el("td", {}, progressBar(p.progress)),
      el("td", {class: "num"}, rate(p.download_rate)),
      el("td", {class: "num"}, rate(p.upload_rate)),
      el("td", {class: "num"}, bytes(p.left)),
      el("td", {class: "state-" + p.state}, p.seeder && p.state !== "seeding" ? "done, " + p.state : p.state)));
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "address"), el("th", {}, "progress"), el("th", {class: "num"}, "download"),
        el("th", {class: "num"}, "upload"), el("th", {class: "num"}, "left"), el("th", {}, "state"))),
      el("tbody", {}, ...rows)));
    out.push(box);
  }
  document.getElementById("peers").replaceChildren(...out);
}

function renderDetail(d) {
  const sec = document.getElementById("detail");
  if (!d) { sec.hidden = true; return; }
  sec.hidden = false;
  sec.setAttribute("data-infohash", d.info_hash);
  document.getElementById("dname").textContent = d.name || "(unnamed)";
  document.getElementById("dmeta").textContent = "info hash " + d.info_hash + " · " + bytes(d.size) + " · " +
    d.seeders + " seeders, " + d.leechers + " peers, " + d.completed + " completed" +
    (d.deploy ? " · deploy " + (d.deploy.finished ? "done in " : "running for ") + seconds(d.deploy.seconds) : "");
  renderChart(d);
  renderPeers(d);
}

async function getJSON(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const list = await getJSON("/api/swarms");
    if (!selected || !list.swarms.some(s => s.info_hash === selected)) {
      // Follow the newest deploy until the user picks a swarm.
      const auto = list.swarms.find(s => s.deploy) || list.swarms[0];
      if (!location.hash) selected = auto ? auto.info_hash : "";
    }
    renderSwarms(list);
    renderDeploys(list);
    let detail = null;
    if (selected && list.swarms.some(s => s.info_hash === selected)) {
      detail = await getJSON("/api/swarms/" + encodeURIComponent(selected));
    }
    renderDetail(detail);
    status.textContent = "updated " + new Date(list.time).toLocaleTimeString();
    status.classList.remove("error");
  } catch (e) {
    status.textContent = "cannot reach the tracker: " + e.message;
    status.classList.add("error");
  }
  setTimeout(poll, POLL_MS);
}

window.addEventListener("hashchange", () => { selected = location.hash.replace(/^#/, ""); });
poll();
