/* facelab studio: the face fixing page (/faces).
 *
 * The list of dst frames to look at (no face, a low detector score, a landmark jump against the neighbours);
 * a canvas over the frame with its faces' boxes and 68 landmarks. A drag outside a face places a box and the
 * extraction's landmark model places the points in it; a point can be dragged on its own; a drag inside a box
 * moves it (and refits). "copy previous/next" follows the neighbour's face into this frame as extraction
 * tracks. Save writes the face through the library (the same file `facelab extract` writes); delete removes a
 * false detection. Nothing is written before Save or delete.
 */
"use strict";

const F = {
  overview: null, i: 0, frame: null, img: null, draft: null, selected: null, filter: "all",
  drag: null, boxMode: false, busy: false, loadSeq: 0,
};
const $ = (id) => document.getElementById(id);
const POINT_R = 4; // px on screen

function status(text, cls) { const s = $("fx-status"); s.textContent = text || ""; s.className = cls || "muted"; }

async function loadOverview() {
  F.overview = await api("/api/faces/frames");
  const o = F.overview;
  $("fx-slider").max = Math.max(0, o.count - 1);
  const kinds = { no_face: 0, low_score: 0, jump: 0 };
  for (const row of o.suspicious) for (const r of row.reasons) kinds[r.kind] += 1;
  $("fx-counts").textContent = `${o.count} frames · ${o.no_face.length} without a face · ${kinds.low_score} low score · ` +
    `${kinds.jump} jumps`;
  const opts = o.options || {};
  $("fx-opts").textContent = o.options_error ? o.options_error :
    `faces: ${opts.face_type}, ${opts.size} px, ${opts.image_format} · detector ${opts.detector} · landmarks ${opts.landmarks}`;
  renderList();
}

function suspiciousRows() {
  const rows = F.overview ? F.overview.suspicious : [];
  if (F.filter === "all") return rows;
  return rows.filter((row) => row.reasons.some((r) => r.kind === F.filter));
}

function renderList() {
  const rows = suspiciousRows();
  $("fx-list").replaceChildren(...rows.map((row) => el("div", {
    class: `item ${row.reasons[0].kind}${row.i === F.i ? " current" : ""}`, "data-i": row.i,
    onclick: () => goTo(row.i),
  }, el("span", { class: "stem", text: row.stem }), `frame ${row.i}`,
  el("span", { class: "why", text: row.reasons.map((r) => r.text).join("; ") }))));
  if (!rows.length) $("fx-list").append(el("div", { class: "muted", text: "nothing to look at" }));
}

async function goTo(i) {
  if (!F.overview) return;
  i = Math.max(0, Math.min(F.overview.count - 1, i));
  if (F.draft && !confirmDrop()) return;
  F.i = i; F.draft = null; F.selected = null; F.boxMode = false;
  $("fx-slider").value = i;
  await loadFrame();
}

function confirmDrop() { return true; } // an unsaved draft is dropped on moving away (the page says so)

async function loadFrame() {
  const seq = ++F.loadSeq;
  const frame = await api(`/api/faces/frames/${F.i}`);
  const img = new Image();
  img.src = `/api/faces/frames/${F.i}/image?v=${Date.now()}`;
  await img.decode();
  if (seq !== F.loadSeq) return;
  F.frame = frame; F.img = img;
  if (F.selected !== null && !frame.faces.some((f) => f.face_index === F.selected)) F.selected = null;
  if (F.selected === null && frame.faces.length) F.selected = frame.faces[0].face_index;
  const c = $("fx-canvas");
  if (c.width !== frame.width || c.height !== frame.height) { c.width = frame.width; c.height = frame.height; }
  $("fx-stage").style.setProperty("--ratio", frame.width / frame.height);
  $("fx-frame-label").textContent = `frame ${frame.i} / ${frame.count - 1} · ${frame.stem}`;
  const badge = $("fx-faces");
  badge.textContent = frame.faces.length ? `${frame.faces.length} face${frame.faces.length > 1 ? "s" : ""}` : "no face";
  badge.className = `badge ${frame.faces.length ? "ok" : "bad"}`;
  $("fx-reasons").replaceChildren(...frame.reasons.map((r) => el("li", { text: r.text })));
  renderFaces();
  renderList();
  draw();
  if (!F.draft) status(frame.faces.length ? "" : "no face: drag a box over the face, or copy one from a neighbour");
}

