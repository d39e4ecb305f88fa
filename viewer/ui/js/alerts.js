// The alert panel of the live wall: the active alerts the caller may see,
// updated without reload from the server-sent event stream
// (/api/v1/alerts/events; the browser resumes it with Last-Event-ID after a
// drop), with acknowledge-with-a-note, resolve, "open incident" and a link
// to the camera's timeline at the alert's time.

import { request, el, can } from "./api.js";

const RANK = { critical: 4, high: 3, medium: 2, low: 1 };

const KIND_TEXT = {
  camera_offline: "Offline",
  camera_flapping: "Flapping",
  camera_low_fps: "Low frame rate",
  camera_keyframes_missing: "No keyframes",
  camera_tamper: "Covered / frozen",
  camera_scene_change: "View changed",
  camera_activity: "Activity",
  camera_clock_offset: "Clock off",
  recording_lag: "Recording lag",
  upload_failures: "Uploads failing",
  spool_filling: "Spool filling",
  store_unreachable: "Store down",
  database_unreachable: "Database down",
};

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// mountAlertPanel adds the panel to container; it returns a function that
// removes it and closes the stream. cameraName maps a camera id to a name.
export function mountAlertPanel(container, { cameraName = (id) => id, unauthenticated } = {}) {
  if (!can("alert.view")) return () => {};
  const alerts = new Map(); // id → alert
  const notes = new Map(); // id → note being typed (kept across redraws)
  const list = el("ol", { class: "alert-list", id: "alert-list" });
  const count = el("span", { class: "alert-count", id: "alert-count" }, "0");
  const status = el("p", { class: "alert-status", role: "status" });
  const live = el("p", { class: "sr-only", "aria-live": "assertive", id: "alert-live" });
  const toggle = el("button", {
    type: "button", class: "alert-toggle", "aria-expanded": "true", "aria-controls": "alert-body",
    onclick: () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      body.hidden = !open;
    },
  }, "Alerts ", count);
  const body = el("div", { id: "alert-body" }, status, list);
  const panel = el("aside", { class: "alert-panel", id: "alert-panel", "aria-label": "Alerts" }, toggle, body, live);
  container.append(panel);

  let stopped = false;
  let source = null;

  const render = () => {
    const items = [...alerts.values()].filter((a) => a.state !== "resolved")
      .sort((a, b) => (RANK[b.severity] || 0) - (RANK[a.severity] || 0) || Date.parse(b.opened_at) - Date.parse(a.opened_at));
    count.textContent = String(items.length);
    panel.dataset.worst = items[0]?.severity || "none";
    // An alert that did not change keeps its element, so a note being
    // typed keeps its focus while other alerts come and go.
    const keep = new Map();
    const lis = items.map((a) => {
      const old = drawn.get(a.id);
      const li = old && old.changed === a.last_changed_at ? old.li : item(a);
      keep.set(a.id, { changed: a.last_changed_at, li });
      return li;
    });
    drawn = keep;
    const focused = document.activeElement;
    list.replaceChildren(...lis);
    if (focused && list.contains(focused)) focused.focus();
    if (!items.length) list.append(el("li", { class: "alert-none" }, "No active alerts."));
  };
  let drawn = new Map(); // id → {changed, li}

  const item = (a) => {
    const note = el("input", {
      type: "text", maxlength: "2000", placeholder: "Note (what was done)", "aria-label": `Note for alert ${a.id}`,
      oninput: () => notes.set(a.id, note.value),
    });
    note.value = notes.get(a.id) || "";
    const error = el("span", { class: "error", role: "alert" });
    const act = async (path, body) => {
      error.textContent = "";
      try {
        const res = await request("POST", `/api/v1/alerts/${a.id}/${path}`, body);
        const got = res.alert || res;
        upsert(got);
        render();
        if (res.incident) status.textContent = `Incident ${res.incident.id} opened from alert ${a.id}.`;
      } catch (e) {
        if (e.status === 401) unauthenticated?.();
        error.textContent = e.message;
      }
    };
    const subject = a.camera ? cameraName(a.camera) : a.subject;
    const actions = el("div", { class: "alert-actions" });
    if (can("alert.ack") && a.state === "open") {
      actions.append(note, el("button", { type: "button", class: "alert-ack", onclick: () => act("ack", { note: note.value }) }, "Acknowledge"));
    }
    if (can("alert.ack")) {
      actions.append(el("button", { type: "button", class: "alert-resolve", onclick: () => act("resolve", { note: note.value }) }, "Resolve"));
    }
    if (can("incident.create") && a.facility && !a.incident_id) {
      actions.append(el("button", { type: "button", class: "alert-incident", onclick: () => act("incident", {}) }, "Open incident"));
    }
    return el("li", {
      class: "alert-item", dataset: { id: String(a.id), severity: a.severity, state: a.state, kind: a.kind },
    },
    el("div", { class: "alert-head" },
      el("span", { class: "alert-sev" }, a.severity),
      el("strong", {}, KIND_TEXT[a.kind] || a.title),
      el("span", { class: "alert-subject" }, subject)),
    el("div", { class: "alert-detail" }, a.detail),
    el("div", { class: "alert-meta" },
      el("time", { datetime: a.since, title: a.since, dataset: { since: a.since } }, "since " + ago(a.since)),
      a.escalations ? el("span", { class: "alert-esc" }, ` · escalated ×${a.escalations}`) : null,
      a.state === "acknowledged" ? el("span", {}, ` · acknowledged by ${a.acked_by}${a.ack_note ? ": " + a.ack_note : ""}`) : null,
      a.incident_id ? el("span", {}, ` · incident ${a.incident_id}`) : null,
      a.timeline_url ? el("a", { href: a.timeline_url, class: "alert-timeline" }, " · timeline") : null),
    actions, error);
  };

  // upsert keeps the newest version of an alert (the list and the stream
  // may cross).
  const upsert = (a) => {
    const old = alerts.get(a.id);
    if (old && Date.parse(old.last_changed_at) > Date.parse(a.last_changed_at)) return false;
    alerts.set(a.id, a);
    return !old;
  };

  const connect = () => {
    source = new EventSource("/api/v1/alerts/events");
    source.addEventListener("alert", (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return;
      }
      const isNew = upsert(ev.alert);
      render();
      if (ev.type === "opened" || ev.type === "escalated" || isNew) {
        live.textContent = `${ev.alert.severity} alert: ${KIND_TEXT[ev.alert.kind] || ev.alert.title} on ${ev.alert.camera ? cameraName(ev.alert.camera) : ev.alert.subject}`;
        const li = list.querySelector(`[data-id="${ev.alert.id}"]`);
        li?.classList.add("alert-new");
      }
    });
    source.onopen = () => { status.textContent = ""; };
    source.onerror = async () => {
      if (stopped) return;
      status.textContent = "Reconnecting to the alert stream…";
      if (source.readyState === EventSource.CLOSED) {
        // A refused stream (401/403) is not retried by the browser.
        try {
          await request("GET", "/api/v1/alerts?state=active&limit=1");
          if (!stopped) setTimeout(() => { if (!stopped) connect(); }, 2000);
        } catch (e) {
          if (e.status === 401) unauthenticated?.();
          status.textContent = e.status === 403 ? "None of your roles shows alerts." : "Alerts unavailable: " + e.message;
        }
      }
    };
  };

  const load = async () => {
    try {
      const res = await request("GET", "/api/v1/alerts?state=active&limit=200");
      for (const a of res.items) upsert(a);
      render();
    } catch (e) {
      if (e.status === 401) unauthenticated?.();
      status.textContent = "Alerts unavailable: " + e.message;
    }
  };
  connect();
  load();
  const tick = setInterval(() => { // refresh the "ago" texts
    for (const t of list.querySelectorAll("time[data-since]")) t.textContent = "since " + ago(t.dataset.since);
  }, 30000);

  return () => {
    stopped = true;
    clearInterval(tick);
    source?.close();
    panel.remove();
  };
}
