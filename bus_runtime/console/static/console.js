// The rabbitform console: fills the pages from the JSON API. Every value goes into the page
// with textContent (never innerHTML), so a message holding markup shows as text and never runs.
"use strict";

const REFRESH_MS = 5000;
let csrfToken = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function showBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}

function notify(text, isError) {
  const notice = document.getElementById("notice");
  notice.textContent = text || "";
  notice.className = isError ? "notice error" : "notice";
  notice.hidden = !text;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// GET or POST the API. 401: back to sign-in. 503: the banner says what is unreachable, and
// the page's refresh keeps trying; it clears once the broker answers again.
async function api(path, options) {
  const init = { credentials: "same-origin", headers: {}, ...(options || {}) };
  if (init.method === "POST") init.headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    showBanner("The console does not answer: is `rabbitform ui` still running? Retrying…");
    throw new ApiError(0, String(error));
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { window.location.assign("/login"); throw new ApiError(401, body.error); }
  if (response.status === 503) {
    showBanner("The broker does not answer: " + body.error + "\nRetrying every " + REFRESH_MS / 1000 + " s.");
    throw new ApiError(503, body.error);
  }
  showBanner("");
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

function every(load) {
  const run = () => load().catch((error) => {
    if (error.status !== 503 && error.status !== 0 && error.status !== 401) notify(error.message, true);
  });
  run();
  window.setInterval(run, REFRESH_MS);
}

function stamp() {
  const updated = document.getElementById("updated");
  if (updated) updated.textContent = "updated " + new Date().toLocaleTimeString();
}

function num(value) { return el("td", { class: "num" }, value == null ? "?" : value); }

function rate(value) { return el("td", { class: "num" }, value == null ? "" : value.toFixed(1)); }

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

// ------------------------------------------------------------------ the bus

async function loadBus() {
  const status = await api("/api/status");
  const rows = status.subscribers.map((s) => {
    const dead = s.dead_letter.ready;
    const deadCell = num(dead);
    if (dead) deadCell.className = "num bad";
    return el("tr", {},
      el("td", {}, s.service ? s.service + "/" + s.subscriber : s.subscriber),
      num(s.queue.ready), num(s.queue.unacked), num(s.retry.ready), deadCell, num(s.queue.consumers),
      rate(s.queue.publish_rate), rate(s.queue.ack_rate));
  });
  fill(document.querySelector("#subscribers tbody"), rows);
  document.getElementById("warnings").textContent = (status.warnings || []).join(" ");
  const graph = document.getElementById("graph");
  if (!graph.dataset.drawn) { drawGraph(graph, status.graph); graph.dataset.drawn = "1"; }
  stamp();
}

// Columns by role: service exchanges, subscriber queues, retry, dead-letter.
const COLUMN = { "exchange:main": 0, "queue:subscriber": 1, "queue:store": 1, "exchange:retry": 2,
  "queue:retry": 3, "exchange:dead_letter": 2, "queue:dead_letter": 3 };

function drawGraph(container, graph) {
  if (!graph || graph.omitted) { container.textContent = graph ? graph.omitted : ""; return; }
  const ns = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const width = 240, height = 26, gap = 60, rowGap = 10;
  const rows = [0, 0, 0, 0], at = {};
  for (const node of graph.nodes) {
    const column = COLUMN[node.kind + ":" + node.role] ?? 3;
    at[node.id] = { x: 10 + column * (width + gap), y: 10 + rows[column] * (height + rowGap), node };
    rows[column] += 1;
  }
  const svg = svgEl("svg", { width: 4 * (width + gap), height: 20 + Math.max(...rows) * (height + rowGap) });
  for (const edge of graph.edges) {
    const a = at[edge.source], b = at[edge.target];
    if (!a || !b) continue;
    const forward = a.x <= b.x;
    const x1 = forward ? a.x + width : a.x, x2 = forward ? b.x : b.x + width;
    const line = svgEl("path", { d: `M${x1},${a.y + height / 2} C${(x1 + x2) / 2},${a.y + height / 2} ${(x1 + x2) / 2},${b.y + height / 2} ${x2},${b.y + height / 2}`,
      fill: "none", stroke: edge.kind === "dead_letter" ? "#c9822b" : "#8895a7", "stroke-dasharray": edge.kind === "dead_letter" ? "4 3" : "" });
    const title = svgEl("title", {});
    title.textContent = edge.label;
    line.append(title);
    svg.append(line);
  }
  for (const { x, y, node } of Object.values(at)) {
    const fillColour = node.kind === "exchange" ? "#e8f0fe" : node.role === "dead_letter" ? "#fdecea" : node.role === "retry" ? "#fff8e1" : "#e7f4ea";
    svg.append(svgEl("rect", { x, y, width, height, rx: node.kind === "exchange" ? 12 : 3, fill: fillColour, stroke: "#8895a7" }));
    const text = svgEl("text", { x: x + 8, y: y + 17 });
    // the tail tells subscribers apart (their names share the organization.service.version prefix)
    text.textContent = node.name.length > 36 ? "…" + node.name.slice(-35) : node.name;
    const title = svgEl("title", {});
    title.textContent = node.name;
    text.append(title);
    svg.append(text);
  }
  container.replaceChildren(svg);
}

// ------------------------------------------------------------------ dead letters

function groupLink(group) {
  const query = new URLSearchParams({ subscriber: group.subscriber, error_type: group.error_type });
  return "/dead-letters/group?" + query.toString();
}

async function loadGroups() {
  const { groups } = await api("/api/dead-letters");
  const rows = groups.map((g) => el("tr", { class: "group" },
    el("td", {}, el("a", { href: groupLink(g) }, g.subscriber)),
    el("td", {}, el("a", { href: groupLink(g), class: "error-type" }, g.error_type)),
    num(g.count), el("td", {}, g.oldest || ""), el("td", {}, g.newest || "")));
  fill(document.querySelector("#groups tbody"), rows);
  document.getElementById("empty").hidden = groups.length > 0;
  stamp();
}

// ------------------------------------------------------------------ one group

function groupParams() {
  const params = new URLSearchParams(window.location.search);
  return { subscriber: params.get("subscriber") || "", error_type: params.get("error_type") || "" };
}

function selectedIds() {
  return Array.from(document.querySelectorAll("input.pick:checked")).map((box) => box.value);
}

async function loadMessages() {
  const group = groupParams();
  document.getElementById("group-title").textContent = group.subscriber + " · " + group.error_type;
  const query = new URLSearchParams({ ...group, limit: "100" });
  const result = await api("/api/dead-letters/messages?" + query.toString());
  const cards = result.messages.map((m) => {
    const box = el("input", { type: "checkbox", class: "pick", value: m.id });
    box.addEventListener("change", updateSelection);
    return el("div", { class: "message" },
      el("label", {}, box, " ", el("b", {}, m.type || "(no type)"), " ", el("code", { class: "message-id" }, m.id)),
      el("p", {}, "dead-lettered ", m.dead_lettered_at || "?", " · ", m.reason || "", " · retries ", m.retry_count,
        " · replays ", m.replay_count),
      el("p", { class: "error" }, (m.error_type || "") + ": " + (m.error_message || "")),
      el("details", {}, el("summary", {}, "body"), el("pre", { class: "body" }, m.body)),
      el("details", {}, el("summary", {}, "headers"), el("pre", { class: "headers" }, JSON.stringify(m.headers, null, 2))),
      m.traceback ? el("details", {}, el("summary", {}, "traceback"), el("pre", { class: "traceback" }, m.traceback)) : "");
  });
  document.getElementById("messages").replaceChildren(...cards);
  document.getElementById("messages").dataset.count = String(result.messages.length);
  updateSelection();
}

function updateSelection() {
  const none = selectedIds().length === 0;
  document.getElementById("replay-selected").disabled = none;
  document.getElementById("purge-selected").disabled = none;
}

function ask(text) {
  const box = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  box.hidden = false;
  return new Promise((resolve) => {
    const done = (answer) => { box.hidden = true; resolve(answer); };
    document.getElementById("confirm-yes").onclick = () => done(true);
    document.getElementById("confirm-no").onclick = () => done(false);
  });
}

async function change(action, onlySelected) {
  const group = groupParams();
  const ids = onlySelected ? selectedIds() : null;
  const count = ids ? ids.length : Number(document.getElementById("messages").dataset.count || 0);
  const shown = ids ? count + " selected dead letter(s)" : "all " + count + (count >= 100 ? "+" : "") + " dead letter(s)";
  const verb = action === "replay" ? "Replay" : "Purge (delete)";
  if (!(await ask(`${verb} ${shown} of ${group.subscriber} with error ${group.error_type}?`))) return;
  const body = { subscriber: group.subscriber, error_type: group.error_type };
  if (ids) body.message_ids = ids;
  try {
    const result = await api("/api/dead-letters/" + action, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const done = action === "replay" ? result.replayed : result.purged;
    notify((action === "replay" ? "Replayed " : "Purged ") + done + " dead letter(s).", false);
  } catch (error) {
    notify(error.message, true);
  }
  await loadMessages().catch(() => {});
}

function setUpGroup() {
  document.getElementById("replay-group").addEventListener("click", () => change("replay", false));
  document.getElementById("purge-group").addEventListener("click", () => change("purge", false));
  document.getElementById("replay-selected").addEventListener("click", () => change("replay", true));
  document.getElementById("purge-selected").addEventListener("click", () => change("purge", true));
  // not refreshed by itself (that would clear the selection), but retried while the broker is away
  const load = () => loadMessages().catch((error) => {
    if (error.status === 503 || error.status === 0) window.setTimeout(load, REFRESH_MS);
    else if (error.status !== 401) notify(error.message, true);
  });
  load();
}

// ------------------------------------------------------------------ audit trail

async function loadAudit() {
  const { entries } = await api("/api/audit");
  fill(document.querySelector("#audit tbody"), entries.map((e) => el("tr", { class: "entry" },
    el("td", {}, e.at), el("td", {}, e.user), el("td", {}, e.action), el("td", {}, e.subscriber),
    el("td", {}, e.error_type), num(e.count), el("td", {}, e.result))));
}

// ------------------------------------------------------------------ start

async function start() {
  const page = document.body.dataset.page;
  if (page === "login") return;
  const session = await api("/api/session");
  csrfToken = session.csrf_token;
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken } });
    window.location.assign("/login");
  });
  if (page === "bus") every(loadBus);
  else if (page === "dead-letters") every(loadGroups);
  else if (page === "group") setUpGroup();
  else if (page === "audit") every(loadAudit);
}

document.addEventListener("DOMContentLoaded", () => { start().catch(() => {}); });