function renderFaces() {
  const list = F.frame.faces.map((f) => el("div", {
    class: `face-row${f.face_index === F.selected ? " selected" : ""}`, "data-face": f.face_index,
    onclick: () => { if (F.draft) return; F.selected = f.face_index; renderFaces(); draw(); },
  }, el("img", { src: `/api/faces/aligned?path=${encodeURIComponent(f.file)}&v=${Date.now()}`, alt: `face ${f.face_index}` }),
  el("div", {}, el("div", { text: `face ${f.face_index}` }),
    el("div", { class: "muted", text: `${f.detector}${f.score !== null ? ` ${f.score.toFixed(2)}` : ""} · ${f.landmarker}` }),
    f.xseg_polygons ? el("div", { class: "muted", text: `${f.xseg_polygons} XSeg polygons` }) : null)));
  $("fx-face-list").replaceChildren(...list);
}

// ---- drawing -------------------------------------------------------------------------------------------

function scale() { const c = $("fx-canvas"); return c.width / c.getBoundingClientRect().width; }

function drawFace(ctx, box, pts, color, s) {
  ctx.strokeStyle = color; ctx.lineWidth = 2 * s;
  ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  if (!pts) return;
  ctx.fillStyle = color;
  for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, 2.2 * s, 0, 2 * Math.PI); ctx.fill(); }
}

function draw() {
  const c = $("fx-canvas"); const ctx = c.getContext("2d");
  if (!F.img) return;
  const s = scale();
  ctx.drawImage(F.img, 0, 0, c.width, c.height);
  for (const f of F.frame.faces) {
    if (F.draft && F.draft.face_index === f.face_index) continue;
    drawFace(ctx, f.rect, f.landmarks, f.face_index === F.selected && !F.draft ? "#e7b549" : "#4cc38a", s);
  }
  if (F.draft) drawFace(ctx, F.draft.box, F.draft.landmarks, "#ff8a3d", s);
  if (F.drag && F.drag.kind === "box") {
    const [x0, y0, x1, y1] = F.drag.rect;
    ctx.setLineDash([6 * s, 4 * s]); ctx.strokeStyle = "#5aa9ff"; ctx.lineWidth = 2 * s;
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.setLineDash([]);
  }
}

// ---- editing -------------------------------------------------------------------------------------------

function framePoint(ev) {
  const r = $("fx-canvas").getBoundingClientRect(); const s = scale();
  return [(ev.clientX - r.left) * s, (ev.clientY - r.top) * s];
}

function current() {
  if (F.draft) return F.draft;
  const f = F.frame && F.frame.faces.find((x) => x.face_index === F.selected);
  return f ? { face_index: f.face_index, box: f.rect.slice(), landmarks: f.landmarks.map((p) => p.slice()),
    detector: f.detector, score: f.score, landmarker: f.landmarker, edited: false } : null;
}

function hitPoint(p) {
  const face = current(); if (!face || !face.landmarks) return -1;
  const tol = POINT_R * 2 * scale();
  let best = -1; let bestD = tol;
  face.landmarks.forEach(([x, y], k) => { const d = Math.hypot(x - p[0], y - p[1]); if (d <= bestD) { best = k; bestD = d; } });
  return best;
}

function faceAt(p) {
  const inside = (b) => p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3];
  if (F.draft && inside(F.draft.box)) return F.draft.face_index === null ? "draft" : F.draft.face_index;
  const f = F.frame.faces.find((x) => inside(x.rect));
  return f ? f.face_index : null;
}

function onDown(ev) {
  if (!F.frame || F.busy || ev.button !== 0) return;
  const p = framePoint(ev);
  $("fx-canvas").setPointerCapture(ev.pointerId);
  const k = F.boxMode ? -1 : hitPoint(p);
  if (k >= 0) { F.draft = current(); F.drag = { kind: "point", k }; return; }
  const at = F.boxMode ? null : faceAt(p);
  if (at !== null) {
    if (at !== "draft" && !F.draft) { F.selected = at; renderFaces(); }
    if (at === "draft" || (F.draft && F.draft.face_index === at) || (!F.draft && at === F.selected)) {
      F.draft = current(); F.drag = { kind: "move", from: p, box: F.draft.box.slice(), pts: F.draft.landmarks.map((q) => q.slice()) };
      draw(); return;
    }
  }
  F.drag = { kind: "box", rect: [p[0], p[1], p[0], p[1]] };
}

