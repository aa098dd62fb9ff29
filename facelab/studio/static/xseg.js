/* facelab studio: the XSeg editor page (/xseg).
 *
 * Coordinates: polygon points are aligned-face pixels in OpenCV's convention (pixel (i, j)'s centre at x=i,
 * y=j), as stored in a face record's xseg_polygons. The view maps them to canvas CSS pixels:
 *   screen = (p + 0.5) * view.s + view.o        p = (screen - view.o) / view.s - 0.5
 * The canvas exposes the view as data-scale, data-ox, data-oy (and data-size, the face's size) so scripts
 * and tests can place clicks exactly.
 */
"use strict";

const XS = {
  sets: [], set: "", readOnly: false, faces: [], index: -1, face: null, image: null, size: 0,
  polys: [], kind: "include", undo: [], redo: [], dirty: false, selected: -1,
  view: { s: 1, ox: 0, oy: 0 }, hover: null, drag: null, pan: null, space: false, cursor: null,
  overlay: { source: "none", opacity: 0.45, canvas: null, key: "" }, schema: null, modelState: null,
  loadSeq: 0,
};
const HIT = 7; // px: a point under the cursor
const EDGE = 6; // px: an edge under the cursor
const $ = (id) => document.getElementById(id);
const canvas = () => $("xs-canvas");

function setStatus(text, cls = "") {
  const s = $("xs-status");
  s.textContent = text; s.className = cls;
}

