/* facelab studio: what every page shares (plain script, loaded before the page's own).
 *
 *   api(path, opts)        fetch a studio URL: opts.method, opts.body (an object is sent as JSON; FormData,
 *                          Blob or a string as is), opts.signal (AbortController), opts.quiet (no error banner),
 *                          opts.raw (return the Response). Returns parsed JSON (or text). A failed request
 *                          shows its one-line `detail` in the page's error banner and throws an Error whose
 *                          .status is the HTTP status (an aborted request throws the AbortError, silently).
 *   events(topics, onEvent) server-sent events: onEvent({topic, data}) for each event of the topics
 *                          (an array or a comma-separated string); returns the EventSource (close() it).
 *   showError(msg) / clearError()   the error banner at the top of the page.
 *   fmt.count(n), fmt.bytes(n), fmt.duration(seconds), fmt.time(epoch seconds)
 *   el(tag, attrs, ...children)     a small DOM builder (attrs: class, text, on<event>, anything else).
 *   Studio.job             the current job as last seen on the `job` topic (or null).
 *   Studio.onJob(fn)       fn(job, line) for every job event (line: a new log line or null).
 *
 * The navigation bar and the job bar (the running job, its progress and a Stop button) are added to every
 * page that includes this script; a page marks its own link with <body data-page="workspace|training|tuner">.
 * The token is in an HttpOnly cookie set on the first load, so requests need nothing more.
 */
"use strict";

const Studio = { job: null, jobListeners: [] };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  let bar = document.getElementById("studio-error");
  if (!bar) {
    bar = el("div", { id: "studio-error", class: "error-banner", role: "alert" });
    document.body.prepend(bar);
  }
  bar.replaceChildren(el("span", { class: "error-text", text: message }),
    el("button", { class: "link", text: "dismiss", onclick: clearError }));
  bar.hidden = false;
}

function clearError() {
  const bar = document.getElementById("studio-error");
  if (bar) bar.hidden = true;
}

async function api(path, opts = {}) {
  const init = { method: opts.method || (opts.body !== undefined ? "POST" : "GET"), credentials: "same-origin",
                 headers: {}, signal: opts.signal };
  if (opts.body !== undefined) {
    const b = opts.body;
    if (b instanceof FormData || b instanceof Blob || typeof b === "string") init.body = b;
    else { init.body = JSON.stringify(b); init.headers["Content-Type"] = "application/json"; }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    const message = "the studio server does not answer (stopped?)";
    if (!opts.quiet) showError(message);
    const e = new Error(message); e.status = 0; throw e;
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (data && data.detail) detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (_) { /* not JSON */ }
    if (response.status === 401) detail += " (open the URL printed by `facelab studio`, with its ?token=)";
    if (!opts.quiet) showError(detail);
    const e = new Error(detail); e.status = response.status; throw e;
  }
  if (opts.raw) return response;
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : response.text();
}

function events(topics, onEvent) {
  const list = Array.isArray(topics) ? topics.join(",") : String(topics);
  const source = new EventSource(`/api/events?topics=${encodeURIComponent(list)}`);
  source.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch (_) { return; }
    onEvent(event);
  };
  return source;
}

const fmt = {
  count: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
  bytes: (n) => {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0; let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  },
  duration: (s) => {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.round(s);
    const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60); const sec = s % 60;
    return h ? `${h}h ${String(m).padStart(2, "0")}m` : m ? `${m}m ${String(sec).padStart(2, "0")}s` : `${sec}s`;
  },
  time: (epoch) => (epoch ? new Date(epoch * 1000).toLocaleTimeString() : "–"),
};

Studio.onJob = (fn) => { Studio.jobListeners.push(fn); if (Studio.job) fn(Studio.job, null); };

function progressText(p) {
  if (!p) return "";
  const total = p.total ? ` / ${fmt.count(p.total)}` : "";
  const pct = p.total ? ` (${Math.floor((100 * p.done) / p.total)}%)` : "";
  return `${p.description || "progress"}: ${fmt.count(p.done)}${total}${pct}`;
}

function buildChrome() {
  const page = document.body.dataset.page || "";
  const links = [["workspace", "/", "Workspace"], ["training", "/training", "Training"], ["tuner", "/tuner", "Merge tuner"],
    ["xseg", "/xseg", "XSeg editor"], ["faces", "/faces", "Face fixing"]];
  const nav = el("nav", { class: "studio-nav" },
    el("span", { class: "brand", text: "facelab studio" }),
    links.map(([key, href, label]) => el("a", { href, class: key === page ? "active" : "", text: label })),
    el("span", { class: "spacer" }),
    el("span", { id: "studio-conn", class: "conn", text: "" }));
  document.body.prepend(nav);

  const bar = el("div", { id: "jobbar", class: "jobbar", hidden: true },
    el("span", { id: "jobbar-kind", class: "job-kind" }),
    el("span", { id: "jobbar-state", class: "badge" }),
    el("progress", { id: "jobbar-progress", max: 1, value: 0 }),
    el("span", { id: "jobbar-text", class: "job-text" }),
    el("span", { id: "jobbar-line", class: "job-line" }),
    el("button", { id: "jobbar-stop", class: "danger small", text: "Stop", onclick: stopJob }));
  document.body.append(bar);

  const source = events(["job"], (event) => {
    if (event.topic !== "job") return;
    Studio.job = event.data;
    renderJobBar(event.data, event.data.line);
    for (const fn of Studio.jobListeners) fn(event.data, event.data.line);
  });
  const conn = document.getElementById("studio-conn");
  source.onopen = () => { conn.textContent = "● live"; conn.className = "conn ok"; };
  source.onerror = () => { conn.textContent = "● reconnecting"; conn.className = "conn bad"; };
}

function renderJobBar(job, line) {
  const bar = document.getElementById("jobbar");
  if (!bar || !job) return;
  bar.hidden = false;
  bar.dataset.state = job.state;
  document.getElementById("jobbar-kind").textContent = `job: ${job.kind}`;
  const state = document.getElementById("jobbar-state");
  state.textContent = job.state; state.className = `badge ${job.state}`;
  const prog = document.getElementById("jobbar-progress");
  if (job.progress && job.progress.total) { prog.max = job.progress.total; prog.value = job.progress.done; }
  else if (job.state !== "running") { prog.max = 1; prog.value = job.state === "done" ? 1 : 0; }
  else prog.removeAttribute("value");
  document.getElementById("jobbar-text").textContent = progressText(job.progress);
  if (line) document.getElementById("jobbar-line").textContent = line;
  document.getElementById("jobbar-stop").hidden = job.state !== "running";
}

async function stopJob() {
  await api("/api/workspace/stop", { method: "POST" });
}

document.addEventListener("DOMContentLoaded", buildChrome);
