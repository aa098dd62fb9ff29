/* facelab studio: the merge tuner page.
 *
 * The page keeps a draft of the merge session (options, ranges, per-frame overrides). The controls show the
 * options of the current frame as the draft resolves them (session options < ranges in order < the frame's
 * own overrides); moving a control marks it changed and renders the frame again with the changed values
 * (they stay while you scrub, so you can look at other frames first); "apply" puts the changed values on
 * this frame, a range or all frames (the server validates and returns the new draft), "Save session"
 * writes merge_session.json. Latest request wins: a new render aborts the fetch in flight, and the server
 * drops an overtaken request (client id + sequence number) before its expensive steps.
 *
 * window.tunerStats: [{kind: "option"|"frame", ms}] from the input event to the new frame painted (the
 * benchmark, benchmarks/studio.py, reads it).
 */
"use strict";

const T = {
  frames: null, schema: null, props: {}, frameKeys: [], runKeys: [],
  draft: null, savedText: "", corrupt: false,
  idx: 0, values: {}, sources: {}, dirty: new Set(),
  client: Math.random().toString(36).slice(2) + Date.now().toString(36),
  seq: 0, inflight: null, afterUrl: null, view: "merged", controls: {},
};
window.tunerStats = [];

// ---- session resolution (the same rules as facelab.merge.session.MergeSession.options_for) ----------------

function frameKey(stem) {
  return /^\d+$/.test(stem) ? [0, Number(stem), stem] : [1, 0, stem];
}

function cmpKey(a, b) {
  for (let i = 0; i < 3; i += 1) { if (a[i] < b[i]) return -1; if (a[i] > b[i]) return 1; }
  return 0;
}

function covers(range, stem) {
  const k = frameKey(stem);
  return cmpKey(frameKey(range.first), k) <= 0 && cmpKey(k, frameKey(range.last)) <= 0;
}

function resolve(draft, stem) {
  const values = { ...draft.options };
  const sources = {};
  for (const range of draft.ranges || []) {
    if (!covers(range, stem)) continue;
    for (const [k, v] of Object.entries(range.options)) { values[k] = v; sources[k] = "range"; }
  }
  for (const [k, v] of Object.entries((draft.frames || {})[stem] || {})) { values[k] = v; sources[k] = "frame"; }
  return { values, sources };
}

// ---- controls, generated from the options' JSON schema --------------------------------------------------

function propType(p) {
  if (p.enum) return "enum";
  if (p.type === "boolean") return "bool";
  if (p.type === "number" || p.type === "integer") return "number";
  return "text"; // paths (string or null)
}

function buildControl(key) {
  const p = T.props[key];
  const kind = propType(p);
  const label = el("label", { for: `opt-${key}`, text: (p.title || key).replace(/ /g, "\u00a0"), title: p.description || "" });
  const src = el("span", { class: "src base", title: "" });
  const row = el("div", { class: "ctl", "data-key": key }, label);
  let read; let write;
  const changed = (ev) => onOptionInput(key, read(), ev);
  if (kind === "number") {
    const step = p.type === "integer" ? 1 : (p.maximum - p.minimum) <= 20 ? 0.1 : 0.5;
    const range = el("input", { type: "range", id: `opt-${key}`, min: p.minimum, max: p.maximum, step, name: key });
    const num = el("input", { type: "number", min: p.minimum, max: p.maximum, step, "aria-label": key });
    range.addEventListener("input", (ev) => { num.value = range.value; changed(ev); });
    num.addEventListener("change", (ev) => { range.value = num.value; changed(ev); });
    read = () => Number(num.value);
    write = (v) => { range.value = v; num.value = v; };
    row.append(range, num);
  } else if (kind === "enum") {
    const sel = el("select", { id: `opt-${key}`, name: key }, p.enum.map((v) => el("option", { value: v, text: v })));
    sel.addEventListener("change", changed);
    read = () => sel.value;
    write = (v) => { sel.value = v; };
    row.append(sel);
  } else if (kind === "bool") {
    const box = el("input", { type: "checkbox", id: `opt-${key}`, name: key });
    box.addEventListener("change", changed);
    read = () => box.checked;
    write = (v) => { box.checked = Boolean(v); };
    row.append(box, el("span"));
  } else {
    const text = el("input", { type: "text", id: `opt-${key}`, name: key, placeholder: "folder in the workspace" });
    text.addEventListener("change", changed);
    read = () => (text.value.trim() === "" ? null : text.value.trim());
    write = (v) => { text.value = v === null || v === undefined ? "" : v; };
    row.append(text);
  }
  row.append(src);
  T.controls[key] = { row, read, write, src };
  return row;
}

