// The footage timeline of an incident or of chosen cameras: one row per
// camera with its recordings, its gaps (and why) and its events, the
// incidents as shaded spans, and a playhead. A click on a row seeks. The
// view opens on the footage and the incidents (a button shows the whole
// window). Positions are set through the CSSOM: the page's CSP allows no
// inline style attributes.

import { el } from "./api.js";
import { fmtTime, reasonText } from "./playback.js";

const ms = (t) => new Date(t).getTime();

export class Timeline {
  // data: the answer of GET /api/v1/timeline; onSeek(Date).
  constructor(data, { onSeek }) {
    this.data = data;
    this.onSeek = onSeek;
    this.window = [ms(data.from), ms(data.to)];
    // The footage and the incidents, with a margin: what is worth seeing.
    let lo = Infinity, hi = -Infinity;
    for (const c of data.cameras) {
      for (const r of c.recordings) {
        lo = Math.min(lo, ms(r.start));
        hi = Math.max(hi, ms(r.end));
      }
    }
    for (const i of data.incidents) {
      lo = Math.min(lo, ms(i.start));
      hi = Math.max(hi, i.end ? ms(i.end) : ms(i.start));
    }
    if (lo < hi) {
      const pad = (hi - lo) * 0.05;
      this.focus = [Math.max(this.window[0], lo - pad), Math.min(this.window[1], hi + pad)];
    } else {
      this.focus = this.window;
    }
    this.zoom = el("button", { type: "button", class: "tl-zoom", onclick: () => this.toggle() });
    this.rows = el("div", { class: "tl-rows" });
    this.root = el("div", { class: "timeline", role: "group", "aria-label": "Footage timeline" }, this.rows,
      el("div", { class: "tl-tools" }, this.zoom));
    this.whole = false;
    this.position = null;
    this.draw();
  }

  toggle() {
    this.whole = !this.whole;
    this.draw();
  }

  draw() {
    [this.from, this.to] = this.whole ? this.window : this.focus;
    this.zoom.textContent = this.whole ? "Zoom to the footage" : "Show the whole window";
    this.zoom.hidden = this.focus[0] === this.window[0] && this.focus[1] === this.window[1];
    this.heads = [];
    const rows = this.data.cameras.map((c) => this.row(c, this.data.incidents));
    const axis = el("div", { class: "tl-axis", "aria-hidden": "true" });
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const label = el("span", {}, fmtTime(new Date(this.from + f * (this.to - this.from))));
      label.style.left = f * 100 + "%";
      axis.append(label);
    }
    this.rows.replaceChildren(...rows, axis);
    this.setPosition(this.position);
  }

  pct(t) {
    const v = (ms(t) - this.from) / (this.to - this.from);
    return Math.max(0, Math.min(1, v)) * 100;
  }

  span(cls, a, b, title) {
    const l = this.pct(a), r = this.pct(b);
    const d = el("div", { class: cls, title });
    d.style.left = l + "%";
    d.style.width = Math.max(r - l, 0.2) + "%";
    return d;
  }

  row(c, incidents) {
    const track = el("div", {
      class: "tl-track", dataset: { camera: c.camera.id },
      onclick: (e) => {
        const r = track.getBoundingClientRect();
        const f = (e.clientX - r.left) / r.width;
        this.onSeek?.(new Date(this.from + f * (this.to - this.from)));
      },
    });
    for (const inc of incidents) {
      if (!inc.cameras.includes(c.camera.id)) continue;
      track.append(this.span("tl-incident", inc.start, inc.end || this.window[1], `incident ${inc.id}: ${inc.type} (${inc.severity})`));
    }
    for (const r of c.recordings) {
      track.append(this.span("tl-rec", r.start, r.end, `recorded ${fmtTime(new Date(r.start))} – ${fmtTime(new Date(r.end))}`));
    }
    for (const g of c.gaps) {
      track.append(this.span("tl-gap", g.start, g.end, `no footage ${fmtTime(new Date(g.start))} – ${fmtTime(new Date(g.end))}: ${reasonText(g.reason)}`));
    }
    for (const e of c.events) {
      const tick = el("div", { class: "tl-event", title: `${fmtTime(new Date(e.at))} ${e.kind}: ${e.detail}` });
      tick.style.left = this.pct(e.at) + "%";
      track.append(tick);
    }
    const head = el("div", { class: "tl-head", "aria-hidden": "true", hidden: true });
    this.heads.push(head);
    track.append(head);
    const gaps = c.gaps.length ? `, ${c.gaps.length} gap(s): ` + [...new Set(c.gaps.map((g) => reasonText(g.reason)))].join(", ") : "";
    return el("div", { class: "tl-row" },
      el("span", { class: "tl-name", title: c.camera.id }, c.camera.name || c.camera.id),
      track,
      el("span", { class: "sr-only" }, `${c.recordings.length} recording span(s)${gaps}, ${c.events.length} event(s)`));
  }

  // setPosition moves the playhead to t (a Date, or null to hide it).
  setPosition(t) {
    this.position = t;
    for (const h of this.heads) {
      h.hidden = !t;
      if (t) h.style.left = this.pct(t) + "%";
    }
  }
}
