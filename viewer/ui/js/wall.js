// The live wall of a facility: 1, 4, 9 or 16 tiles, a camera picker by
// zone on each tile, camera states polled from the server, and a player
// per tile. The state of the wall lives in the URL:
//   #/live/FACILITY?layout=4&cams=ID,ID,...&transport=auto|webrtc|mse

import { request, el } from "./api.js";
import { LivePlayer } from "./player.js";

const LAYOUTS = [1, 4, 9, 16];
const POLL_MS = 2000;

const STATE_TEXT = {
  live: "Live",
  connecting: "Connecting",
  stalled: "No picture",
  offline: "Offline",
  disabled: "Disabled",
  refused: "Not allowed",
  unplayable: "Not playable",
  error: "Error",
  empty: "No camera",
};

// Tile is one cell of the wall: a camera, its player and what it shows.
export class Tile {
  constructor(index, { onPick, onOpen, transport, audio = false, unauthenticated }) {
    this.index = index;
    this.transport = transport;
    this.audio = audio;
    this.unauthenticated = unauthenticated;
    this.camera = null; // LiveCamera from the server
    this.player = null;
    this.playerState = "";
    this.playerDetail = "";
    this.video = el("video", { muted: true, autoplay: true, playsinline: true, "aria-hidden": "true" });
    this.video.muted = true;
    this.big = el("span", { class: "big" });
    this.why = el("span", { class: "why" });
    this.nameEl = el("span", { class: "name" });
    this.badge = el("span", { class: "badge", role: "status" });
    this.foot = el("span", { class: "foot" });
    this.picker = el("select", { "aria-label": `Camera of tile ${index + 1}`, onchange: (e) => onPick?.(this, e.target.value, e.timeStamp) });
    this.root = el("section", {
      class: "tile", tabindex: "0", dataset: { state: "empty", index: String(index) },
      "aria-label": `Tile ${index + 1}`,
      onkeydown: (e) => {
        if (e.key === "Enter" && e.target === this.root && this.camera) onOpen?.(this.camera);
      },
      ondblclick: () => this.camera && onOpen?.(this.camera),
    },
    el("header", {}, this.nameEl, this.badge, this.picker),
    el("div", { class: "screen" }, this.video, el("div", { class: "overlay" }, this.big, this.why), this.foot));
    this.render();
  }

  setOptions(cameras) {
    const byZone = new Map();
    for (const c of cameras) {
      const z = c.zone_name || c.zone || "No zone";
      if (!byZone.has(z)) byZone.set(z, []);
      byZone.get(z).push(c);
    }
    this.picker.replaceChildren(el("option", { value: "" }, "— none —"),
      ...[...byZone].map(([z, cs]) => el("optgroup", { label: z }, ...cs.map((c) => el("option", { value: c.id }, c.name || c.id)))));
    this.picker.value = this.camera?.id ?? "";
  }

  // show plays camera (null empties the tile); t0 is the user action's time.
  show(camera, t0) {
    if ((camera?.id ?? null) === (this.camera?.id ?? null)) return;
    this.player?.stop();
    this.player = null;
    this.camera = camera;
    this.playerState = "";
    this.root.dataset.camera = camera?.id ?? "";
    delete this.root.dataset.firstFrameMs;
    delete this.root.dataset.firstFrameAt;
    this.picker.value = camera?.id ?? "";
    if (camera) {
      this.player = new LivePlayer(this.video, camera.id, {
        transport: this.transport, audio: this.audio, t0,
        onState: (s, d) => {
          this.playerState = s;
          this.playerDetail = d;
          this.render();
        },
        onFirstFrame: (ms) => {
          this.root.dataset.firstFrameMs = String(ms);
          this.root.dataset.firstFrameAt = String(Math.round(performance.now()));
        },
        onUnauthenticated: this.unauthenticated,
      });
      this.player.start();
    }
    this.render();
  }

  // update takes the camera's latest state from the server.
  update(camera) {
    if (camera && this.camera && camera.id === this.camera.id) {
      this.camera = camera;
      this.render();
    }
  }