function q(params) {
  return Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

// ---- facesets and the grid ------------------------------------------------------------------------------

async function loadSets() {
  const data = await api("/api/xseg/facesets");
  XS.sets = data.facesets;
  const sel = $("xs-set");
  sel.replaceChildren(...XS.sets.map((s) => el("option", { value: s.path, text: s.path + (s.pack ? " (pack, read-only)" : "") })));
  $("xs-models").replaceChildren(...data.models.map((m) => el("option", { value: m })));
  if (data.models.length && !data.models.includes($("xs-model").value)) $("xs-model").value = data.models[0];
  const wanted = new URLSearchParams(location.search).get("set");
  if (wanted && XS.sets.some((s) => s.path === wanted)) sel.value = wanted;
  renderTrainSets();
  if (!XS.sets.length) {
    setStatus("no faceset in this workspace: extract faces first (src/aligned, dst/aligned)", "error");
    return;
  }
  await selectSet(sel.value);
}

function renderTrainSets() {
  const box = $("xs-train-sets");
  const folders = XS.sets.filter((s) => !s.pack);
  box.replaceChildren(...folders.map((s) => el("label", { style: "display:flex" },
    el("input", { type: "checkbox", value: s.path, class: "xs-train-set", checked: s.path === XS.set || undefined }),
    s.path)));
}

async function selectSet(path) {
  if (!(await leaveFace())) { $("xs-set").value = XS.set; return; }
  XS.set = path;
  for (const box of document.querySelectorAll(".xs-train-set")) box.checked = box.value === path;
  XS.index = -1;
  await loadFaces(null);
}

async function loadFaces(keepName) {
  const params = { set: XS.set, filter: $("xs-filter").value, sort: $("xs-sort").value, desc: $("xs-desc").checked };
  const data = await api(`/api/xseg/faces?${q(params)}`);
  XS.faces = data.faces;
  XS.readOnly = data.read_only;
  const note = $("xs-note");
  note.hidden = !data.note; note.textContent = data.note || "";
  $("xs-save").disabled = XS.readOnly;
  $("xs-apply").disabled = XS.readOnly;
  $("xs-counts").textContent = `${fmt.count(data.faces.length)} shown · ${fmt.count(data.total)} faces · `
    + `${fmt.count(data.labelled)} labelled · ${fmt.count(data.masked)} masked`
    + (data.invalid.length ? ` · ${data.invalid.length} unreadable` : "");
  $("xs-sub").textContent = XS.set;
  renderGrid();
  let i = keepName ? XS.faces.findIndex((f) => f.name === keepName) : -1;
  if (i < 0 && XS.faces.length) i = 0;
  if (i >= 0 && (!XS.face || XS.face.name !== (XS.faces[i] || {}).name)) await openFace(i, true);
  else if (i >= 0) { XS.index = i; markCurrent(); }
  else { XS.index = -1; XS.face = null; XS.polys = []; draw(); $("xs-facehead").textContent = "no face matches the filter"; }
}

function thumbTags(f) {
  const tags = [];
  if (f.polygons) tags.push(el("span", { class: "tag poly", text: `${f.polygons}▱` }));
  if (f.masked) tags.push(el("span", { class: "tag mask", text: "M" }));
  if (f.yaw !== null && $("xs-sort").value === "yaw") tags.push(el("span", { class: "tag yaw", text: `${Math.round(f.yaw)}°` }));
  if (f.pitch !== null && $("xs-sort").value === "pitch") tags.push(el("span", { class: "tag yaw", text: `${Math.round(f.pitch)}°` }));
  return tags;
}

function renderGrid() {
  const grid = $("xs-grid");
  grid.replaceChildren(...XS.faces.map((f, i) => el("div", {
    class: "xs-thumb", "data-name": f.name, title: `${f.name} · frame ${f.frame}`,
    onclick: () => openFace(i),
  }, el("img", { loading: "lazy", alt: f.name, src: `/api/xseg/image?${q({ set: XS.set, name: f.name, thumb: 1 })}` }),
  thumbTags(f))));
  markCurrent();
}

function updateThumb(summary) {
  const i = XS.faces.findIndex((f) => f.name === summary.name);
  if (i < 0) return;
  Object.assign(XS.faces[i], summary);
  const node = $("xs-grid").children[i];
  if (node) node.replaceChildren(node.querySelector("img"), ...thumbTags(XS.faces[i]));
}

function markCurrent() {
  const grid = $("xs-grid");
  for (const node of grid.children) node.classList.toggle("current", XS.face && node.dataset.name === XS.face.name);
  const cur = grid.children[XS.index];
  if (cur) cur.scrollIntoView({ block: "nearest" });
}

// ---- one face ----------------------------------------------------------------------------------------------

async function leaveFace() {
  if (!XS.dirty || !XS.face) return true;
  if (!XS.readOnly && $("xs-autosave").checked) return save();
  return confirm(`${XS.face.name} has unsaved polygons: leave it without saving?`);
}

async function openFace(i, force = false) {
  if (i < 0 || i >= XS.faces.length) return;
  if (!force && XS.face && XS.faces[i].name === XS.face.name) return;
  if (!force && !(await leaveFace())) return;
  const seq = ++XS.loadSeq;
  const name = XS.faces[i].name;
  const rec = await api(`/api/xseg/face?${q({ set: XS.set, name })}`);
  const img = new Image();
  img.src = `/api/xseg/image?${q({ set: XS.set, name })}`;
  await img.decode();
  if (seq !== XS.loadSeq) return;
  XS.index = i; XS.face = rec; XS.image = img; XS.size = rec.size;
  XS.polys = rec.polygons.map((p) => ({ kind: p.kind, points: p.points.map((pt) => [pt[0], pt[1]]), closed: true }));
  XS.undo = []; XS.redo = []; XS.dirty = false; XS.selected = -1; XS.hover = null; XS.drag = null;
  XS.overlay.canvas = null; XS.overlay.key = "";
  fit();
  markCurrent();
  renderHead();
  setStatus(`${rec.polygons.length} polygon(s) stored`);
  await refreshOverlay();
  document.body.dataset.face = name;
}

function renderHead() {
  const f = XS.face;
  if (!f) { $("xs-facehead").textContent = "no face open"; return; }
  const pts = XS.polys.reduce((n, p) => n + p.points.length, 0);
  const pose = f.yaw === null ? "" : ` · yaw ${f.yaw}° pitch ${f.pitch}°`;
  $("xs-facehead").replaceChildren(el("b", { text: f.name }),
    ` · ${XS.index + 1}/${XS.faces.length} · frame ${f.frame} face ${f.face_index} · ${f.size}px ${f.face_type}${pose} · `
    + `${XS.polys.length} polygon(s), ${pts} point(s) · drawing ${XS.kind}`,
    XS.dirty ? el("span", { class: "xs-dirty", text: " · ● unsaved" }) : "",
    XS.readOnly ? el("span", { class: "xs-dirty", text: " · read-only" }) : "");
  document.body.dataset.dirty = XS.dirty ? "1" : "0";
}

function cleanPolys() {
  return XS.polys.filter((p) => p.points.length >= 3)
    .map((p) => ({ kind: p.kind, points: p.points.map((pt) => [pt[0], pt[1]]) }));
}

async function save() {
  if (!XS.face) return false;
  if (XS.readOnly) { setStatus("read-only faceset (a pack): nothing saved", "error"); return false; }
  const name = XS.face.name;
  try {
    const out = await api("/api/xseg/polygons", { method: "PUT", body: { set: XS.set, name, polygons: cleanPolys() } });
    if (XS.face && XS.face.name === name) {
      XS.polys = out.polygons.map((p) => ({ kind: p.kind, points: p.points, closed: true }));
      XS.dirty = false;
      XS.face = Object.assign(XS.face, out);
      renderHead(); draw();
    }
    updateThumb(out);
    setStatus(`saved ${out.polygons.length} polygon(s) into ${name}`, "ok");
    document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
    return true;
  } catch (err) {
    setStatus(`not saved: ${err.message}`, "error");
    return false;
  }
}

// ---- editing state -------------------------------------------------------------------------------------------

function snapshot() { return JSON.stringify(XS.polys); }

function pushUndo() {
  XS.undo.push(snapshot());
  if (XS.undo.length > 200) XS.undo.shift();
  XS.redo = [];
  XS.dirty = true;
}

function undo() {
  if (!XS.undo.length) return;
  XS.redo.push(snapshot());
  XS.polys = JSON.parse(XS.undo.pop());
  XS.dirty = true; XS.selected = Math.min(XS.selected, XS.polys.length - 1);
  renderHead(); draw();
}

function redo() {
  if (!XS.redo.length) return;
  XS.undo.push(snapshot());
  XS.polys = JSON.parse(XS.redo.pop());
  XS.dirty = true;
  renderHead(); draw();
}

function openPoly() {
  const last = XS.polys[XS.polys.length - 1];
  return last && !last.closed ? last : null;
}

function closeOpen() {
  const p = openPoly();
  if (!p) return;
  pushUndo();
  if (p.points.length >= 3) p.closed = true; else XS.polys.pop();
  renderHead(); draw();
}

function dropOpen() {
  if (!openPoly()) return;
  pushUndo();
  XS.polys.pop();
  renderHead(); draw();
}

function setKind(kind) {
  XS.kind = kind;
  for (const b of document.querySelectorAll(".kind-btn")) b.classList.toggle("active", b.dataset.kind === kind);
  const p = openPoly();
  if (p && p.kind !== kind) { pushUndo(); p.kind = kind; }
  renderHead(); draw();
}

function deletePoint(hit) {
  pushUndo();
  const poly = XS.polys[hit.poly];
  poly.points.splice(hit.pt, 1);
  if (poly.points.length < (poly.closed ? 3 : 1)) { XS.polys.splice(hit.poly, 1); XS.selected = -1; }
  XS.hover = null;
  renderHead(); draw();
}

function deletePolygon(i) {
  if (i < 0 || i >= XS.polys.length) return;
  pushUndo();
  XS.polys.splice(i, 1);
  XS.selected = -1;
  renderHead(); draw();
}

function replacePolys(polys, message) {
  pushUndo();
  XS.polys = polys.map((p) => ({ kind: p.kind, points: p.points.map((pt) => [pt[0], pt[1]]), closed: true }));
  XS.selected = -1;
  renderHead(); draw();
  setStatus(message, "ok");
}

// ---- view -------------------------------------------------------------------------------------------------------

function fit() {
  const c = canvas();
  const w = c.clientWidth; const h = c.clientHeight;
  if (!XS.size || !w) return;
  const s = Math.min(w, h) / XS.size;
  setView(s, (w - XS.size * s) / 2, (h - XS.size * s) / 2);
}

function setView(s, ox, oy) {
  XS.view = { s, ox, oy };
  const c = canvas();
  c.dataset.scale = String(s); c.dataset.ox = String(ox); c.dataset.oy = String(oy); c.dataset.size = String(XS.size);
  draw();
}

function toScreen(p) { return [(p[0] + 0.5) * XS.view.s + XS.view.ox, (p[1] + 0.5) * XS.view.s + XS.view.oy]; }
function toFace(x, y) { return [(x - XS.view.ox) / XS.view.s - 0.5, (y - XS.view.oy) / XS.view.s - 0.5]; }

function eventPos(e) {
  const r = canvas().getBoundingClientRect();
  return [e.clientX - r.left, e.clientY - r.top];
}

function zoomAt(x, y, factor) {
  const s = Math.min(64, Math.max(0.2, XS.view.s * factor));
  const f = s / XS.view.s;
  setView(s, x - (x - XS.view.ox) * f, y - (y - XS.view.oy) * f);
}

// ---- hit testing -------------------------------------------------------------------------------------------------

function hitPoint(x, y) {
  let best = null; let bestD = HIT;
  XS.polys.forEach((poly, pi) => poly.points.forEach((pt, k) => {
    const [sx, sy] = toScreen(pt);
    const d = Math.hypot(sx - x, sy - y);
    if (d <= bestD) { best = { poly: pi, pt: k }; bestD = d; }
  }));
  return best;
}

function hitEdge(x, y) {
  let best = null; let bestD = EDGE;
  XS.polys.forEach((poly, pi) => {
    const n = poly.points.length;
    const edges = poly.closed ? n : n - 1;
    for (let k = 0; k < edges; k += 1) {
      const a = toScreen(poly.points[k]); const b = toScreen(poly.points[(k + 1) % n]);
      const dx = b[0] - a[0]; const dy = b[1] - a[1];
      const len2 = dx * dx + dy * dy;
      if (!len2) continue;
      const t = Math.max(0, Math.min(1, ((x - a[0]) * dx + (y - a[1]) * dy) / len2));
      const d = Math.hypot(a[0] + t * dx - x, a[1] + t * dy - y);
      if (d <= bestD && t > 0.02 && t < 0.98) { best = { poly: pi, after: k }; bestD = d; }
    }
  });
  return best;
}

function insidePoly(poly, p) {
  let inside = false;
  const pts = poly.points;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i, i += 1) {
    const [xi, yi] = pts[i]; const [xj, yj] = pts[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// ---- mouse ---------------------------------------------------------------------------------------------------------

function onMouseDown(e) {
  if (!XS.face) return;
  canvas().focus();
  const [x, y] = eventPos(e);
  if (e.button === 1 || (e.button === 0 && (XS.space || e.altKey))) {
    e.preventDefault();
    XS.pan = { x, y, ox: XS.view.ox, oy: XS.view.oy };
    canvas().classList.add("panning");
    return;
  }
  if (e.button === 2) {
    const hit = hitPoint(x, y);
    if (hit && !XS.readOnly) deletePoint(hit);
    return;
  }
  if (e.button !== 0 || XS.readOnly) return;
  const open = openPoly();
  const hit = hitPoint(x, y);
  if (hit) {
    const poly = XS.polys[hit.poly];
    if (open && poly === open && hit.pt === 0 && open.points.length >= 3) { closeOpen(); return; }
    XS.selected = hit.poly;
    XS.drag = { poly: hit.poly, pt: hit.pt, before: snapshot(), moved: false };
    return;
  }
  const edge = hitEdge(x, y);
  if (edge) {
    pushUndo();
    const p = toFace(x, y);
    XS.polys[edge.poly].points.splice(edge.after + 1, 0, p);
    XS.selected = edge.poly;
    XS.drag = { poly: edge.poly, pt: edge.after + 1, before: null, moved: true };
    renderHead(); draw();
    return;
  }
  pushUndo();
  const p = toFace(x, y);
  if (open) open.points.push(p);
  else XS.polys.push({ kind: XS.kind, points: [p], closed: false });
  XS.selected = XS.polys.length - 1;
  renderHead(); draw();
}

function onMouseMove(e) {
  const [x, y] = eventPos(e);
  XS.cursor = [x, y];
  if (XS.pan) {
    setView(XS.view.s, XS.pan.ox + x - XS.pan.x, XS.pan.oy + y - XS.pan.y);
    return;
  }
  if (XS.drag) {
    const pt = XS.polys[XS.drag.poly].points;
    pt[XS.drag.pt] = toFace(x, y);
    if (!XS.drag.moved) { XS.drag.moved = true; XS.undo.push(XS.drag.before); XS.redo = []; XS.dirty = true; renderHead(); }
    draw();
    return;
  }
  XS.hover = hitPoint(x, y);
  draw();
}

function onMouseUp() {
  if (XS.pan) { XS.pan = null; canvas().classList.remove("panning"); }
  if (XS.drag) { XS.drag = null; renderHead(); draw(); }
}

function onWheel(e) {
  if (!XS.face) return;
  e.preventDefault();
  const [x, y] = eventPos(e);
  zoomAt(x, y, Math.pow(1.0015, -e.deltaY));
}

// ---- keys -----------------------------------------------------------------------------------------------------------

function onKey(e) {
  const tag = (e.target && e.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) && e.target.type !== "range" && e.target.type !== "checkbox") return;
  const key = e.key;
  const ctrl = e.ctrlKey || e.metaKey;
  let handled = true;
  if (ctrl && (key === "z" || key === "Z")) { if (e.shiftKey) redo(); else undo(); }
  else if (ctrl && (key === "y" || key === "Y")) redo();
  else if (ctrl && (key === "s" || key === "S")) save();
  else if (ctrl) handled = false;
  else if (key === "ArrowLeft" || key === "a" || key === "A") openFace(XS.index - 1);
  else if (key === "ArrowRight" || key === "d" || key === "D") openFace(XS.index + 1);
  else if (key === "Tab" && (e.target === canvas() || e.target === document.body)) setKind(XS.kind === "include" ? "exclude" : "include");
  else if (key === "i" || key === "I") setKind("include");
  else if (key === "e" || key === "E") setKind("exclude");
  else if (key === "Enter") closeOpen();
  else if (key === "Escape") dropOpen();
  else if (key === "s" || key === "S") save();
  else if (key === "f" || key === "F") fit();
  else if (key === "c" || key === "C") copyPrevious();
  else if (key === "m" || key === "M") seedFromModel();
  else if (key === "o" || key === "O") cycleOverlay();
  else if (key === " ") { XS.space = true; }
  else if ((key === "Delete" || key === "Backspace") && e.shiftKey) deletePolygon(selectedOrUnderCursor());
  else if (key === "Delete" || key === "Backspace") { if (XS.hover && !XS.readOnly) deletePoint(XS.hover); }
  else handled = false;
  if (handled) e.preventDefault();
}

function selectedOrUnderCursor() {
  if (XS.cursor) {
    const p = toFace(...XS.cursor);
    for (let i = XS.polys.length - 1; i >= 0; i -= 1) if (XS.polys[i].points.length >= 3 && insidePoly(XS.polys[i], p)) return i;
  }
  return XS.selected;
}

// ---- drawing ------------------------------------------------------------------------------------------------------------

function draw() {
  const c = canvas();
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth; const h = c.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  if (!XS.face || !XS.image) return;
  const { s, ox, oy } = XS.view;
  g.imageSmoothingEnabled = s < 3;
  g.drawImage(XS.image, ox, oy, XS.size * s, XS.size * s);
  if (XS.overlay.canvas && XS.overlay.source !== "none") {
    g.globalAlpha = XS.overlay.opacity;
    g.drawImage(XS.overlay.canvas, ox, oy, XS.size * s, XS.size * s);
    g.globalAlpha = 1;
  }
  // the filled mask the polygons make (drawn in order: an exclude cuts what came before)
  const fill = document.createElement("canvas");
  fill.width = c.width; fill.height = c.height;
  const f = fill.getContext("2d");
  f.setTransform(dpr, 0, 0, dpr, 0, 0);
  for (const poly of XS.polys) {
    if (poly.points.length < 3) continue;
    f.globalCompositeOperation = poly.kind === "include" ? "source-over" : "destination-out";
    f.fillStyle = "rgba(76, 195, 138, 0.32)";
    f.beginPath();
    poly.points.forEach((pt, k) => { const [sx, sy] = toScreen(pt); if (k) f.lineTo(sx, sy); else f.moveTo(sx, sy); });
    f.closePath(); f.fillStyle = poly.kind === "include" ? "rgba(76, 195, 138, 0.32)" : "#000"; f.fill();
  }
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.drawImage(fill, 0, 0);
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  XS.polys.forEach((poly, pi) => {
    const color = poly.kind === "include" ? "#4cc38a" : "#f06a6a";
    g.strokeStyle = color; g.lineWidth = pi === XS.selected ? 2.2 : 1.4;
    g.setLineDash(poly.closed ? [] : [5, 4]);
    g.beginPath();
    poly.points.forEach((pt, k) => { const [sx, sy] = toScreen(pt); if (k) g.lineTo(sx, sy); else g.moveTo(sx, sy); });
    if (poly.closed) g.closePath();
    else if (XS.cursor && poly === openPoly() && !XS.drag) g.lineTo(...XS.cursor);
    g.stroke();
    g.setLineDash([]);
    poly.points.forEach((pt, k) => {
      const [sx, sy] = toScreen(pt);
      const hot = XS.hover && XS.hover.poly === pi && XS.hover.pt === k;
      const r = hot ? 5 : 3.2;
      g.fillStyle = hot ? "#fff" : (k === 0 && !poly.closed ? "#ffd35a" : color);
      g.fillRect(sx - r, sy - r, 2 * r, 2 * r);
      g.strokeStyle = "#000"; g.lineWidth = 1; g.strokeRect(sx - r, sy - r, 2 * r, 2 * r);
    });
  });
  c.dataset.polygons = String(XS.polys.filter((p) => p.closed).length);
}

// ---- overlay --------------------------------------------------------------------------------------------------------------

async function refreshOverlay() {
  const source = $("xs-overlay").value;
  XS.overlay.source = source;
  if (source === "none" || !XS.face) { XS.overlay.canvas = null; draw(); return; }
  const model = $("xs-model").value.trim();
  const key = `${XS.set}|${XS.face.name}|${source}|${source === "model" ? model : ""}|${XS.modelState ? XS.modelState.iteration : ""}`;
  if (key === XS.overlay.key && XS.overlay.canvas) { draw(); return; }
  const params = { set: XS.set, name: XS.face.name, source };
  if (source === "model") params.model = model;
  let blob;
  try {
    const resp = await api(`/api/xseg/mask?${q(params)}`, { raw: true, quiet: true });
    blob = await resp.blob();
  } catch (err) {
    XS.overlay.canvas = null; XS.overlay.key = ""; draw();
    setStatus(`no overlay: ${err.message}`, "error");
    return;
  }
  const bitmap = await createImageBitmap(blob);
  const off = document.createElement("canvas");
  off.width = bitmap.width; off.height = bitmap.height;
  const g = off.getContext("2d");
  g.drawImage(bitmap, 0, 0);
  const data = g.getImageData(0, 0, off.width, off.height);
  for (let i = 0; i < data.data.length; i += 4) {
    const a = data.data[i];
    data.data[i] = 90; data.data[i + 1] = 169; data.data[i + 2] = 255; data.data[i + 3] = a;
  }
  g.putImageData(data, 0, 0);
  XS.overlay.canvas = off; XS.overlay.key = key;
  document.body.dataset.overlay = source;
  draw();
}

function cycleOverlay() {
  const sel = $("xs-overlay");
  sel.selectedIndex = (sel.selectedIndex + 1) % sel.options.length;
  refreshOverlay();
}

// ---- seed and copy -------------------------------------------------------------------------------------------------------

async function seedFromModel() {
  if (!XS.face || XS.readOnly) return;
  setStatus("predicting the mask…");
  try {
    const out = await api("/api/xseg/seed", { body: { set: XS.set, name: XS.face.name, model: $("xs-model").value.trim() } });
    replacePolys(out.polygons, `seeded ${out.polygons.length} polygon(s), ${out.points} points from the model `
      + `(iteration ${out.model_iteration}): IoU ${out.iou.toFixed(3)} with its mask; correct them and save`);
    document.body.dataset.seeded = String(out.iou);
  } catch (err) { setStatus(`not seeded: ${err.message}`, "error"); }
}

async function copyPrevious() {
  if (!XS.face || XS.readOnly) return;
  if (XS.index <= 0) { setStatus("no previous face in this list", "error"); return; }
  const from = XS.faces[XS.index - 1].name;
  try {
    const out = await api("/api/xseg/copy", { body: { set: XS.set, name: XS.face.name, from } });
    replacePolys(out.polygons, `copied ${out.polygons.length} polygon(s) from ${from} (mapped through the frame)`);
  } catch (err) { setStatus(`not copied: ${err.message}`, "error"); }
}

// ---- model, training, apply ----------------------------------------------------------------------------------------------

async function loadModel() {
  const model = $("xs-model").value.trim() || "xseg";
  let st;
  try { st = await api(`/api/xseg/model?${q({ model })}`, { quiet: true }); } catch (err) {
    $("xs-model-state").textContent = err.message; return;
  }
  XS.modelState = st;
  $("xs-model-state").textContent = st.error ? st.error : !st.exists ? `${st.model}: no model yet (the first training creates it)`
    : `${st.model}: iteration ${fmt.count(st.iteration)}` + (st.loss !== null ? `, loss ${Number(st.loss).toFixed(4)}` : "")
      + (st.options ? `, ${st.options.resolution}px` : "") + (st.face_type ? `, ${st.face_type} faces` : "");
  const img = $("xs-preview");
  if (st.preview_mtime) {
    img.hidden = false;
    const src = `/api/xseg/preview?${q({ model, t: st.preview_mtime })}`;
    if (img.dataset.src !== src) { img.dataset.src = src; img.src = src; }
    $("xs-preview-it").textContent = `preview at iteration ${fmt.count(st.iteration)}`;
  } else { img.hidden = true; $("xs-preview-it").textContent = ""; }
  renderOptions();
}

async function loadSchema() {
  XS.schema = await api("/api/xseg/schema");
  renderOptions();
}

function renderOptions() {
  if (!XS.schema) return;
  const st = XS.modelState;
  const box = $("xs-options");
  const old = {};
  for (const input of box.querySelectorAll("[data-opt]")) old[input.dataset.opt] = input;
  const props = XS.schema.schema.properties;
  const rows = Object.entries(props).map(([name, p]) => {
    const fixed = XS.schema.fixed.includes(name);
    const stored = st && st.options ? st.options[name] : undefined;
    const value = stored !== undefined ? stored : p.default;
    let input;
    const choices = p.enum || (p.anyOf || []).flatMap((a) => a.enum || []);
    if (choices.length) {
      input = el("select", { "data-opt": name }, choices.map((c) => el("option", { value: c, text: c, selected: c === value || undefined })));
    } else if (p.type === "boolean") {
      input = el("input", { type: "checkbox", "data-opt": name, checked: value || undefined });
    } else {
      input = el("input", { type: "number", "data-opt": name, value, step: p.type === "integer" ? 1 : "any",
        min: p.minimum ?? p.exclusiveMinimum, max: p.maximum });
    }
    const prev = old[name];
    if (prev && prev.dataset.touched) {
      if (input.type === "checkbox") input.checked = prev.checked; else input.value = prev.value;
      input.dataset.touched = "1";
    }
    input.addEventListener("change", () => { input.dataset.touched = "1"; });
    if (fixed && st && st.exists) { input.disabled = true; input.dataset.touched = ""; }
    return el("tr", {}, el("td", { text: name, title: p.description || "" }), el("td", {}, input),
      el("td", { class: "muted", text: fixed ? (st && st.exists ? "fixed" : "fixed once created") : "" }));
  });
  box.replaceChildren(el("table", {}, rows));
}

function chosenOptions() {
  const out = {};
  for (const input of $("xs-options").querySelectorAll("[data-opt]")) {
    if (!input.dataset.touched || input.disabled) continue;
    out[input.dataset.opt] = input.type === "checkbox" ? input.checked : input.type === "number" ? Number(input.value) : input.value;
  }
  return out;
}

function jobMsg(text, cls = "") { const m = $("xs-job-msg"); m.textContent = text; m.className = `xs-msg ${cls}`; }

async function startTrain() {
  if (XS.dirty && !(await leaveFace())) return;
  const faces = [...document.querySelectorAll(".xs-train-set")].filter((b) => b.checked).map((b) => b.value);
  const body = { faces, model: $("xs-model").value.trim() || "xseg", iterations: $("xs-iterations").value,
                 minutes: $("xs-minutes").value, options: chosenOptions() };
  try {
    const job = await api("/api/xseg/train", { body, quiet: true });
    jobMsg(`started: ${job.shown}`, "ok");
  } catch (err) { jobMsg(err.message, "error"); }
}

async function startApply() {
  if (XS.dirty && !(await leaveFace())) return;
  try {
    const job = await api("/api/xseg/apply", { body: { set: XS.set, model: $("xs-model").value.trim() || "xseg" }, quiet: true });
    jobMsg(`started: ${job.shown}`, "ok");
  } catch (err) { jobMsg(err.message, "error"); }
}

let lastJobState = "";
function onJob(job) {
  if (!job || !job.kind.startsWith("xseg")) return;
  const running = job.state === "running";
  $("xs-train").disabled = running; $("xs-apply").disabled = running || XS.readOnly;
  document.body.dataset.job = `${job.kind}:${job.state}`;
  if (running) jobMsg(`${job.kind}: ${progressText(job.progress) || "running"}`);
  else jobMsg(`${job.kind} ${job.state}${job.message ? `: ${job.message}` : ""}`, job.state === "done" ? "ok" : "error");
  const key = `${job.id}:${job.state}:${job.progress ? job.progress.done : ""}`;
  if (key === lastJobState) return;
  lastJobState = key;
  if (job.kind === "xseg-train") loadModel();
  if (!running && job.kind === "xseg-apply") loadFaces(XS.face ? XS.face.name : null).then(() => { XS.overlay.key = ""; refreshOverlay(); });
}

// ---- start -------------------------------------------------------------------------------------------------------------------

function bind() {
  const c = canvas();
  c.addEventListener("mousedown", onMouseDown);
  window.addEventListener("mousemove", (e) => { if (XS.drag || XS.pan || e.target === c) onMouseMove(e); });
  window.addEventListener("mouseup", onMouseUp);
  c.addEventListener("mouseleave", () => { XS.cursor = null; XS.hover = null; draw(); });
  c.addEventListener("wheel", onWheel, { passive: false });
  c.addEventListener("contextmenu", (e) => e.preventDefault());
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", (e) => { if (e.key === " ") XS.space = false; });
  window.addEventListener("resize", () => fit());
  window.addEventListener("beforeunload", (e) => { if (XS.dirty) { e.preventDefault(); e.returnValue = ""; } });
  $("xs-set").addEventListener("change", (e) => selectSet(e.target.value));
  for (const id of ["xs-set", "xs-filter", "xs-sort", "xs-overlay"]) {
    $(id).addEventListener("change", (e) => e.target.blur()); // the editor's hotkeys work again at once
  }
  for (const id of ["xs-filter", "xs-sort", "xs-desc"]) {
    $(id).addEventListener("change", async () => { if (await leaveFace()) loadFaces(XS.face ? XS.face.name : null); });
  }
  $("xs-prev").onclick = () => openFace(XS.index - 1);
  $("xs-next").onclick = () => openFace(XS.index + 1);
  $("xs-kind-include").onclick = () => setKind("include");
  $("xs-kind-exclude").onclick = () => setKind("exclude");
  $("xs-undo").onclick = undo;
  $("xs-redo").onclick = redo;
  $("xs-delpoly").onclick = () => deletePolygon(XS.selected);
  $("xs-clear").onclick = () => { if (XS.polys.length) { pushUndo(); XS.polys = []; XS.selected = -1; renderHead(); draw(); } };
  $("xs-fit").onclick = fit;
  $("xs-copy").onclick = copyPrevious;
  $("xs-seed").onclick = seedFromModel;
  $("xs-save").onclick = save;
  $("xs-overlay").addEventListener("change", refreshOverlay);
  $("xs-opacity").addEventListener("input", (e) => { XS.overlay.opacity = Number(e.target.value) / 100; draw(); });
  $("xs-model").addEventListener("change", () => { loadModel(); XS.overlay.key = ""; refreshOverlay(); });
  $("xs-train").onclick = startTrain;
  $("xs-apply").onclick = startApply;
  Studio.onJob(onJob);
}

document.addEventListener("DOMContentLoaded", async () => {
  bind();
  try {
    await Promise.all([loadSets(), loadSchema()]);
    await loadModel();
  } finally {
    document.body.dataset.ready = "1";
  }
});
