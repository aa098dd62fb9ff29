/* facelab studio, workspace page: what the workspace holds, the next step, and the steps as background jobs. */
"use strict";

const W = { status: null, job: null, logFor: null, refreshTimer: null };
const $ = (id) => document.getElementById(id);

function stepOptions(step, status) {
  // the few options each step offers here; everything else is the CLI's default (as `facelab swap` runs it)
  const box = el("div", { class: "row", "data-step": step });
  if (step === "frames") {
    box.append(el("label", {}, "fps", el("input", { name: "fps", placeholder: status.videos.dst.fps || "video's", size: 6 })));
  } else if (step === "extract_src" || step === "extract_dst") {
    box.append(el("label", {}, "size", el("input", { name: "size", type: "number", min: 64, max: 1024, step: 32, placeholder: 256 })));
    if (step === "extract_src") box.append(el("label", {}, "fps", el("input", { name: "fps", type: "number", min: 0.1, step: 0.5, placeholder: "all" })));
  } else if (step === "train") {
    if (!status.model.exists) {
      const select = el("select", { name: "preset" }, status.presets.map((p) => el("option", { value: p, text: p, selected: p === "demo" })));
      box.append(el("label", {}, "preset", select));
    }
    box.append(el("label", {}, "iterations", el("input", { name: "iterations", type: "number", min: 1, step: 100, placeholder: "–" })));
    box.append(el("label", {}, "minutes", el("input", { name: "minutes", type: "number", min: 0.1, step: 1, placeholder: "until stopped" })));
  } else if ((step === "merge" || step === "video") && status.merged.session) {
    box.append(el("label", {}, el("input", { name: "use_session", type: "checkbox", checked: true }), "merge_session.json"));
  }
  return box;
}

function readOptions(step, row) {
  const body = {};
  const options = {};
  for (const input of row.querySelectorAll("input, select")) {
    const name = input.name;
    if (input.type === "checkbox") { body[name] = input.checked; continue; }
    const value = input.value.trim();
    if (value === "") continue;
    if (step.startsWith("extract")) options[name] = Number(value);
    else if (name === "fps" || name === "preset") body[name] = value;
    else body[name] = Number(value);
  }
  if (step.startsWith("extract") && Object.keys(options).length) body.options = options;
  return body;
}

async function startStep(step, row) {
  clearError();
  const button = row.querySelector("button");
  button.disabled = true;
  try {
    const job = await api(`/api/workspace/steps/${step}`, { body: readOptions(step, row) });
    if (!W.job || W.job.id !== job.id) renderJob(job, null);
  } catch (_) {
    button.disabled = false;  // the banner shows why
  }
}

function renderStatus(s) {
  W.status = s;
  $("ws-root").textContent = s.root;
  $("ws-next").textContent = s.next ? `next: ${s.steps.find((x) => x.name === s.next).label}` : "all steps done";
  const ro = $("ws-readonly");
  ro.hidden = !s.read_only; ro.textContent = s.lock_message || "";

  const vids = $("ws-videos");
  vids.replaceChildren();
  for (const side of ["src", "dst"]) {
    const v = s.videos[side];
    let text = v.note || (v.exists ? `${v.name}` : `${v.path} (missing)`);
    if (v.exists && v.width) text += ` · ${v.width}×${v.height} · ${v.fps} fps · ${fmt.count(v.frames)} frames · ${fmt.duration(v.duration_s)}${v.audio ? " · audio" : ""}`;
    vids.append(el("dt", { text: side }), el("dd", { id: `ws-video-${side}`, text }));
  }
  $("ws-frames").textContent = fmt.count(s.frames.count);
  $("ws-frames-note").textContent = s.frames.error ? s.frames.error
    : s.frames.expected !== null ? `${s.frames.size ? s.frames.size.join("×") : ""} at ${s.frames.fps} fps${s.frames.count < s.frames.expected ? `, ${fmt.count(s.frames.expected)} expected` : ""}`
    : "no frames yet";
  $("ws-faces-src").textContent = fmt.count(s.faces.src);
  $("ws-faces-dst").textContent = fmt.count(s.faces.dst);
  $("ws-noface").textContent = fmt.count(s.frames_without_face.count);
  $("ws-noface-list").textContent = s.frames_without_face.count ? `(${s.frames_without_face.first.join(", ")}${s.frames_without_face.count > s.frames_without_face.first.length ? ", …" : ""})` : "";
  $("ws-iter").textContent = fmt.count(s.model.iteration);
  $("ws-model-note").textContent = s.model.error ? s.model.error : s.model.exists
    ? `${s.model.arch} ${s.model.resolution}px ${s.model.face_type}, trained ${fmt.duration(s.model.elapsed_s)}` : "no model yet";
  $("ws-merged").textContent = fmt.count(s.merged.count);
  $("ws-merged-of").textContent = fmt.count(s.merged.of);
  $("ws-merged-bar").max = Math.max(1, s.merged.of); $("ws-merged-bar").value = s.merged.count;
  $("ws-session").textContent = s.merged.session ? "merge_session.json is used by merge and video" : "no merge session (defaults)";
  const res = $("ws-result");
  if (s.result.exists) {
    const src = `/api/workspace/file?path=${encodeURIComponent(s.result.path)}&t=${encodeURIComponent(s.result.modified)}`;
    const current = res.querySelector("video");
    if (!current || current.dataset.src !== src) {
      res.replaceChildren(el("video", { class: "result", controls: true, preload: "metadata", src, "data-src": src }),
        el("div", { class: "muted", id: "ws-result-note", text: `${s.result.path} · ${fmt.bytes(s.result.size)} · ${s.result.modified}${s.result.current ? "" : " · older than the merged frames"}` }));
    }
  } else {
    res.replaceChildren(el("div", { class: "muted", id: "ws-result-note", text: "not made yet" }));
  }
  if (s.model.preview) {
    $("card-preview").hidden = false;
    $("ws-preview").src = `/api/workspace/file?path=model/previews/latest.png&it=${s.model.iteration}`;
  }

  const body = $("ws-steps").querySelector("tbody");
  const busy = W.job && W.job.state === "running";
  const old = {};
  for (const row of body.querySelectorAll("tr")) old[row.dataset.step] = readOptions(row.dataset.step, row);
  body.replaceChildren();
  for (const step of s.steps) {
    const row = el("tr", { "data-step": step.name, id: `step-${step.name}`, class: step.name === s.next ? "next" : "" },
      el("td", { text: step.label }),
      el("td", {}, el("span", { class: `badge ${step.state}`, text: step.state })),
      el("td", {}, stepOptions(step.name, s)),
      el("td", {}, el("button", { class: step.name === s.next ? "primary small" : "small",
        text: step.state === "done" ? "Run again" : step.state === "partial" ? (step.name === "train" ? "Train more" : "Resume") : "Start",
        disabled: step.state === "blocked" || busy || s.read_only,
        title: step.state === "blocked" ? "needs the steps before it" : s.read_only ? s.lock_message : "",
        onclick: () => startStep(step.name, row) })));
    for (const [name, value] of Object.entries(old[step.name] || {})) {  // keep what the user typed
      const input = row.querySelector(`[name="${name}"]`);
      if (input && typeof value !== "object") { if (input.type === "checkbox") input.checked = value; else input.value = value; }
    }
    body.append(row);
  }
  if (s.job && (!W.job || W.job.id !== s.job.id)) renderJob(s.job, null);
}

