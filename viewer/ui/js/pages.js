// The pages beside the live wall: incidents, prisoners, health and audit.
// Each lists what its API endpoint returns; the pages of their own issues
// replace these lists.

import { request, el } from "./api.js";

const PAGES = {
  incidents: { title: "Incidents", path: "/api/v1/incidents?limit=100", cols: ["id", "facility", "type", "severity", "status", "started_at", "title"] },
  prisoners: { title: "Prisoners", path: "/api/v1/prisoners?limit=100", cols: ["id", "facility", "name", "zone", "risk"] },
  health: { title: "Camera health", path: "/api/v1/live/cameras", cols: ["id", "name", "facility", "zone", "state", "reason", "detail", "codec"] },
  audit: { title: "Audit log", path: "/api/v1/audit?limit=100", cols: ["seq", "at", "actor", "action", "facility", "objects", "outcome", "detail"] },
};

export function isPage(name) {
  return Object.hasOwn(PAGES, name);
}

export async function renderPage(main, name) {
  const page = PAGES[name];
  const body = el("div", { "aria-live": "polite" }, "Loading…");
  main.replaceChildren(el("h1", {}, page.title), body);
  let data;
  try {
    data = await request("GET", page.path);
  } catch (e) {
    const text = e.status === 403 ? "None of your roles gives access to this page."
      : e.status === 404 || e.status === 405 ? "This page is not available on this server yet."
        : "Could not load: " + e.message;
    body.replaceChildren(el("p", { class: "notice" }, text));
    return () => {};
  }
  const rows = Array.isArray(data) ? data : Object.values(data || {}).find(Array.isArray) || [];
  if (!rows.length) {
    body.replaceChildren(el("p", { class: "notice" }, "Nothing to show."));
    return () => {};
  }
  const cols = page.cols.filter((c) => rows.some((r) => r[c] !== undefined));
  const cell = (v) => (v === null || v === undefined ? "" : Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : String(v));
  body.replaceChildren(el("table", { class: "list" },
    el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { scope: "col" }, c.replace(/_/g, " "))))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, cell(r[c]))))))));
  return () => {};
}
