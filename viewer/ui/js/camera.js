// The camera page: one camera, large, with its details and audio when the
// camera has G.711 audio (muted until asked, as browsers require).

import { request, el } from "./api.js";
import { Tile } from "./wall.js";

export async function renderCamera(main, { id, navigate, unauthenticated }) {
  const cam = await request("GET", "/api/v1/live/cameras/" + encodeURIComponent(id));
  const tile = new Tile(0, { transport: new URLSearchParams(location.hash.split("?")[1] || "").get("transport") || "auto", audio: true, unauthenticated });
  tile.picker.hidden = true;
  const details = el("dl");
  const fill = (c) => {
    details.replaceChildren(
      el("dt", {}, "Facility"), el("dd", {}, c.facility),
      el("dt", {}, "Zone"), el("dd", {}, c.zone_name || c.zone || "—"),
      el("dt", {}, "State"), el("dd", { id: "camera-state" }, c.state + (c.detail || c.reason ? ` — ${c.detail || c.reason}` : "")),
      el("dt", {}, "Video"), el("dd", {}, c.codec || "unknown"),
      el("dt", {}, "Audio"), el("dd", {}, c.audio ? c.audio + (c.audio === "AAC" ? " (not sent in live view: WebRTC has no AAC)" : "") : "none"));
  };
  fill(cam);
  const unmute = el("button", {
    type: "button", "aria-pressed": "false",
    onclick: () => {
      tile.video.muted = !tile.video.muted;
      unmute.setAttribute("aria-pressed", String(!tile.video.muted));
      unmute.textContent = tile.video.muted ? "Sound off" : "Sound on";
    },
  }, "Sound off");
  // Only G.711 audio reaches live view.
  unmute.hidden = !cam.audio || cam.audio === "AAC";
  main.replaceChildren(el("div", { class: "camera-page" },
    el("div", { class: "toolbar" },
      el("a", { href: "#/live/" + encodeURIComponent(cam.facility) }, "← Back to the wall"),
      unmute),
    el("h1", {}, cam.name || cam.id),
    tile.root, details));
  tile.show(cam, performance.now());
  let stopped = false, timer;
  const poll = async () => {
    try {
      const c = await request("GET", "/api/v1/live/cameras/" + encodeURIComponent(id));
      tile.update(c);
      fill(c);
    } catch (e) {
      if (e.status === 401) unauthenticated();
    }
    if (!stopped) timer = setTimeout(poll, 2000);
  };
  timer = setTimeout(poll, 2000);
  return () => {
    stopped = true;
    clearTimeout(timer);
    tile.stop();
  };
}