function showControls() {
  for (const [key, c] of Object.entries(T.controls)) {
    c.write(T.values[key]);
    const s = T.sources[key] || "base";
    c.src.className = `src ${s}`;
    c.src.title = s === "frame" ? "set for this frame" : s === "range" ? "set by a range" : "the session's option";
    c.row.classList.toggle("dirty", T.dirty.has(key));
  }
  document.getElementById("unsaved").hidden = JSON.stringify(T.draft) === T.savedText;
}

// ---- frames and rendering -------------------------------------------------------------------------------

function stem() { return T.frames.stems[T.idx]; }

function resolveCurrent() {
  const { values, sources } = resolve(T.draft, stem());
  for (const k of T.dirty) values[k] = T.values[k];
  T.values = values; T.sources = sources;
}

function setFrame(i, t0, kind = "frame") {
  const n = T.frames.count;
  T.idx = Math.max(0, Math.min(n - 1, i));
  document.getElementById("frame-slider").value = T.idx;
  const faces = T.frames.faces[T.idx];
  document.getElementById("t-frame-label").textContent = `frame ${T.idx} / ${n - 1} · ${stem()}`;
  const badge = document.getElementById("t-faces");
  badge.textContent = faces ? `${faces} face${faces > 1 ? "s" : ""}` : "no face: passed through";
  badge.className = faces ? "badge ok" : "badge warn";
  resolveCurrent();
  showControls();
  if (T.view !== "merged") loadBefore();
  render(kind, t0);
}

function loadBefore() {
  document.getElementById("img-before").src = `/api/tuner/frames/${T.idx}/original`;
}

function renderParams(seq) {
  const params = new URLSearchParams();
  for (const key of [...T.frameKeys, ...T.runKeys]) {
    const v = T.values[key];
    params.set(key, v === null || v === undefined ? "" : String(v));
  }
  params.set("fmt", "jpg"); params.set("client", T.client); params.set("seq", String(seq));
  return params;
}

function painted() {
  // resolves right after the next frame is painted: a task queued from a requestAnimationFrame callback runs
  // after that frame's paint
  return new Promise((done) => requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => done(performance.now());
    ch.port2.postMessage(0);
  }));
}

async function render(kind, t0) {
  if (T.inflight) T.inflight.abort();
  const ctrl = new AbortController();
  T.inflight = ctrl;
  T.seq += 1;
  const seq = T.seq;
  const start = t0 === undefined ? performance.now() : t0;
  let response;
  try {
    response = await api(`/api/tuner/frames/${T.idx}/merged?${renderParams(seq)}`, { signal: ctrl.signal, raw: true, quiet: true });
  } catch (err) {
    if (err.name === "AbortError" || err.status === 409) return; // overtaken by a newer request
    if (seq === T.seq) showError(err.message);
    return;
  }
  let blob;
  try { blob = await response.blob(); } catch (_) { return; }
  if (seq !== T.seq) return;
  const img = document.getElementById("img-after");
  const url = URL.createObjectURL(blob);
  const probe = new Image();
  probe.src = url;
  try { await probe.decode(); } catch (_) { URL.revokeObjectURL(url); return; }
  if (seq !== T.seq) { URL.revokeObjectURL(url); return; }
  img.src = url;
  try { await img.decode(); } catch (_) { /* decoded above */ }
  if (T.afterUrl) URL.revokeObjectURL(T.afterUrl);
  T.afterUrl = url;
  const viewer = document.getElementById("viewer");
  viewer.style.setProperty("--aspect", `${probe.naturalWidth} / ${probe.naturalHeight}`);
  viewer.style.setProperty("--ratio", String(probe.naturalWidth / probe.naturalHeight));
  img.dataset.seq = String(seq);
  img.dataset.frame = String(T.idx);
  clearError();
  const end = await painted();
  const ms = end - start;
  window.tunerStats.push({ kind, ms, frame: T.idx, server: Number(response.headers.get("x-render-ms")),
                           model: Number(response.headers.get("x-predict-ms")) });
  document.getElementById("t-stats").textContent =
    `${kind === "frame" ? "frame" : "setting"} → painted ${ms.toFixed(0)} ms (server ${response.headers.get("x-render-ms")} ms)`;
  viewer.dataset.painted = String(seq);
}