  // render merges what the player sees with what the server says of the
  // camera: frames arriving mean live; otherwise the server's reason wins.
  render() {
    const c = this.camera;
    let state, detail;
    if (!c) {
      state = "empty";
      detail = "pick a camera";
    } else if (this.playerState === "live") {
      state = "live";
      detail = "";
    } else if (["refused", "unplayable"].includes(this.playerState)) {
      state = this.playerState;
      detail = this.playerDetail;
    } else if (c.state === "offline" || c.state === "disabled") {
      state = c.state;
      detail = c.detail || c.reason || "";
    } else if (this.playerState === "offline") {
      state = "offline";
      detail = this.playerDetail;
    } else if (this.playerState === "stalled") {
      state = "stalled";
      detail = this.playerDetail + (c.state ? ` (camera ${c.state})` : "");
    } else {
      state = this.playerState || "connecting";
      detail = this.playerDetail;
    }
    this.root.dataset.state = state;
    this.root.dataset.transport = this.player?.transport ?? "";
    this.nameEl.textContent = c ? c.name || c.id : `Tile ${this.index + 1}`;
    this.badge.textContent = STATE_TEXT[state] ?? state;
    this.big.textContent = STATE_TEXT[state] ?? state;
    this.why.textContent = detail;
    this.root.classList.toggle("empty", !c);
    const notes = [];
    if (this.player?.transport === "mse") notes.push("fallback");
    if (this.player?.note) notes.push(this.player.note);
    this.foot.textContent = notes.join(" · ");
    this.foot.hidden = notes.length === 0;
    this.root.setAttribute("aria-label", `${c ? c.name || c.id : "Empty tile"}: ${STATE_TEXT[state] ?? state}${detail ? ", " + detail : ""}`);
  }

  stop() {
    this.player?.stop();
    this.player = null;
  }
}

