// A small canvas line chart for the studio (written for facelab; no dependencies).
//
//   const chart = new LineChart(canvas, {onZoom: (start, end) => ..., onReset: () => ...});
//   chart.setData({iterations: [...], series: {name: [values or null]}}, marks /* [{iteration, label}] */);
//   chart.setSmoothing(0.6);   // EMA weight 0..0.99 (debiased, as TensorBoard does)
//   chart.setLog(true);        // log-scale y axis
//   chart.setView(start, end); // show an iteration range (drag on the chart does this, double-click resets)
//
// Several series with a clickable legend (hide/show), vertical marks (resumes), hover readout.
// After each draw the canvas carries data-series (series drawn) and data-points (points drawn).
"use strict";

(function () {
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  const PAD = {left: 64, right: 16, top: 30, bottom: 36};

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "-";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(2) : v.toFixed(4);
  }

  function fmtIt(v) {
    return v >= 1e6 ? (v / 1e6).toFixed(v % 1e6 ? 2 : 0) + "M" : v >= 1e4 ? (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k"
      : String(Math.round(v));
  }

  // debiased exponential moving average; null values are carried over
  function ema(values, weight) {
    if (!weight) return values.slice();
    const out = new Array(values.length);
    let acc = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined || !isFinite(v)) { out[i] = null; continue; }
      acc = acc * weight + (1 - weight) * v;
      n++;
      out[i] = acc / (1 - Math.pow(weight, n));
    }
    return out;
  }

  class LineChart {
    constructor(canvas, opts) {
      this.canvas = canvas;
      this.opts = opts || {};
      this.data = {iterations: [], series: {}};
      this.marks = [];
      this.smoothing = 0;
      this.log = false;
      this.view = null; // [start, end] or null: all
      this.hidden = new Set();
      this.hover = null; // canvas x
      this.drag = null; // {x0, x1}
      this.legendBoxes = [];
      this.drawnPoints = 0;
      this.drawnSeries = 0;
      canvas.addEventListener("mousemove", (e) => this._move(e));
      canvas.addEventListener("mouseleave", () => { this.hover = null; if (!this.drag) this.draw(); });
      canvas.addEventListener("mousedown", (e) => this._down(e));
      window.addEventListener("mouseup", (e) => this._up(e));
      canvas.addEventListener("dblclick", () => this.reset());
      canvas.addEventListener("click", (e) => this._click(e));
      if (window.ResizeObserver) new ResizeObserver(() => this.draw()).observe(canvas);
    }

    setData(data, marks) {
      this.data = data || {iterations: [], series: {}};
      this.marks = marks || [];
      this.draw();
    }
    setSmoothing(w) { this.smoothing = Math.max(0, Math.min(0.99, Number(w) || 0)); this.draw(); }
    setLog(on) { this.log = !!on; this.draw(); }
    setView(start, end) { this.view = start === null ? null : [start, end]; this.draw(); }
    reset() {
      this.view = null;
      this.draw();
      if (this.opts.onReset) this.opts.onReset();
    }

    // -- geometry --
    _size() {
      const dpr = window.devicePixelRatio || 1;
      const w = this.canvas.clientWidth || 600, h = this.canvas.clientHeight || 300;
      if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
        this.canvas.width = Math.round(w * dpr);
        this.canvas.height = Math.round(h * dpr);
      }
      return {w, h, dpr};
    }
    _xy(e) {
      const r = this.canvas.getBoundingClientRect();
      return {x: e.clientX - r.left, y: e.clientY - r.top};
    }
    _plot() {
      const {w, h} = this._size();
      return {x0: PAD.left, x1: w - PAD.right, y0: PAD.top, y1: h - PAD.bottom, w, h};
    }
    _itAt(x) {
      const p = this._plot();
      const [a, b] = this.xRange;
      return a + (x - p.x0) / Math.max(1, p.x1 - p.x0) * (b - a);
    }

    // -- events --
    _move(e) {
      const {x} = this._xy(e);
      if (this.drag) this.drag.x1 = x; else this.hover = x;
      this.draw();
    }
    _down(e) {
      const {x, y} = this._xy(e);
      const p = this._plot();
      if (e.button !== 0 || x < p.x0 || x > p.x1 || y < p.y0 || y > p.y1) return;
      this.drag = {x0: x, x1: x};
      e.preventDefault();
    }
    _up() {
      if (!this.drag) return;
      const {x0, x1} = this.drag;
      this.drag = null;
      if (Math.abs(x1 - x0) < 6 || !this.xRange) { this.draw(); return; }
      const a = Math.round(this._itAt(Math.min(x0, x1))), b = Math.round(this._itAt(Math.max(x0, x1)));
      this.view = [a, Math.max(b, a + 1)];
      this.draw();
      if (this.opts.onZoom) this.opts.onZoom(this.view[0], this.view[1]);
    }
    _click(e) {
      const {x, y} = this._xy(e);
      for (const box of this.legendBoxes) {
        if (x >= box.x && x <= box.x + box.w && y >= box.y && y <= box.y + box.h) {
          if (this.hidden.has(box.name)) this.hidden.delete(box.name); else this.hidden.add(box.name);
          this.draw();
          return;
        }
      }
    }

    // -- drawing --
    draw() {
      const {w, h, dpr} = this._size();
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const p = this._plot();
      const its = this.data.iterations || [];
      const names = Object.keys(this.data.series || {});
      const style = getComputedStyle(this.canvas);
      const fg = style.color || "#222";
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = fg;
      this.drawnPoints = 0;
      this.drawnSeries = 0;
      if (!its.length) {
        ctx.fillText("no metrics yet", p.x0 + 8, p.y0 + 20);
        this._publish();
        return;
      }
      // x range: the view, else the data
      let xa = this.view ? this.view[0] : its[0], xb = this.view ? this.view[1] : its[its.length - 1];
      if (xb <= xa) xb = xa + 1;
      this.xRange = [xa, xb];
      // smoothed, visible values
      const shown = [];
      let ya = Infinity, yb = -Infinity;
      names.forEach((name, ci) => {
        const colour = COLOURS[ci % COLOURS.length];
        if (this.hidden.has(name)) { shown.push({name, colour, values: null}); return; }
        const values = ema(this.data.series[name], this.smoothing);
        for (let i = 0; i < its.length; i++) {
          if (its[i] < xa || its[i] > xb) continue;
          let v = values[i];
          if (v === null || !isFinite(v) || (this.log && v <= 0)) continue;
          if (this.log) v = Math.log10(v);
          if (v < ya) ya = v;
          if (v > yb) yb = v;
        }
        shown.push({name, colour, values});
      });
      if (!isFinite(ya)) { ya = 0; yb = 1; }
      if (yb - ya < 1e-9) { ya -= 0.5; yb += 0.5; }
      const padY = (yb - ya) * 0.05;
      ya -= padY; yb += padY;
      const X = (it) => p.x0 + (it - xa) / (xb - xa) * (p.x1 - p.x0);
      const Y = (v) => p.y1 - ((this.log ? Math.log10(v) : v) - ya) / (yb - ya) * (p.y1 - p.y0);
      // grid and axes
      ctx.strokeStyle = "rgba(128,128,128,0.25)";
      ctx.lineWidth = 1;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      if (this.log) {
        for (let e = Math.floor(ya); e <= Math.ceil(yb); e++) {
          for (const m of [1, 2, 5]) {
            const lv = e + Math.log10(m);
            if (lv < ya || lv > yb) continue;
            const y = p.y1 - (lv - ya) / (yb - ya) * (p.y1 - p.y0);
            this._hline(ctx, p, y);
            ctx.fillText(fmt(Math.pow(10, lv)), p.x0 - 6, y);
          }
        }
      } else {
        const step = niceStep(yb - ya, 5);
        for (let v = Math.ceil(ya / step) * step; v <= yb; v += step) {
          const y = p.y1 - (v - ya) / (yb - ya) * (p.y1 - p.y0);
          this._hline(ctx, p, y);
          ctx.fillText(fmt(v), p.x0 - 6, y);
        }
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      const xstep = Math.max(1, niceStep(xb - xa, Math.max(2, Math.floor((p.x1 - p.x0) / 90))));
      for (let v = Math.ceil(xa / xstep) * xstep; v <= xb; v += xstep) {
        const x = X(v);
        ctx.beginPath(); ctx.moveTo(x, p.y0); ctx.lineTo(x, p.y1); ctx.stroke();
        ctx.fillText(fmtIt(v), x, p.y1 + 6);
      }
      ctx.fillText("iteration" + (this.log ? " (log scale)" : ""), (p.x0 + p.x1) / 2, p.y1 + 20);
      ctx.strokeStyle = "rgba(128,128,128,0.7)";
      ctx.strokeRect(p.x0, p.y0, p.x1 - p.x0, p.y1 - p.y0);
      // resume marks
      ctx.save();
      ctx.setLineDash([4, 4]);
      ctx.strokeStyle = "#b04040";
      ctx.fillStyle = "#b04040";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      for (const m of this.marks) {
        if (m.iteration < xa || m.iteration > xb) continue;
        const x = X(m.iteration);
        ctx.beginPath(); ctx.moveTo(x, p.y0); ctx.lineTo(x, p.y1); ctx.stroke();
        ctx.fillText(m.label || "resumed", x + 3, p.y0 + 2);
      }
      ctx.restore();
      // series
      ctx.save();
      ctx.beginPath();
      ctx.rect(p.x0, p.y0, p.x1 - p.x0, p.y1 - p.y0);
      ctx.clip();
      ctx.lineWidth = 1.5;
      for (const s of shown) {
        if (!s.values) continue;
        ctx.strokeStyle = s.colour;
        ctx.beginPath();
        let pen = false, count = 0;
        for (let i = 0; i < its.length; i++) {
          const v = s.values[i];
          if (v === null || !isFinite(v) || (this.log && v <= 0)) { pen = false; continue; }
          // keep one point either side of the view so lines reach the edges
          if ((its[i] < xa && !(i + 1 < its.length && its[i + 1] >= xa)) ||
              (its[i] > xb && !(i > 0 && its[i - 1] <= xb))) { pen = false; continue; }
          const x = X(its[i]), y = Y(v);
          if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
          pen = true;
          count++;
        }
        ctx.stroke();
        if (count) this.drawnSeries++;
        this.drawnPoints += count;
      }
      ctx.restore();
      // legend (click to hide/show a series)
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      this.legendBoxes = [];
      let lx = p.x0;
      for (const s of shown) {
        const label = s.name;
        const tw = ctx.measureText(label).width;
        ctx.globalAlpha = s.values ? 1 : 0.35;
        ctx.fillStyle = s.colour;
        ctx.fillRect(lx, 10, 14, 4);
        ctx.fillStyle = fg;
        ctx.fillText(label, lx + 18, 12);
        ctx.globalAlpha = 1;
        this.legendBoxes.push({name: s.name, x: lx, y: 2, w: tw + 22, h: 20});
        lx += tw + 34;
      }
      // drag selection
      if (this.drag) {
        ctx.fillStyle = "rgba(70,130,220,0.18)";
        const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
        ctx.fillRect(a, p.y0, b - a, p.y1 - p.y0);
      }
      // hover readout: the nearest point's values
      if (this.hover !== null && !this.drag && this.hover >= p.x0 && this.hover <= p.x1) {
        const it = this._itAt(this.hover);
        let best = -1, bestD = Infinity;
        for (let i = 0; i < its.length; i++) {
          const d = Math.abs(its[i] - it);
          if (d < bestD) { bestD = d; best = i; }
        }
        if (best >= 0) this._readout(ctx, p, X(its[best]), its[best], shown, best, fg);
      }
      this._publish();
    }

    _hline(ctx, p, y) {
      ctx.beginPath(); ctx.moveTo(p.x0, y); ctx.lineTo(p.x1, y); ctx.stroke();
    }

    _readout(ctx, p, x, it, shown, i, fg) {
      ctx.strokeStyle = "rgba(128,128,128,0.8)";
      ctx.beginPath(); ctx.moveTo(x, p.y0); ctx.lineTo(x, p.y1); ctx.stroke();
      const lines = [["iteration " + it, fg]];
      for (const s of shown) if (s.values) lines.push([s.name + "  " + fmt(s.values[i]), s.colour]);
      const width = Math.max(...lines.map(([t]) => ctx.measureText(t).width)) + 16;
      const height = lines.length * 16 + 8;
      let bx = x + 10;
      if (bx + width > p.x1) bx = x - 10 - width;
      const by = p.y0 + 8;
      ctx.fillStyle = "rgba(255,255,255,0.92)";
      ctx.strokeStyle = "rgba(0,0,0,0.3)";
      ctx.fillRect(bx, by, width, height);
      ctx.strokeRect(bx, by, width, height);
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      lines.forEach(([t, c], k) => { ctx.fillStyle = c === fg ? "#222" : c; ctx.fillText(t, bx + 8, by + 5 + k * 16); });
      this.canvas.dataset.readout = lines.map(([t]) => t).join("; ");
    }

    _publish() {
      this.canvas.dataset.series = String(this.drawnSeries);
      this.canvas.dataset.points = String(this.drawnPoints);
      this.canvas.dataset.marks = String(this.marks.length);
      this.canvas.dataset.view = this.view ? this.view.join("-") : "";
    }
  }

  window.LineChart = LineChart;
  window.LineChart.ema = ema;
})();