function onOptionInput(key, value, ev) {
  const t0 = ev && ev.timeStamp ? ev.timeStamp : performance.now();
  T.values[key] = value;
  T.dirty.add(key);
  T.controls[key].row.classList.add("dirty");
  render("option", t0);
}

function nextWithoutFace(dir = 1) {
  const n = T.frames.count;
  for (let k = 1; k < n; k += 1) {
    const i = (T.idx + dir * k + n) % n;
    if (!T.frames.faces[i]) return i;
  }
  return null;
}

function setView(view) {
  T.view = view;
  document.getElementById("viewer").dataset.view = view;
  for (const r of document.querySelectorAll("input[name=view]")) r.checked = r.value === view;
  if (view !== "merged") loadBefore();
}

// ---- the session ----------------------------------------------------------------------------------------

function drawTicks() {
  const box = document.getElementById("ticks");
  const n = Math.max(1, T.frames.count - 1);
  const pos = {};
  T.frames.stems.forEach((s, i) => { pos[s] = i; });
  const marks = [];
  for (const r of T.draft.ranges || []) {
    if (!(r.first in pos) || !(r.last in pos)) continue;
    const a = (100 * pos[r.first]) / n; const b = (100 * pos[r.last]) / n;
    marks.push(el("span", { class: "range", style: `left:${a}%; width:max(2px, ${b - a}%)`, title: `range ${r.first}–${r.last}` }));
  }
  for (const s of Object.keys(T.draft.frames || {})) {
    if (s in pos) marks.push(el("span", { style: `left:${(100 * pos[s]) / n}%`, title: `frame ${s}` }));
  }
  box.replaceChildren(...marks);
}

function sessionChanged() {
  drawTicks();
  resolveCurrent();
  showControls();
  const nr = (T.draft.ranges || []).length; const nf = Object.keys(T.draft.frames || {}).length;
  document.getElementById("session-note").textContent = `merge_session.json · ${nr} range${nr === 1 ? "" : "s"}, ${nf} frame override${nf === 1 ? "" : "s"}`;
}

async function loadSession() {
  const got = await api("/api/tuner/session");
  T.draft = got.session;
  T.corrupt = Boolean(got.error);
  T.savedText = T.corrupt ? "" : JSON.stringify(got.session);
  const notice = document.getElementById("t-notice");
  notice.hidden = !got.error;
  notice.textContent = got.error ? `${got.error} — the tuner starts from the default options; the file stays as it is unless you save over it.` : "";
  T.dirty.clear();
}

async function applyTo(scope) {
  if (!T.dirty.size) { showError("nothing to apply: change a setting first"); return; }
  const options = {};
  for (const k of T.dirty) options[k] = T.values[k];
  const body = { session: T.draft, scope, options };
  if (scope === "frame") body.frame = stem();
  if (scope === "range") {
    const a = Number(document.getElementById("range-first").value); const b = Number(document.getElementById("range-last").value);
    const n = T.frames.count;
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0 || a >= n || b >= n) {
      showError(`range: frames go from 0 to ${n - 1}`); return;
    }
    body.first = T.frames.stems[a]; body.last = T.frames.stems[b];
  }
  const got = await api("/api/tuner/session/apply", { body });
  T.draft = got.session;
  T.dirty.clear();
  clearError();
  sessionChanged();
  render("option");
}

async function save() {
  let overwrite = false;
  if (T.corrupt) {
    if (!window.confirm("merge_session.json on disk cannot be read. Replace it with this session?")) return false;
    overwrite = true;
  }
  const got = await api("/api/tuner/session", { method: "PUT", body: { session: T.draft, overwrite } });
  T.draft = got.session; T.corrupt = false; T.savedText = JSON.stringify(got.session);
  document.getElementById("t-notice").hidden = true;
  clearError();
  sessionChanged();
  return true;
}

async function startMerge(video) {
  if (T.dirty.size) { showError("apply or revert the changed settings first (they are not in the session yet)"); return; }
  if (JSON.stringify(T.draft) !== T.savedText && !(await save())) return;
  await api("/api/tuner/merge", { body: { video } });
}

// ---- wiring ---------------------------------------------------------------------------------------------

function isFormField(target) {
  if (!target || !target.tagName) return false;
  if (target.id === "frame-slider") return false;
  return ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(target.tagName);
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || isFormField(ev.target)) return;
  const t0 = ev.timeStamp;
  if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
    ev.preventDefault();
    setFrame(T.idx + (ev.key === "ArrowRight" ? 1 : -1), t0);
  } else if (ev.key === "n" || ev.key === "N") {
    const i = nextWithoutFace(ev.shiftKey ? -1 : 1);
    if (i === null) showError("every frame has a face"); else setFrame(i, t0);
  } else if (ev.key === " ") {
    ev.preventDefault();
    setView(T.view === "original" ? "merged" : "original");
  } else if (ev.key === "s" || ev.key === "S") {
    setView(T.view === "split" ? "merged" : "split");
  }
}

