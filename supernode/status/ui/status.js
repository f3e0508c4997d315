// The supernode's status page: polls the JSON snapshot and redraws the tables. Every value goes
// into the page as text (textContent), never as markup: URLs and errors come from clients.
"use strict";

const snapshotURL = "api/v1/status";
let pollMs = 2000;

function el(tag, opts, ...children) {
  const e = document.createElement(tag);
  if (opts) {
    if (opts.cls) e.className = opts.cls;
    if (opts.text !== undefined) e.textContent = String(opts.text);
    if (opts.title) e.title = opts.title;
    if (opts.data) for (const [k, v] of Object.entries(opts.data)) e.dataset[k] = v;
  }
  for (const c of children) if (c) e.appendChild(c);
  return e;
}

function td(text, cls, title) { return el("td", { text, cls, title }); }

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function rate(bps) { return bps > 0 ? bytes(bps) + "/s" : "–"; }

function ago(seconds) {
  if (seconds < 1) return "now";
  if (seconds < 90) return Math.round(seconds) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}

function since(iso, now) { return ago((now - Date.parse(iso)) / 1000); }

function short(id) {
  const hex = id.startsWith("sha256:") ? id.slice(7) : id;
  return hex.length > 14 ? hex.slice(0, 6) + "…" + hex.slice(-6) : hex;
}

function badge(state) { return el("span", { cls: "badge " + state, text: state }); }

// bar draws a progress bar: parts are [fraction, class] pairs.
function bar(parts, caption) {
  const b = el("div", { cls: "bar" });
  for (const [frac, cls] of parts) {
    const s = el("span", { cls });
    s.style.width = Math.max(0, Math.min(100, frac * 100)).toFixed(1) + "%";
    b.appendChild(s);
  }
  return el("div", null, b, el("div", { cls: "cell-text", text: caption }));
}

function fill(table, rows, columns, empty) {
  const body = document.querySelector(table + " tbody");
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    body.appendChild(el("tr", null, el("td", { cls: "empty", text: empty })));
    body.lastChild.firstChild.colSpan = columns;
  }
}

function taskState(t) {
  if (t.error) return "failed";
  if (t.peers_downloading > 0) return "downloading";
  if (t.seeding) return "seeding";
  if (t.seed_done) return "done";
  return "waiting";
}

function taskRow(t) {
  const seedFrac = t.pieces ? t.seed_pieces / t.pieces : 0;
  const total = t.origin_bytes + t.seed_bytes + t.peer_bytes;
  const parts = total ? [[t.origin_bytes / total, "origin"], [t.seed_bytes / total, "seed"], [t.peer_bytes / total, "peer"]] : [];
  const state = taskState(t);
  const stateCell = el("td", null, badge(state));
  if (t.error) stateCell.title = t.error;
  return el("tr", { data: { task: t.id, state } },
    td(short(t.id), "mono", t.id),
    td(t.url, "url", t.url),
    td(bytes(t.size), "num"),
    el("td", null, bar([[seedFrac, "fill"]], t.seed_pieces + " / " + t.pieces + " pieces")),
    el("td", null, bar([[t.peers ? t.peers_complete / t.peers : 0, "peer"]],
      t.peers_complete + " complete, " + t.peers_downloading + " downloading of " + t.peers)),
    el("td", null, bar(parts, bytes(t.origin_bytes) + " · " + bytes(t.seed_bytes) + " · " + bytes(t.peer_bytes))),
    stateCell);
}

function peerRow(p) {
  const healthCell = el("td", null, badge(p.health));
  if (p.why) healthCell.title = p.why;
  return el("tr", { data: { peer: p.id, health: p.health } },
    td(short(p.id) + (p.one_shot ? " (dfget)" : ""), "mono", p.id + "\n" + (p.addrs || []).join("\n")),
    healthCell,
    td(ago(p.last_seen_seconds), "num"),
    td(p.tasks, "num"),
    td(rate(p.receive_bps), "num"),
    td(rate(p.send_bps), "num"),
    td(bytes(p.received_bytes), "num"),
    td(bytes(p.sent_bytes), "num"),
    td(p.failures, "num"));
}

function preheatRow(j, now) {
  const tasks = (j.progress && j.progress.tasks) || [];
  const done = tasks.filter((t) => t.state === "SUCCESS").length;
  const size = tasks.reduce((s, t) => s + (t.size || 0), 0);
  const held = tasks.reduce((s, t) => s + (t.seed_bytes || 0), 0);
  return el("tr", { data: { job: j.id, state: j.state } },
    td(short(j.id), "mono", j.id),
    el("td", null, badge(j.state)),
    td(j.type),
    td(j.url, "url", j.url),
    td(j.scope),
    el("td", null, bar([[size ? held / size : 0, "fill"]], done + " / " + tasks.length + " tasks, seed " + bytes(held) + " of " + bytes(size))),
    td(since(j.created_at, now), "num", j.created_at),
    td(j.error || "", "url", j.error || ""));
}

function render(s) {
  const now = Date.parse(s.time);
  const sn = s.supernode;
  const ready = document.getElementById("ready");
  ready.className = "badge " + (sn.ready ? "ok" : "notready");
  ready.textContent = sn.ready ? "ready" : "not ready: " + (sn.not_ready || []).join(", ");
  document.getElementById("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
  document.getElementById("sum-peers").textContent = s.peers_total;
  document.getElementById("sum-tasks").textContent = s.tasks_total;
  document.getElementById("sum-origin").textContent = bytes(sn.origin_bytes);
  document.getElementById("sum-seed").textContent = rate(sn.seed_upload_bps) + " (" + bytes(sn.seed_upload_bytes) + ")";
  document.getElementById("sum-id").textContent = sn.peer_id;
  const shown = (n, total) => (n < total ? n + " of " + total + " shown" : String(total));
  document.getElementById("tasks-count").textContent = shown(s.tasks.length, s.tasks_total);
  document.getElementById("peers-count").textContent = shown(s.peers.length, s.peers_total);
  document.getElementById("preheats-count").textContent = String(s.preheats.length);
  fill("#tasks", s.tasks.map(taskRow), 7, "no tasks");
  fill("#peers", s.peers.map(peerRow), 9, "no peers");
  fill("#preheats", s.preheats.map((j) => preheatRow(j, now)), 8, "no preheat jobs");
}

async function poll() {
  const error = document.getElementById("error");
  try {
    const resp = await fetch(snapshotURL, { credentials: "same-origin", cache: "no-store" });
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const s = await resp.json();
    if (s.poll_seconds > 0) pollMs = s.poll_seconds * 1000;
    render(s);
    error.hidden = true;
  } catch (e) {
    error.textContent = "Cannot read the status: " + e.message;
    error.hidden = false;
  }
  setTimeout(poll, pollMs);
}

poll();
