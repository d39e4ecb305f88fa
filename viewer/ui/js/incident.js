// Incidents: the list, and an incident's page with its details, the
// prisoners and cameras involved, and for investigators the footage: the
// timeline with recordings, gaps and events, every camera played back in
// step on one clock, and the evidence export.

import { request, el, can, ApiError } from "./api.js";
import { PlaybackPlayer, fmtTime } from "./playback.js";
import { Timeline } from "./incident_timeline.js";
import { ExportPanel } from "./export.js";

function cell(v) {
  return v === null || v === undefined ? "" : String(v);
}

export async function renderIncidents(main, { params }) {
  const status = params.get("status") || "";
  const q = new URLSearchParams({ limit: "200" });
  if (status) q.set("status", status);
  const body = el("div", { "aria-live": "polite" }, "Loading…");
  const pick = el("select", {
    "aria-label": "Status", onchange: () => { location.hash = "#/incidents" + (pick.value ? "?status=" + pick.value : ""); },
  }, ...["", "open", "under_investigation", "closed"].map((s) => el("option", { value: s, selected: s === status }, s ? s.replace("_", " ") : "all")));
  main.replaceChildren(el("h1", {}, "Incidents"), el("div", { class: "toolbar" }, el("label", {}, "Status ", pick)), body);
  const list = await request("GET", "/api/v1/incidents?" + q);
  if (!list.items.length) {
    body.replaceChildren(el("p", { class: "notice" }, "No incidents."));
    return () => {};
  }
  body.replaceChildren(el("table", { class: "list incidents" },
    el("thead", {}, el("tr", {}, ...["Incident", "Facility", "Type", "Severity", "Status", "Start", "Cameras"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...list.items.map((i) => el("tr", {},
      el("td", {}, el("a", { href: "#/incident/" + i.id }, "#" + i.id)),
      el("td", {}, i.facility), el("td", {}, i.type.replace("_", " ")), el("td", { class: "sev-" + i.severity }, i.severity),
      el("td", {}, i.status.replace("_", " ")), el("td", {}, fmtTime(new Date(i.start))), el("td", {}, cell(i.cameras.length)))))));
  return () => {};
}

export async function renderIncident(main, { id, unauthenticated }) {
  const inc = await request("GET", "/api/v1/incidents/" + encodeURIComponent(id));
  const stops = [];
  const prisoners = el("ul", { class: "inline" });
  for (const p of inc.prisoners) {
    const li = el("li", {}, el("a", { href: "#/prisoner/" + p }, "Prisoner #" + p));
    prisoners.append(li);
    if (can("prisoner.read")) {
      request("GET", "/api/v1/prisoners/" + p).then((pr) => {
        li.firstChild.textContent = `${pr.full_name} (${pr.registration_number}, ${pr.risk} risk)`;
      }).catch(() => {});
    }
  }
  const details = el("dl", { class: "facts" },
    el("dt", {}, "Facility"), el("dd", {}, inc.facility),
    el("dt", {}, "Type"), el("dd", {}, inc.type.replace("_", " ")),
    el("dt", {}, "Severity"), el("dd", { class: "sev-" + inc.severity }, inc.severity),
    el("dt", {}, "Status"), el("dd", {}, inc.status.replace("_", " ")),
    el("dt", {}, "When"), el("dd", {}, fmtTime(new Date(inc.start)) + " – " + (inc.end ? fmtTime(new Date(inc.end)) : "ongoing")),
    el("dt", {}, "Zones"), el("dd", {}, inc.zones.join(", ") || "—"),
    el("dt", {}, "Prisoners"), el("dd", {}, inc.prisoners.length ? prisoners : "—"),
    el("dt", {}, "Cameras"), el("dd", {}, inc.cameras.join(", ") || "—"),
    el("dt", {}, "Staff involved"), el("dd", {}, String(inc.involved_staff.length)),
    el("dt", {}, "Legal hold"), el("dd", {}, inc.legal_hold ? "yes: " + inc.hold_reason : "no"));
  const page = el("div", { class: "incident-page" },
    el("div", { class: "toolbar" }, el("a", { href: "#/incidents" }, "← Incidents")),
    el("h1", {}, `Incident #${inc.id}: ${inc.type.replace("_", " ")}`),
    el("p", { class: "description" }, inc.description), details);
  main.replaceChildren(page);
  if (!can("footage.view")) {
    page.append(el("p", { class: "notice" }, "Footage is for investigators."));
    return () => {};
  }
  const footage = el("section", { class: "footage", "aria-label": "Footage" });
  const reason = el("input", { id: "footage-reason", type: "text", maxlength: "1000", required: true, placeholder: "e.g. investigation of the assault, case 2025/17" });
  const open = el("button", { type: "submit", id: "footage-open" }, "Open the footage");
  const err = el("p", { class: "error", role: "alert" });
  const form = el("form", {
    class: "reason-form", onsubmit: async (e) => {
      e.preventDefault();
      if (!reason.value.trim()) return;
      open.disabled = true;
      err.textContent = "";
      try {
        await showFootage(footage, inc, reason.value.trim(), stops, unauthenticated);
        form.hidden = true;
      } catch (ex) {
        err.textContent = ex instanceof ApiError && ex.status === 403 ? "You may not see this incident's footage: " + ex.message : "Could not load the footage: " + ex.message;
        open.disabled = false;
      }
    },
  }, el("label", { for: "footage-reason" }, "Why do you need the footage? (written to the audit log)"), reason, open, err);
  page.append(el("h2", {}, "Footage"), form, footage);
  return () => stops.forEach((s) => s());
}

// showFootage loads the incident's timeline and sets up the synchronised
// player and the export panel.
async function showFootage(box, inc, reason, stops, unauthenticated) {
  const q = new URLSearchParams({ incident: String(inc.id), reason });
  const tl = await request("GET", "/api/v1/timeline?" + q);
  const names = Object.fromEntries(tl.cameras.map((c) => [c.camera.id, c.camera.name || c.camera.id]));
  let player = null;
  const timeline = new Timeline(tl, { onSeek: (t) => player?.seek(t) });
  const ids = tl.cameras.map((c) => c.camera.id);
  const playBox = el("div", { class: "pb-box" });
  const start = el("button", {
    type: "button", id: "playback-start", onclick: async () => {
      start.disabled = true;
      player = new PlaybackPlayer({ incident: inc.id, cameras: ids, from: tl.from, to: tl.to, reason, cameraNames: names,
        onPosition: (t) => timeline.setPosition(t), onUnauthenticated: unauthenticated });
      stops.push(() => player.stop());
      playBox.replaceChildren(player.root);
      try {
        await player.start(new Date(Math.max(new Date(tl.from).getTime(), new Date(inc.start).getTime() - 60000)));
      } catch (e) {
        start.disabled = false;
      }
    },
  }, "▶ Play all cameras");
  const panel = el("div", { class: "footage-tools toolbar" }, start,
    el("span", { class: "hint" }, `${fmtTime(new Date(tl.from))} – ${fmtTime(new Date(tl.to))}, ${ids.length} camera(s). Click the timeline to seek.`));
  box.replaceChildren(panel, timeline.root, playBox);
  if (can("footage.export")) {
    const ex = new ExportPanel({ incident: inc.id }, { reason: () => reason });
    stops.push(() => ex.stop());
    box.append(el("h2", {}, "Evidence export"), ex.root);
  }
}
