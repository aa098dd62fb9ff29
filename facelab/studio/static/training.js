// The training dashboard: run state and controls, rates and ETA, the newest preview, the loss chart and the
// model's options. Live: `training` events (the model folder changed) and `job` events refresh the page.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = {status: null, options: null, zoom: null, loading: false, again: false, lastPreview: null};

  // fetch JSON through common.js's api() (quiet: this page shows its own messages next to the control);
  // a failure throws Error(detail), the server's one-line message
  async function req(path, opts) {
    opts = opts || {};
    if (typeof window.api === "function") {
      return window.api(path, {method: opts.method || "GET", body: opts.body, quiet: true});
    }
    const init = {method: opts.method || "GET", headers: {}, credentials: "same-origin"};
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers["Content-Type"] = "application/json";
    }
    const res = await fetch(path, init);
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(data && typeof data.detail === "string" ? data.detail : `${res.status}`);
    return data;
  }

  function say(el, text, kind) {
    el.textContent = text || "";
    el.className = "tr-msg" + (kind ? " " + kind : "");
  }

  function fmtNum(v, digits) {
    return v === null || v === undefined ? "-" : Number(v).toFixed(digits);
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}h ${String(m).padStart(2, "0")}m` : m ? `${m}m ${String(sec).padStart(2, "0")}s` : `${sec}s`;
  }

  // ---- status ----
  function running(st) { return !!(st && (st.run || (st.job && st.job.state === "running"))); }

  async function loadStatus() {
    const target = $("tr-target").value;
    const st = await req("/api/training/status" + (target ? `?target=${encodeURIComponent(target)}` : ""));
    state.status = st;
    const stateEl = $("tr-state");
    if (st.run) {
      const who = st.job && st.job.state === "running" ? "started here" : "started in another terminal";
      stateEl.textContent = `training (pid ${st.run.pid}, ${who}, since iteration ${st.run.since_iteration})`;
    } else if (st.job && st.job.state === "running") {
      stateEl.textContent = "starting…";
    } else {
      stateEl.textContent = st.model_exists ? "stopped" : "no model yet";
    }
    stateEl.className = "tr-state" + (running(st) ? " running" : "");
    document.body.dataset.training = running(st) ? "running" : "stopped";
    $("tr-start").textContent = st.model_exists ? "Resume" : "Start";
    $("tr-start").disabled = running(st);
    $("tr-stop").disabled = !running(st);
    $("tr-backup").disabled = st.saved_iteration === null;
    $("tr-iteration").textContent = st.iteration;
    $("tr-saved").textContent = st.saved_iteration === null ? "-" : st.saved_iteration;
    $("tr-its").textContent = fmtNum(st.rates.it_per_s, 2);
    $("tr-sps").textContent = fmtNum(st.rates.samples_per_s, 1);
    $("tr-wait").textContent = st.rates.data_wait === null ? "-" : Math.round(st.rates.data_wait * 100) + "%";
    $("tr-src").textContent = fmtNum(st.latest.src_loss, 4);
    $("tr-dst").textContent = fmtNum(st.latest.dst_loss, 4);
    $("tr-eta").textContent = st.target_iteration ? (st.iteration >= st.target_iteration ? "reached"
      : fmtDuration(st.eta_s)) : "-";
    if (!$("tr-target").value && st.target_iteration) $("tr-target").placeholder = String(st.target_iteration);
    $("tr-backups").textContent = st.backups.length ? `backups: ${st.backups.join(", ")}` : "no backups yet";
    showPreview(st.preview);
  }

  function showPreview(p) {
    const img = $("tr-preview");
    if (!p) { say($("tr-preview-msg"), "no preview yet"); return; }
    say($("tr-preview-msg"), "");
    const key = p.path + "@" + p.mtime;
    if (key === state.lastPreview) return;
    state.lastPreview = key;
    img.src = `/api/training/preview?path=${encodeURIComponent(p.path)}&t=${p.mtime}`;
    $("tr-preview-it").textContent = p.iteration !== null ? `iteration ${p.iteration}` : "";
  }

  // ---- chart ----
  const chart = new LineChart($("tr-chart"), {
    onZoom: (a, b) => { state.zoom = [a, b]; loadMetrics(); },
    onReset: () => { state.zoom = null; loadMetrics(); },
  });
  window.trainingChart = chart;

  async function loadMetrics() {
    if (state.loading) { state.again = true; return; }
    state.loading = true;
    try {
      const width = Math.max(200, Math.round($("tr-chart").clientWidth || 800));
      let q = `?points=${Math.min(4000, width * 2)}`;
      if (state.zoom) q += `&start=${state.zoom[0]}&end=${state.zoom[1]}`;
      const m = await req("/api/training/metrics" + q);
      const marks = (m.resumes || []).map((r) => ({iteration: r.iteration, label: "resumed"}));
      chart.setData({iterations: m.iterations, series: m.series}, marks);
      if (state.zoom) chart.setView(state.zoom[0], state.zoom[1]);
      $("tr-range").textContent = m.rows ? (state.zoom ? `iterations ${state.zoom[0]}–${state.zoom[1]}` :
        `iterations ${m.first}–${m.last}`) + ` · ${m.rows} rows` + (m.downsampled ? `, ${m.iterations.length} points` : "")
        : "";
    } finally {
      state.loading = false;
      if (state.again) { state.again = false; loadMetrics(); }
    }
  }

  $("tr-smooth").addEventListener("input", () => {
    chart.setSmoothing($("tr-smooth").value);
    $("tr-smooth-val").textContent = Number($("tr-smooth").value).toFixed(2);
  });
  $("tr-log").addEventListener("change", () => chart.setLog($("tr-log").checked));
  $("tr-reset").addEventListener("click", () => chart.reset());
  chart.setSmoothing($("tr-smooth").value);
  chart.setLog($("tr-log").checked);

  // ---- options ----
  function inputFor(name, prop, value, readonly) {
    let el;
    if (prop.enum) {
      el = document.createElement("select");
      for (const v of prop.enum) {
        const o = document.createElement("option");
        o.value = o.textContent = v;
        el.appendChild(o);
      }
      el.value = value;
    } else if (prop.type === "boolean") {
      el = document.createElement("input");
      el.type = "checkbox";
      el.checked = !!value;
    } else if (prop.type === "integer" || prop.type === "number") {
      el = document.createElement("input");
      el.type = "number";
      el.step = prop.type === "integer" ? "1" : "any";
      el.value = value;
    } else {
      el = document.createElement("input");
      el.type = "text";
      el.value = value === null || value === undefined ? "" : value;
    }
    el.name = name;
    el.dataset.kind = prop.enum ? "enum" : prop.type;
    el.disabled = readonly;
    return el;
  }

  function readInput(el) {
    const kind = el.dataset.kind;
    if (kind === "boolean") return el.checked;
    if (kind === "integer" || kind === "number") {
      if (el.value.trim() === "") return el.value; // sent as is: the server names the problem
      const n = Number(el.value);
      return Number.isFinite(n) ? n : el.value;
    }
    return el.value;
  }

  function renderOptions(data) {
    state.options = data;
    const body = $("tr-options-body");
    body.textContent = "";
    const readonly = new Set(data.readonly);
    const props = data.schema.properties;
    // editable options first, then the fixed ones
    const names = Object.keys(props).sort((a, b) => (readonly.has(a) - readonly.has(b)));
    for (const name of names) {
      const prop = props[name];
      const tr = document.createElement("tr");
      tr.dataset.option = name;
      const td1 = document.createElement("td");
      td1.textContent = name;
      if (readonly.has(name)) {
        const f = document.createElement("span");
        f.className = "fixed";
        f.textContent = "fixed";
        td1.appendChild(f);
      }
      const td2 = document.createElement("td");
      const el = inputFor(name, prop, data.options[name], readonly.has(name));
      // a text box (an option that takes a number or a word, e.g. mouth_match) compares as text
      const changed = () => { const v = readInput(el), was = data.options[name];
        return typeof v === "string" ? v !== String(was ?? "") : v !== was; };
      el.addEventListener("input", () => tr.classList.toggle("changed", changed()));
      el.addEventListener("change", () => tr.classList.toggle("changed", changed()));
      td2.appendChild(el);
      const td3 = document.createElement("td");
      td3.className = "desc";
      td3.textContent = prop.description || "";
      tr.append(td1, td2, td3);
      body.appendChild(tr);
    }
    $("tr-options-note").textContent = data.exists
      ? "(fixed ones shape the networks and were set when the model was created; the rest apply from the next start)"
      : "(no model yet: everything can be set; the first start creates the model)";
  }

  async function loadOptions() {
    renderOptions(await req("/api/training/options"));
  }

  function changedOptions() {
    const out = {};
    for (const el of $("tr-options-body").querySelectorAll("input, select")) {
      if (el.disabled) continue;
      const v = readInput(el);
      if (v !== state.options.options[el.name]) out[el.name] = v;
    }
    return out;
  }

  $("tr-options-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const changes = changedOptions();
    const msg = $("tr-options-msg");
    if (!Object.keys(changes).length) { say(msg, "nothing changed"); return; }
    try {
      renderOptions(await req("/api/training/options", {method: "PUT", body: {options: changes}}));
      say(msg, `saved: ${Object.keys(changes).join(", ")} (applies from the next start)`, "ok");
    } catch (err) {
      say(msg, err.message, "error");
    }
  });
  $("tr-options-revert").addEventListener("click", () => { renderOptions(state.options); say($("tr-options-msg"), ""); });

  // ---- buttons ----
  async function action(path, body, done) {
    const msg = $("tr-run-msg");
    try {
      const res = await req(path, {method: "POST", body: body || {}});
      say(msg, done(res), "ok");
    } catch (err) {
      say(msg, err.message, "error");
    }
    refresh();
  }

  $("tr-start").addEventListener("click", () => {
    const body = {};
    if ($("tr-iterations").value) body.iterations = Number($("tr-iterations").value);
    if ($("tr-minutes").value) body.minutes = Number($("tr-minutes").value);
    action("/api/training/start", body, (r) => `started: facelab ${r.args.join(" ")}`);
  });
  $("tr-stop").addEventListener("click", () =>
    action("/api/training/stop", {}, () => "stopping: the trainer saves a checkpoint, then exits"));
  $("tr-backup").addEventListener("click", () =>
    action("/api/training/backup", {}, (r) => `backup written: ${r.backup}`));
  $("tr-target").addEventListener("change", () => refresh());

  // ---- live updates ----
  let timer = null;
  function refresh() {
    // coalesce bursts of events into one refresh
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      try {
        await loadStatus();
        await loadMetrics();
      } catch (err) {
        say($("tr-run-msg"), err.message, "error");
      }
    }, 150);
  }

  function onEvent(ev) {
    if (!ev) return;
    if (ev.topic === "training") {
      if (ev.data && ev.data.changed && ev.data.changed.includes("config")) loadOptions().catch(() => {});
      refresh();
    } else if (ev.topic === "job" && ev.data && ev.data.kind === "train" && ev.data.line !== undefined &&
               (ev.data.state !== "running" || (ev.data.line || "").startsWith("$") || !state.status || !running(state.status))) {
      refresh();
    }
  }

  events(["training", "job"], onEvent);  // common.js
  // a slow poll as well: a dropped event stream still catches up
  setInterval(refresh, 10000);

  (async () => {
    try {
      await Promise.all([loadStatus(), loadOptions()]);
      await loadMetrics();
      document.body.dataset.ready = "1";
    } catch (err) {
      say($("tr-run-msg"), err.message, "error");
    }
  })();
})();
