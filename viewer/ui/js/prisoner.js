// Prisoners: the list, and a prisoner's page with the risk class, the
// stays in zones, the incidents involving the prisoner, and, for
// investigators, the footage of the cameras where the prisoner was.

import { request, el, can } from "./api.js";
import { PlaybackPlayer, fmtTime } from "./playback.js";

export async function renderPrisoners(main) {
  const body = el("div", { "aria-live": "polite" }, "Loading…");
  main.replaceChildren(el("h1", {}, "Prisoners"), body);
  const list = await request("GET", "/api/v1/prisoners?limit=500");
  if (!list.items.length) {
    body.replaceChildren(el("p", { class: "notice" }, "No prisoners."));
    return () => {};
  }
  body.replaceChildren(el("table", { class: "list prisoners" },
    el("thead", {}, el("tr", {}, ...["Name", "Registration", "Facility", "Housing", "Risk", "Status"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...list.items.map((p) => el("tr", {},
      el("td", {}, el("a", { href: "#/prisoner/" + p.id }, p.full_name)), el("td", {}, p.registration_number),
      el("td", {}, p.facility), el("td", {}, p.housing_zone || "—"), el("td", { class: "risk-" + p.risk }, p.risk),
      el("td", {}, p.status.replace("_", " ")))))));
  return () => {};
}

export async function renderPrisoner(main, { id, unauthenticated }) {
  const p = await request("GET", "/api/v1/prisoners/" + encodeURIComponent(id));
  const stops = [];
  const page = el("div", { class: "prisoner-page" },
    el("div", { class: "toolbar" }, el("a", { href: "#/prisoners" }, "← Prisoners")),
    el("h1", {}, p.full_name),
    el("dl", { class: "facts" },
      el("dt", {}, "Registration"), el("dd", {}, p.registration_number),
      el("dt", {}, "Risk class"), el("dd", { class: "risk-" + p.risk }, `${p.risk} (assessed ${p.risk_assessed_on} by ${p.risk_assessor})`),
      el("dt", {}, "Facility"), el("dd", {}, p.facility),
      el("dt", {}, "Housing"), el("dd", {}, p.housing_zone || "—"),
      el("dt", {}, "Status"), el("dd", {}, p.status.replace("_", " "))));
  main.replaceChildren(page);

  const moves = await request("GET", `/api/v1/prisoners/${p.id}/movements`).catch(() => null);
  page.append(el("h2", {}, "Movements"));
  if (!moves || !moves.items.length) {
    page.append(el("p", { class: "notice" }, moves ? "No stays recorded." : "Movements are not available to you."));
  } else {
    page.append(el("table", { class: "list movements" },
      el("thead", {}, el("tr", {}, ...["Zone", "Facility", "From", "To"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...moves.items.map((m) => el("tr", {}, el("td", {}, m.zone), el("td", {}, m.facility),
        el("td", {}, fmtTime(new Date(m.from))), el("td", {}, m.to ? fmtTime(new Date(m.to)) : "now"))))));
  }

  page.append(el("h2", {}, "Incidents"));
  if (can("incident.read")) {
    const incs = await request("GET", "/api/v1/incidents?limit=500&facility=" + encodeURIComponent(p.facility)).catch(() => null);
    const mine = incs ? incs.items.filter((i) => i.prisoners.includes(p.id)) : [];
    page.append(mine.length ? el("ul", { class: "incident-list" }, ...mine.map((i) => el("li", {},
      el("a", { href: "#/incident/" + i.id }, `#${i.id} ${i.type.replace("_", " ")} (${i.severity}), ${fmtTime(new Date(i.start))}`))))
      : el("p", { class: "notice" }, "No incidents involve this prisoner."));
  }

  if (can("prisoner.footage")) {
    page.append(el("h2", {}, "Footage of this prisoner"), footageForm(p, stops, unauthenticated));
  }
  return () => stops.forEach((s) => s());
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// footageForm asks for a range and a reason, lists where the prisoner was
// with the cameras there, and plays a stay's cameras together.
function footageForm(p, stops, unauthenticated) {
  const now = new Date();
  const from = el("input", { type: "datetime-local", id: "pf-from", value: localInput(new Date(now - 24 * 3600e3)), required: true });
  const to = el("input", { type: "datetime-local", id: "pf-to", value: localInput(now), required: true });
  const reason = el("input", { type: "text", id: "pf-reason", maxlength: "1000", required: true, placeholder: "why (written to the audit log)" });
  const out = el("div", { class: "prisoner-footage", "aria-live": "polite" });
  const form = el("form", {
    class: "reason-form", onsubmit: async (e) => {
      e.preventDefault();
      const q = new URLSearchParams({ from: new Date(from.value).toISOString(), to: new Date(to.value).toISOString(), reason: reason.value.trim() });
      out.textContent = "Loading…";
      let f;
      try {
        f = await request("GET", `/api/v1/prisoners/${p.id}/footage?${q}`);
      } catch (ex) {
        out.replaceChildren(el("p", { class: "error" }, ex.message));
        return;
      }
      if (!f.stays.length) {
        out.replaceChildren(el("p", { class: "notice" }, "No stays in this range."));
        return;
      }
      out.replaceChildren(...f.stays.map((s) => stayView(s, reason.value.trim(), stops, unauthenticated)));
    },
  }, el("label", { for: "pf-from" }, "From"), from, el("label", { for: "pf-to" }, "To"), to,
  el("label", { for: "pf-reason" }, "Reason"), reason, el("button", { type: "submit" }, "Find footage"));
  return el("div", {}, form, out);
}

function stayView(s, reason, stops, unauthenticated) {
  const head = el("h3", {}, `${s.zone} (${s.facility}), ${fmtTime(new Date(s.from))} – ${fmtTime(new Date(s.to))}`);
  if (!s.in_scope) return el("section", { class: "stay" }, head, el("p", { class: "notice" }, "Another facility: not in your scope."));
  const withFootage = s.cameras.filter((c) => c.recordings.length);
  const box = el("div");
  const list = el("ul", {}, ...s.cameras.map((c) => el("li", {}, `${c.camera.name || c.camera.id}: ${c.recordings.length} recording(s), ${c.gaps.length} gap(s)`)));
  const play = el("button", {
    type: "button", disabled: !withFootage.length, onclick: async () => {
      play.disabled = true;
      const ids = withFootage.slice(0, 16).map((c) => c.camera.id);
      const names = Object.fromEntries(withFootage.map((c) => [c.camera.id, c.camera.name || c.camera.id]));
      const player = new PlaybackPlayer({ cameras: ids, from: s.from, to: s.to, reason, cameraNames: names, onUnauthenticated: unauthenticated });
      stops.push(() => player.stop());
      box.replaceChildren(player.root);
      try {
        await player.start();
      } catch {
        play.disabled = false;
      }
    },
  }, withFootage.length ? "▶ Play these cameras" : "No footage");
  return el("section", { class: "stay" }, head, list, play, box);
}