function wireSplit() {
  const viewer = document.getElementById("viewer");
  let dragging = false;
  const move = (ev) => {
    if (T.view !== "split" || (!dragging && ev.type === "pointermove" && ev.buttons === 0)) return;
    const r = viewer.getBoundingClientRect();
    const x = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width));
    viewer.style.setProperty("--split", `${(x * 100).toFixed(2)}%`);
  };
  viewer.addEventListener("pointerdown", (ev) => { dragging = true; move(ev); });
  window.addEventListener("pointerup", () => { dragging = false; });
  viewer.addEventListener("pointermove", move);
}

// ---- background warm-up progress ------------------------------------------------------------------------

const WARMUP_BUSY = new Set(["idle", "loading", "running"]);

function showWarmup(w) {
  const el = document.getElementById("t-warmup");
  if (!w || !w.total || w.state === "unavailable" || w.state === "error") {
    el.textContent = ""; el.dataset.state = w ? w.state : ""; return;
  }
  const full = w.state === "full" ? " (cache full)" : "";
  el.textContent = w.state === "loading" ? "loading the model…" : `predicted ${w.cached}/${w.total} batches${full}`;
  el.dataset.state = w.state;
  el.dataset.cached = String(w.cached);
}

async function pollWarmup() {
  let w = null;
  try { w = await api("/api/tuner/warmup", { quiet: true }); } catch (err) { w = null; }
  showWarmup(w);
  setTimeout(pollWarmup, w && WARMUP_BUSY.has(w.state) ? 1500 : 6000);
}

async function main() {
  const [frames, schema] = await Promise.all([api("/api/tuner/frames"), api("/api/tuner/schema")]);
  T.frames = frames; T.schema = schema; T.props = schema.schema.properties;
  T.frameKeys = schema.frame_keys; T.runKeys = schema.run_keys;
  await loadSession();
  document.getElementById("ctl-frame").replaceChildren(...T.frameKeys.map(buildControl));
  document.getElementById("ctl-run").replaceChildren(...T.runKeys.map(buildControl));
  const slider = document.getElementById("frame-slider");
  slider.max = String(frames.count - 1);
  slider.addEventListener("input", (ev) => setFrame(Number(slider.value), ev.timeStamp));
  document.getElementById("range-first").max = String(frames.count - 1);
  document.getElementById("range-last").max = String(frames.count - 1);
  document.getElementById("b-prev").onclick = (ev) => setFrame(T.idx - 1, ev.timeStamp);
  document.getElementById("b-next").onclick = (ev) => setFrame(T.idx + 1, ev.timeStamp);
  document.getElementById("b-noface").onclick = (ev) => {
    const i = nextWithoutFace(1);
    if (i === null) showError("every frame has a face"); else setFrame(i, ev.timeStamp);
  };
  for (const r of document.querySelectorAll("input[name=view]")) r.addEventListener("change", () => setView(r.value));
  document.getElementById("apply-frame").onclick = () => applyTo("frame");
  document.getElementById("apply-range").onclick = () => applyTo("range");
  document.getElementById("apply-all").onclick = () => applyTo("all");
  document.getElementById("reset-frame").onclick = () => {
    const frames2 = { ...(T.draft.frames || {}) };
    delete frames2[stem()];
    T.draft = { ...T.draft, frames: frames2 };
    sessionChanged();
    render("option");
  };
  document.getElementById("save").onclick = () => save();
  document.getElementById("revert").onclick = async () => { await loadSession(); sessionChanged(); render("option"); };
  document.getElementById("merge").onclick = () => startMerge(false);
  document.getElementById("merge-video").onclick = () => startMerge(true);
  document.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", (ev) => {
    if (JSON.stringify(T.draft) !== T.savedText && !T.corrupt) { ev.preventDefault(); ev.returnValue = ""; }
  });
  wireSplit();
  sessionChanged();
  const first = Number(new URLSearchParams(location.search).get("frame") || 0);
  setFrame(Number.isFinite(first) ? first : 0);
  showWarmup(frames.warmup);
  setTimeout(pollWarmup, 1000);
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  main().catch((err) => { if (err && err.name !== "AbortError") showError(err.message || String(err)); });
});