function onMove(ev) {
  const p = framePoint(ev);
  if (!F.drag) { $("fx-canvas").classList.toggle("on-point", F.frame && !F.boxMode && hitPoint(p) >= 0); return; }
  if (F.drag.kind === "point") { F.draft.landmarks[F.drag.k] = p; F.draft.edited = true; F.drag.moved = true; }
  else if (F.drag.kind === "move") {
    const dx = p[0] - F.drag.from[0]; const dy = p[1] - F.drag.from[1];
    F.draft.box = [F.drag.box[0] + dx, F.drag.box[1] + dy, F.drag.box[2] + dx, F.drag.box[3] + dy];
    F.draft.landmarks = F.drag.pts.map(([x, y]) => [x + dx, y + dy]); F.drag.moved = Math.hypot(dx, dy) > 2;
  } else { F.drag.rect[2] = p[0]; F.drag.rect[3] = p[1]; }
  draw();
}

async function onUp(ev) {
  const drag = F.drag; F.drag = null;
  if (!drag) return;
  try { $("fx-canvas").releasePointerCapture(ev.pointerId); } catch (_) { /* released */ }
  if (drag.kind === "point") { if (drag.moved) status(`point ${drag.k} moved: unsaved (S saves)`, "draft"); draw(); return; }
  if (drag.kind === "move") { if (drag.moved) await fit(F.draft.box, F.draft.face_index); else { F.draft = F.draft.edited ? F.draft : null; draw(); } return; }
  const [x0, y0, x1, y1] = drag.rect;
  const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
  draw();
  if (box[2] - box[0] < 8 || box[3] - box[1] < 8) return; // a click, not a box
  F.boxMode = false; $("fx-box").classList.remove("primary");
  const replacing = F.draft ? F.draft.face_index : null;
  await fit(box, replacing);
}

async function fit(box, faceIndex) {
  F.busy = true; status("the landmark model is placing the points…", "draft");
  try {
    const r = await api(`/api/faces/frames/${F.i}/fit`, { body: { box } });
    F.draft = { face_index: faceIndex, box: r.box, landmarks: r.landmarks, detector: r.detector, score: r.score,
      landmarker: r.landmarker, edited: false };
    status(`${faceIndex === null ? "new face" : `face ${faceIndex}`} placed by ${r.landmarker}: unsaved (S saves)`, "draft");
  } catch (err) {
    status(err.message, "muted");
  } finally { F.busy = false; draw(); }
}

async function copyFrom(delta) {
  if (!F.frame || F.busy) return;
  const src = F.i + delta;
  if (src < 0 || src >= F.overview.count) { showError(`there is no frame ${src}`); return; }
  const srcFrame = await api(`/api/faces/frames/${src}`);
  if (!srcFrame.faces.length) { showError(`frame ${src} (${srcFrame.stem}) has no face to copy`); return; }
  // the neighbour's face nearest the selected one (or its first face)
  const cur = current();
  let pick = srcFrame.faces[0];
  if (cur) {
    const cx = (cur.box[0] + cur.box[2]) / 2; const cy = (cur.box[1] + cur.box[3]) / 2;
    const d = (f) => Math.hypot((f.rect[0] + f.rect[2]) / 2 - cx, (f.rect[1] + f.rect[3]) / 2 - cy);
    pick = srcFrame.faces.reduce((a, b) => (d(b) < d(a) ? b : a));
  }
  F.busy = true; status("following the face into this frame…", "draft");
  try {
    const r = await api(`/api/faces/frames/${F.i}/track`, { body: { source: src, face_index: pick.face_index } });
    const replace = cur && !F.draft ? cur.face_index : (F.draft ? F.draft.face_index : null);
    F.draft = { face_index: replace, box: r.box, landmarks: r.landmarks, detector: r.detector, score: r.score,
      landmarker: r.landmarker, edited: false };
    status(`face ${pick.face_index} of frame ${src} ${r.tracked ? "tracked" : "copied (the detector lost it; points refit in its box)"}` +
      ` into ${replace === null || replace === undefined ? "a new face" : `face ${replace}`}: unsaved (S saves)`, "draft");
  } catch (err) { status(err.message); } finally { F.busy = false; draw(); }
}

