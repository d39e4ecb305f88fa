// The camera health page for facility IT: every camera's state, frame
// rate, bitrate, RTP loss, reconnects, clock offset, conditions and last
// error; a camera's frame rate and bitrate over the last hour; the node's
// spool and store (for all-facility scopes); maintenance mode.
//   #/health             the list
//   #/health?camera=ID   the list and that camera's last hour

import { request, el, can } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 10000;

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

const fmt = {
  fps: (v) => (v ? v.toFixed(1) : "0"),
  bitrate: (v) => (v >= 1e6 ? (v / 1e6).toFixed(2) + " Mb/s" : (v / 1e3).toFixed(0) + " kb/s"),
  secs: (v) => (v === null || v === undefined ? "—" : Math.abs(v) < 10 ? v.toFixed(2) + " s" : Math.round(v) + " s"),
  bytes: (v) => (v >= 1 << 30 ? (v / (1 << 30)).toFixed(1) + " GiB" : (v / (1 << 20)).toFixed(0) + " MiB"),
  loss: (c) => {
    const total = c.packets_lost + c.packets_received;
    return total ? ((100 * c.packets_lost) / total).toFixed(2) + " %" : "—";
  },
};

// chart draws samples' values over the last hour (or since the first
// sample, when the history is shorter) as a line; times the camera was not
// online break the line and are shaded.
function chart(title, samples, value, format, id) {
  const w = 600, h = 120, pad = 4;
  const end = Date.now();
  const first = samples.length ? Date.parse(samples[0].at) : end;
  const start = Math.min(Math.max(end - 3600e3, first), end - 60e3);
  const max = Math.max(1, ...samples.map(value));
  const x = (t) => pad + ((t - start) / (end - start)) * (w - 2 * pad);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  let d = "";
  let pen = false;
  for (const s of samples) {
    const t = Date.parse(s.at);
    if (t < start) continue;
    if (s.state !== "online") {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(value(s)).toFixed(1)}`;
    pen = true;
  }
  const offline = samples.filter((s) => s.state !== "online" && Date.parse(s.at) >= start)
    .map((s) => svg("rect", { x: x(Date.parse(s.at)).toFixed(1), y: 0, width: 4, height: h, class: "health-down" }));
  const last = samples.length ? value(samples[samples.length - 1]) : 0;
  return el("figure", { class: "health-chart", id },
    el("figcaption", {}, `${title}: now ${format(last)}, peak ${format(max)} (last hour)`),
    svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": `${title} over the last hour` },
      svg("rect", { x: 0, y: 0, width: w, height: h, class: "health-bg" }), ...offline,
      svg("path", { d, class: "health-line" })));
}

export async function renderHealth(main, { params, navigate, unauthenticated }) {
  const selected = params.get("camera") || "";
  const table = el("div", { "aria-live": "polite" }, "Loading…");
  const detail = el("section", { class: "health-detail", id: "health-detail", "aria-label": "Camera history" });
  const storage = el("section", { class: "health-storage", id: "health-storage", hidden: true, "aria-label": "Recording and storage" });
  main.replaceChildren(el("h1", {}, "Camera health"), storage, table, detail);

  let stopped = false, timer;
  const pick = (id) => navigate(`#/health${id ? "?camera=" + encodeURIComponent(id) : ""}`, true, true);

  const maintenance = async (c) => {
    try {
      if (c.maintenance) {
        await request("DELETE", "/api/v1/maintenance/" + encodeURIComponent(c.id));
      } else {
        const note = prompt(`Why is ${c.id} in maintenance? (its alerts are silenced until you end it)`);
        if (!note) return;
        await request("PUT", "/api/v1/maintenance/" + encodeURIComponent(c.id), { note });
      }
      refresh();
    } catch (e) {
      alert("Could not change maintenance: " + e.message);
    }
  };

  const drawTable = (cams) => {
    if (!cams.length) {
      table.replaceChildren(el("p", { class: "notice" }, "No cameras in your facilities on this node."));
      return;
    }
    const head = ["Camera", "Facility", "State", "FPS", "Bitrate", "Loss", "Reconnects", "Last frame", "Clock", "Conditions", "Last error", ""];
    table.replaceChildren(el("table", { class: "list health-list", id: "health-list" },
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...cams.map((c) => el("tr", { dataset: { camera: c.id, state: c.state }, "aria-selected": String(c.id === selected) },
        el("td", {}, el("a", { href: `#/health?camera=${encodeURIComponent(c.id)}`, onclick: (e) => { e.preventDefault(); pick(c.id); load(c.id); } }, c.id)),
        el("td", {}, c.facility + (c.zone ? " / " + c.zone : "")),
        el("td", { class: "health-state" }, c.state + (c.maintenance ? " (maintenance)" : "")),
        el("td", {}, fmt.fps(c.fps)),
        el("td", {}, fmt.bitrate(c.bitrate)),
        el("td", {}, fmt.loss(c)),
        el("td", {}, String(c.reconnects)),
        el("td", {}, fmt.secs(c.last_frame_age_seconds)),
        el("td", {}, fmt.secs(c.clock_offset_seconds)),
        el("td", {}, c.conditions.join(", ")),
        el("td", {}, c.last_error ? `${c.last_error.reason}${c.last_error.detail ? ": " + c.last_error.detail : ""} (${new Date(c.last_error.at).toLocaleString()})` : ""),
        el("td", {}, can("camera.write") ? el("button", { type: "button", onclick: () => maintenance(c) }, c.maintenance ? "End maintenance" : "Maintenance") : null))))));
  };

  const load = async (id) => {
    if (!id) {
      detail.replaceChildren();
      return;
    }
    try {
      const h = await request("GET", `/api/v1/health/cameras/${encodeURIComponent(id)}/history`);
      const c = h.current;
      detail.replaceChildren(
        el("h2", {}, `${id}: the last hour`),
        el("dl", {},
          el("dt", {}, "State"), el("dd", { id: "health-state" }, c.state + (c.detail || c.reason ? ` — ${c.detail || c.reason}` : "")),
          el("dt", {}, "Video"), el("dd", {}, c.codec ? `${c.codec} ${c.width}×${c.height}, keyframe every ${fmt.secs(c.keyframe_interval_seconds)}` : "—"),
          el("dt", {}, "Last error"), el("dd", { id: "health-last-error" }, c.last_error ? `${c.last_error.reason}${c.last_error.detail ? ": " + c.last_error.detail : ""} at ${new Date(c.last_error.at).toLocaleString()}` : "none"),
          el("dt", {}, "Activity"), el("dd", {}, c.activity_score === undefined ? "—" : c.activity_score.toFixed(2))),
        chart("Frames per second", h.samples, (s) => s.fps, fmt.fps, "health-fps"),
        chart("Bitrate", h.samples, (s) => s.bitrate, fmt.bitrate, "health-bitrate"));
    } catch (e) {
      if (e.status === 401) unauthenticated();
      detail.replaceChildren(el("p", { class: "notice" }, "No history: " + e.message));
    }
  };

  const loadStorage = async () => {
    if (!can("metrics.read")) return;
    try {
      const s = await request("GET", "/api/v1/health/storage");
      storage.hidden = false;
      const pct = s.spool_quota_bytes ? Math.round(100 * s.spool_ratio) : 0;
      storage.replaceChildren(el("h2", {}, `Node ${s.node}: recording and storage`),
        s.available ? el("dl", {},
          el("dt", {}, "Spool"), el("dd", {}, el("meter", { min: "0", max: "1", low: "0.5", high: "0.8", optimum: "0", value: String(s.spool_ratio) }),
            ` ${pct} % (${fmt.bytes(s.spool_used_bytes)} of ${fmt.bytes(s.spool_quota_bytes)})`),
          el("dt", {}, "Waiting for upload"), el("dd", {}, `${s.upload_backlog_segments} segments, ${fmt.bytes(s.upload_backlog_bytes)}; lag ${fmt.secs(s.recording_lag_seconds)}`),
          el("dt", {}, "Object store"), el("dd", {}, s.store_up ? "reachable" : "UNREACHABLE: " + s.store_error),
          el("dt", {}, "PostgreSQL"), el("dd", {}, s.database_up ? "reachable" : "UNREACHABLE: " + s.database_error),
          el("dt", {}, "Failed uploads"), el("dd", {}, String(s.upload_failures)))
          : el("p", {}, "No recorder on this node."),
        s.active_alerts.length ? el("p", { class: "notice" }, s.active_alerts.map((a) => `${a.severity}: ${a.title} — ${a.detail}`).join("; ")) : null);
    } catch {
      storage.hidden = true;
    }
  };

  const refresh = async () => {
    try {
      const { items } = await request("GET", "/api/v1/health/cameras");
      drawTable(items);
    } catch (e) {
      if (e.status === 401) {
        unauthenticated();
        return;
      }
      table.replaceChildren(el("p", { class: "notice" }, e.status === 403 ? "None of your roles shows camera health." : "Could not load: " + e.message));
    }
    await Promise.all([load(new URLSearchParams(location.hash.split("?")[1] || "").get("camera") || ""), loadStorage()]);
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