// renderWall draws the wall into main; it returns a function that stops it.
export async function renderWall(main, { facility, params, navigate, unauthenticated }) {
  const { facilities } = await request("GET", "/api/v1/live/facilities");
  let layout = Number(params.get("layout")) || 4;
  if (!LAYOUTS.includes(layout)) layout = 4;
  const transport = params.get("transport") || "auto";
  const wanted = (params.get("cams") || "").split(",").filter(Boolean);
  const allowed = facilities.some((f) => f.id === facility);
  if (!allowed && !(facility && wanted.length)) {
    if (!facilities.length) {
      main.replaceChildren(el("h1", {}, "Live"), el("p", { class: "notice" }, "You may not watch any facility live."));
    } else {
      navigate(`#/live/${encodeURIComponent(facilities[0].id)}`, true);
    }
    return () => {};
  }
  // A wall of a facility out of the caller's scope (a shared link) still
  // shows its tiles: each is refused by the server, which audits it.
  let cameras = [];
  let notice = null;
  if (allowed) {
    cameras = (await request("GET", "/api/v1/live/cameras?facility=" + encodeURIComponent(facility))).cameras;
  } else {
    notice = el("p", { class: "notice", role: "alert" }, `You may not watch facility ${facility} live.`);
  }
  const byId = () => new Map(cameras.map((c) => [c.id, c]));

  const grid = el("div", { class: "wall", id: "wall", dataset: { layout: String(layout) }, role: "region", "aria-label": "Live wall" });
  const tiles = [];
  const assigned = () => tiles.slice(0, layout).map((t) => t.camera?.id ?? "");
  const saveURL = () => {
    const q = new URLSearchParams({ layout: String(layout), cams: assigned().join(",") });
    if (transport !== "auto") q.set("transport", transport);
    navigate(`#/live/${encodeURIComponent(facility)}?${q}`, true, true);
  };
  const open = (cam) => navigate(`#/camera/${encodeURIComponent(cam.id)}`);
  const pick = (tile, id, t0) => {
    tile.show(byId().get(id) ?? null, t0);
    saveURL();
  };

  const layoutButtons = LAYOUTS.map((n) => el("button", {
    type: "button", "aria-pressed": String(n === layout), dataset: { layout: String(n) },
    title: `${n} tile${n > 1 ? "s" : ""} (key ${LAYOUTS.indexOf(n) + 1})`,
    onclick: (e) => setLayout(n, e.timeStamp),
  }, `${n}`));

  const setLayout = (n, t0) => {
    layout = n;
    grid.dataset.layout = String(n);
    for (const b of layoutButtons) b.setAttribute("aria-pressed", String(Number(b.dataset.layout) === n));
    // Fill new tiles with cameras not shown yet, in list order.
    const shown = new Set(assigned().filter(Boolean));
    const free = cameras.filter((c) => !shown.has(c.id));
    while (tiles.length < n) {
      const t = new Tile(tiles.length, { onPick: pick, onOpen: open, transport, unauthenticated });
      t.setOptions(cameras);
      tiles.push(t);
    }
    tiles.forEach((t, i) => {
      if (i >= n) {
        t.show(null);
        t.root.hidden = true;
        return;
      }
      t.root.hidden = false;
      if (!t.camera && free.length) t.show(free.shift(), t0);
    });
    grid.replaceChildren(...tiles.slice(0, n).map((t) => t.root));
    saveURL();
  };

  const facilityPicker = el("select", {
    "aria-label": "Facility", id: "facility",
    onchange: (e) => navigate(`#/live/${encodeURIComponent(e.target.value)}?layout=${layout}`),
  }, ...facilities.map((f) => el("option", { value: f.id, selected: f.id === facility }, f.name || f.id)),
  allowed ? null : el("option", { value: facility, selected: true, disabled: true }, facility));

  main.replaceChildren(
    el("h1", { class: "sr-only" }, "Live wall, " + (facilities.find((f) => f.id === facility)?.name || facility)),
    el("div", { class: "toolbar", role: "toolbar", "aria-label": "Wall" },
      el("label", { class: "group" }, "Facility ", facilityPicker),
      el("span", { class: "group", role: "group", "aria-label": "Layout" }, "Layout ", ...layoutButtons),
      el("span", { class: "hint" }, "Keys 1–4: layout · Enter on a tile: camera page")),
    ...(notice ? [notice] : []),
    grid);

  // Initial cameras: from the URL, else the first cameras of the list.
  const m = byId();
  for (let i = 0; i < layout; i++) {
    const t = new Tile(i, { onPick: pick, onOpen: open, transport, unauthenticated });
    t.setOptions(cameras);
    tiles.push(t);
  }
  const initial = wanted.length ? wanted.map((id) => m.get(id) ?? (allowed ? null : { id, name: id, facility })) : cameras.slice(0, layout);
  tiles.forEach((t, i) => t.show(initial[i] ?? null, performance.now()));
  grid.replaceChildren(...tiles.map((t) => t.root));
  if (!wanted.length) saveURL();

  const onKey = (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.altKey || e.ctrlKey || e.metaKey) return;
    const i = ["1", "2", "3", "4"].indexOf(e.key);
    if (i >= 0) {
      e.preventDefault();
      setLayout(LAYOUTS[i], e.timeStamp);
    }
  };
  document.addEventListener("keydown", onKey);

  // Camera states: polled, so that a tile says "offline" and why.
  let polling = true;
  const poll = async () => {
    if (!polling || !allowed) return;
    try {
      cameras = (await request("GET", "/api/v1/live/cameras?facility=" + encodeURIComponent(facility))).cameras;
      const bm = byId();
      for (const t of tiles) if (t.camera) t.update(bm.get(t.camera.id));
    } catch (e) {
      if (e.status === 401) unauthenticated();
    }
    if (polling) pollTimer = setTimeout(poll, POLL_MS);
  };
  let pollTimer = setTimeout(poll, POLL_MS);

  return () => {
    polling = false;
    clearTimeout(pollTimer);
    document.removeEventListener("keydown", onKey);
    for (const t of tiles) t.stop();
  };
}