function renderJob(job, line) {
  const changed = !W.job || W.job.id !== job.id || W.job.state !== job.state;
  W.job = job;
  $("job-kind").textContent = `${job.kind}`;
  const st = $("job-state"); st.textContent = job.state; st.className = `badge ${job.state}`;
  $("job-command").textContent = job.shown || `facelab ${job.args.join(" ")}`;
  $("job-stop").hidden = job.state !== "running";
  const bar = $("job-progress");
  if (job.progress && job.progress.total) { bar.max = job.progress.total; bar.value = job.progress.done; }
  else if (job.state === "done") { bar.max = 1; bar.value = 1; }
  else if (job.state === "running") bar.removeAttribute("value");
  $("job-progress-text").textContent = progressText(job.progress) + (job.message ? ` ${job.message}` : "");
  if (W.logFor !== job.id) {  // another job: what the events bring, completed by the log file
    W.logFor = job.id;
    $("job-log").textContent = line ? line + "\n" : "";
    loadLog(job.id, false);
  } else if (line) {
    const log = $("job-log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent += line + "\n";
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
  if (changed) { loadStatus(); loadHistory(); }
}

async function loadLog(id, replace = true) {
  try {
    const text = await api(`/api/workspace/jobs/${encodeURIComponent(id)}/log`, { quiet: true });
    const log = $("job-log");
    if (W.logFor !== id) return;
    // lines that came as events while the file was read are kept: the longer text wins
    if (replace || text.length >= log.textContent.length) log.textContent = text;
    log.scrollTop = log.scrollHeight;
  } catch (_) { /* not written yet */ }
}

async function loadHistory() {
  const jobs = await api("/api/workspace/jobs", { quiet: true }).catch(() => []);
  const body = $("job-history").querySelector("tbody");
  body.replaceChildren(...jobs.slice(0, 8).map((j) => el("tr", {},
    el("td", { text: fmt.time(j.started) }), el("td", { text: j.kind }),
    el("td", {}, el("span", { class: `badge ${j.state}`, text: j.state })),
    el("td", { class: "muted", text: j.ended ? fmt.duration(j.ended - j.started) : "" }),
    el("td", {}, el("button", { class: "link", text: "log", onclick: () => { W.logFor = j.id; loadLog(j.id); } })))));
}

async function loadStatus() {
  try { renderStatus(await api("/api/workspace/status")); } catch (_) { /* banner shown */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("job-stop").addEventListener("click", stopJob);
  Studio.onJob((job, line) => renderJob(job, line));
  loadStatus();
  loadHistory();
  // counts move while a job runs (frames merged, faces found): refresh them every few seconds
  W.refreshTimer = setInterval(() => { if (W.job && W.job.state === "running") loadStatus(); }, 3000);
});
