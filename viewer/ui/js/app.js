// Kuzet's web UI: log in, the live wall, camera pages and the other pages,
// routed by the URL's hash. Plain ES modules, no build step.

import { session, loadSession, login, logout, el, ApiError } from "./api.js";
import { renderWall } from "./wall.js";
import { renderCamera } from "./camera.js";
import { renderPage, isPage } from "./pages.js";
import { mountAlertPanel } from "./alerts.js";
import { renderHealth } from "./health.js";
import { renderIncidents, renderIncident } from "./incident.js";
import { renderPrisoners, renderPrisoner } from "./prisoner.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
let stopView = () => {};
let afterLogin = "#/live";

// navigate goes to hash; replace does not add a history entry; silent only
// records the URL (the view already shows it).
function navigate(hash, replace = false, silent = false) {
  if (silent) {
    history.replaceState(null, "", hash);
    return;
  }
  if (replace) {
    history.replaceState(null, "", hash);
    route();
  } else {
    location.hash = hash;
  }
}

function unauthenticated() {
  if (location.hash.startsWith("#/login")) return;
  afterLogin = location.hash || "#/live";
  navigate("#/login", true);
}

function showLogin(message = "") {
  top.hidden = true;
  const user = el("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const err = el("p", { class: "error", role: "alert", id: "login-error" }, message);
  const form = el("form", {
    class: "login", "aria-labelledby": "login-title",
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      try {
        await login(user.value, pass.value);
        navigate(afterLogin === "#/login" ? "#/live" : afterLogin, true);
      } catch (ex) {
        err.textContent = ex instanceof ApiError && ex.status === 401 ? "Wrong user name or password." : ex.message;
        pass.value = "";
        pass.focus();
      }
    },
  },
  el("h1", { id: "login-title" }, "Kuzet"),
  el("label", { for: "username" }, "User name"), user,
  el("label", { for: "password" }, "Password"), pass,
  el("button", { type: "submit", id: "login-submit" }, "Log in"),
  err);
  main.replaceChildren(form);
  user.focus();
}

let routeGen = 0;

async function route() {
  const gen = ++routeGen;
  stopView();
  stopView = () => {};
  // A view that finishes rendering after the user moved on is stopped at
  // once (see show below).
  const show = (stop) => {
    if (gen === routeGen) stopView = stop;
    else stop();
  };
  const hash = location.hash || "#/live";
  const [path, query = ""] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === "login") {
    showLogin();
    return;
  }
  if (!session.user) {
    let ok = false;
    try {
      ok = await loadSession();
    } catch (e) {
      main.replaceChildren(el("p", { class: "notice", role: "alert" }, "The server cannot be reached: " + e.message));
      return;
    }
    if (gen !== routeGen) return;
    if (!ok) {
      afterLogin = hash;
      history.replaceState(null, "", "#/login");
      showLogin();
      return;
    }
  }
  top.hidden = false;
  document.getElementById("who").textContent = session.user.username;
  for (const a of document.querySelectorAll("[data-nav]")) {
    const nav = { camera: "live", incident: "incidents", prisoner: "prisoners" }[parts[0]] ?? parts[0];
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = { navigate, unauthenticated, params };
  try {
    if (parts[0] === "live" || parts.length === 0) {
      document.title = "Live — Kuzet";
      const stopWall = await renderWall(main, { ...ctx, facility: parts[1] });
      const stopAlerts = mountAlertPanel(main, { unauthenticated });
      show(() => { stopAlerts(); stopWall(); });
    } else if (parts[0] === "camera" && parts[1]) {
      document.title = "Camera — Kuzet";
      show(await renderCamera(main, { ...ctx, id: parts[1] }));
    } else if (parts[0] === "health") {
      document.title = "Health — Kuzet";
      show(await renderHealth(main, ctx));
    } else if (parts[0] === "incidents") {
      document.title = "Incidents — Kuzet";
      show(await renderIncidents(main, ctx));
    } else if (parts[0] === "incident" && parts[1]) {
      document.title = `Incident ${parts[1]} — Kuzet`;
      show(await renderIncident(main, { ...ctx, id: parts[1] }));
    } else if (parts[0] === "prisoners") {
      document.title = "Prisoners — Kuzet";
      show(await renderPrisoners(main, ctx));
    } else if (parts[0] === "prisoner" && parts[1]) {
      document.title = "Prisoner — Kuzet";
      show(await renderPrisoner(main, { ...ctx, id: parts[1] }));
    } else if (isPage(parts[0])) {
      document.title = parts[0][0].toUpperCase() + parts[0].slice(1) + " — Kuzet";
      show(await renderPage(main, parts[0]));
    } else {
      main.replaceChildren(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/live" }, "Go to the live wall")));
    }
  } catch (e) {
    if (e.status === 401) {
      session.user = null;
      unauthenticated();
      return;
    }
    main.replaceChildren(el("p", { class: "notice", role: "alert" }, e.status === 403 ? "You may not see this." : "Could not load: " + e.message));
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  stopView();
  stopView = () => {};
  try {
    await logout();
  } finally {
    afterLogin = "#/live";
    navigate("#/login", true);
  }
});
window.addEventListener("hashchange", route);
route();