async function save() {
  if (!F.draft || F.busy) { if (!F.draft) status("nothing to save: place a box or move a point first"); return; }
  const d = F.draft;
  F.busy = true; status("saving…", "draft");
  try {
    const body = { face_index: d.face_index, box: d.box, landmarks: d.landmarks, detector: d.detector, score: d.score,
      landmarker: d.edited ? `${String(d.landmarker).split("+")[0]}+edited` : d.landmarker };
    const r = await api(`/api/faces/frames/${F.i}/save`, { body });
    F.draft = null;
    F.selected = r.faces.length ? Number(r.written.match(/_(\d+)\.[a-z]+$/)[1]) : null;
    await loadOverview(); await loadFrame();
    status(`saved ${r.written}${r.merged_dropped.length ? " (the old merged frame was removed: merge redoes it)" : ""}`, "ok");
  } catch (err) { status(err.message); } finally { F.busy = false; draw(); }
}

async function removeFace() {
  if (F.busy || !F.frame) return;
  if (F.draft) { revert(); return; }
  if (F.selected === null) { status("select a face to delete"); return; }
  F.busy = true;
  try {
    const r = await api(`/api/faces/frames/${F.i}/faces/${F.selected}`, { method: "DELETE" });
    F.selected = null;
    await loadOverview(); await loadFrame();
    status(`removed ${r.removed}${r.faces.length ? "" : ": merge passes the frame through"}`, "ok");
  } catch (err) { status(err.message); } finally { F.busy = false; }
}

function revert() { F.draft = null; status("change dropped"); draw(); }

function nextSuspicious(dir) {
  const rows = suspiciousRows();
  if (!rows.length) { status("nothing suspicious"); return; }
  const pick = dir > 0 ? rows.find((r) => r.i > F.i) || rows[0] : [...rows].reverse().find((r) => r.i < F.i) || rows[rows.length - 1];
  goTo(pick.i);
}

function onKey(ev) {
  if (ev.target.matches("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key;
  if (k === "ArrowRight") goTo(F.i + 1);
  else if (k === "ArrowLeft") goTo(F.i - 1);
  else if (k === "n" || k === "N") nextSuspicious(ev.shiftKey ? -1 : 1);
  else if (k === "s" || k === "S") save();
  else if (k === "b" || k === "B") toggleBox();
  else if (k === "p" || k === "P") copyFrom(ev.shiftKey ? 1 : -1);
  else if ((k === "f" || k === "F") && current()) fit(current().box, current().face_index);
  else if (k === "Escape") revert();
  else if (k === "Delete" || k === "Backspace") removeFace();
  else if (k === "Tab" && F.frame && F.frame.faces.length && !F.draft) {
    const idx = F.frame.faces.findIndex((f) => f.face_index === F.selected);
    F.selected = F.frame.faces[(idx + 1) % F.frame.faces.length].face_index; renderFaces(); draw();
  } else return;
  ev.preventDefault();
}

function toggleBox() { F.boxMode = !F.boxMode; $("fx-box").classList.toggle("primary", F.boxMode); status(F.boxMode ? "drag a box over the face" : ""); }

async function init() {
  const c = $("fx-canvas");
  c.addEventListener("pointerdown", onDown); c.addEventListener("pointermove", onMove); c.addEventListener("pointerup", onUp);
  $("fx-slider").addEventListener("change", (e) => goTo(Number(e.target.value)));
  $("fx-prev").onclick = () => goTo(F.i - 1); $("fx-next").onclick = () => goTo(F.i + 1);
  $("fx-next-sus").onclick = () => nextSuspicious(1);
  $("fx-filter").onchange = (e) => { F.filter = e.target.value; renderList(); };
  $("fx-box").onclick = toggleBox;
  $("fx-copy-prev").onclick = () => copyFrom(-1); $("fx-copy-next").onclick = () => copyFrom(1);
  $("fx-refit").onclick = () => { const f = current(); if (f) fit(f.box, f.face_index); };
  $("fx-save").onclick = save; $("fx-revert").onclick = revert; $("fx-delete").onclick = removeFace;
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", draw);
  try {
    await loadOverview();
  } catch (err) { $("fx-notice").textContent = err.message; $("fx-notice").hidden = false; return; }
  // another tab saved a face, or an extraction job ended: refresh the list (and the frame when no edit is open)
  const refresh = async () => { await loadOverview(); if (!F.draft && !F.busy) await loadFrame(); };
  events(["faces"], () => { refresh().catch(() => {}); });
  Studio.onJob((job) => { if (job.state !== "running" && job.kind && job.kind.startsWith("extract")) refresh().catch(() => {}); });
  const start = F.overview.suspicious.length ? F.overview.suspicious[0].i : 0;
  await goTo(start);
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
