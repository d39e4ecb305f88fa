// PlaybackPlayer plays recorded footage of one or more cameras on one
// clock over one WebRTC session: one video track per camera and a data
// channel ("control") that carries the commands (play, pause, seek, speed,
// step) and the server's events (position, gap, skip, end, error). See
// viewer/playback_control.go for the protocol.
//
// Each camera gets a tile (the live wall's look) whose data-state is
// connecting, playing, paused, gap, ended or error, and whose data-at and
// data-mark hold the capture time of the last frame sent and the time the
// camera embedded in it (when it embeds one). window.kuzetPlayback keeps
// the latest position and a short journal of events, for support and tests.

import { request, session, el } from "./api.js";

const SPEEDS = [0.5, 1, 2, 4, 8];

export class PlaybackPlayer {
  // opts: incident (id) or cameras (ids) with from and to; reason;
  // cameraNames (id → name); onPosition(at), onState(text);
  // onUnauthenticated().
  constructor(opts) {
    this.opts = opts;
    this.cameras = opts.cameras;
    this.tiles = new Map();
    this.session = "";
    this.playing = false;
    this.speed = 1;
    this.at = null;
    this.stopped = false;
    this.grid = el("div", { class: "pb-grid", dataset: { count: String(Math.min(this.cameras.length, 16)) } });
    for (const id of this.cameras) this.grid.append(this.tile(id).root);
    this.clock = el("span", { class: "pb-clock", "aria-live": "off" }, "—");
    this.note = el("span", { class: "pb-note", role: "status" });
    this.playBtn = el("button", { type: "button", class: "pb-play", onclick: () => this.toggle() }, "Play");
    this.speedSel = el("select", { "aria-label": "Speed", onchange: () => this.setSpeed(Number(this.speedSel.value)) },
      ...SPEEDS.map((s) => el("option", { value: String(s), selected: s === 1 }, s + "×")));
    this.goto = el("input", { type: "text", class: "pb-goto", placeholder: "YYYY-MM-DDTHH:MM:SSZ", "aria-label": "Go to time" });
    const gotoForm = el("form", {
      class: "pb-goto-form", onsubmit: (e) => {
        e.preventDefault();
        const t = new Date(this.goto.value.trim());
        if (isNaN(t)) {
          this.note.textContent = "Give a time like 2025-03-10T09:30:00Z.";
          return;
        }
        this.seek(t);
      },
    }, this.goto, el("button", { type: "submit" }, "Go"));
    this.controls = el("div", { class: "pb-controls toolbar" },
      el("button", { type: "button", "aria-label": "Previous frame", title: "Previous frame", onclick: () => this.step(-1) }, "◀|"),
      this.playBtn,
      el("button", { type: "button", "aria-label": "Next frame", title: "Next frame", onclick: () => this.step(1) }, "|▶"),
      el("label", {}, "Speed ", this.speedSel), gotoForm, this.clock, this.note);
    this.root = el("div", { class: "pb" }, this.controls, this.grid);
    window.kuzetPlayback = { position: null, events: [] };
  }

  tile(id) {
    if (this.tiles.has(id)) return this.tiles.get(id);
    const video = el("video", { muted: true, autoplay: true, playsinline: true, "aria-hidden": "true" });
    video.muted = true;
    const badge = el("span", { class: "badge", role: "status" }, "…");
    const big = el("span", { class: "big" });
    const why = el("span", { class: "why" });
    const foot = el("span", { class: "foot" });
    const name = (this.opts.cameraNames && this.opts.cameraNames[id]) || id;
    const root = el("section", { class: "tile pb-tile", dataset: { camera: id, state: "connecting" }, "aria-label": name },
      el("header", {}, el("span", { class: "name" }, name), badge),
      el("div", { class: "screen" }, video, el("div", { class: "overlay" }, big, why), foot));
    const t = { id, root, video, badge, big, why, foot };
    this.tiles.set(id, t);
    this.setTile(t, "connecting", "connecting");
    return t;
  }

  setTile(t, state, detail = "") {
    t.root.dataset.state = state;
    t.badge.textContent = { playing: "Playing", paused: "Paused", gap: "No footage", ended: "Ended", error: "Error", connecting: "Connecting" }[state] || state;
    t.big.textContent = { gap: "No footage", ended: "End of footage", error: "Cannot play", connecting: "Connecting" }[state] || "";
    t.why.textContent = detail;
  }

  // start opens the session at instant at (a Date; default: from).
  async start(at) {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    for (const _ of this.cameras) pc.addTransceiver("video", { direction: "recvonly" });
    const dc = pc.createDataChannel("control");
    this.dc = dc;
    dc.onmessage = (ev) => this.event(JSON.parse(ev.data));
    dc.onopen = () => this.playing && this.send({ op: "play" });
    const byMid = new Map();
    pc.ontrack = (ev) => {
      const id = byMid.get(ev.transceiver.mid);
      const t = id && this.tiles.get(id);
      if (!t) return;
      t.video.srcObject = new MediaStream([ev.track]);
      t.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.stopped) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        for (const t of this.tiles.values()) this.setTile(t, "error", "the connection to the server was lost");
        this.note.textContent = "Connection lost.";
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    const body = { offer: pc.localDescription.sdp, reason: this.opts.reason, cameras: this.cameras };
    if (this.opts.incident) body.incident = Number(this.opts.incident);
    if (this.opts.from) body.from = this.opts.from;
    if (this.opts.to) body.to = this.opts.to;
    if (at) body.at = at.toISOString();
    let out;
    try {
      out = await request("POST", "/api/v1/playback", body);
    } catch (e) {
      pc.close();
      for (const t of this.tiles.values()) this.setTile(t, "error", e.message);
      if (e.status === 401) this.opts.onUnauthenticated?.();
      throw e;
    }
    if (this.stopped) {
      this.release(out.session);
      pc.close();
      return;
    }
    this.session = out.session;
    this.from = new Date(out.from);
    this.to = new Date(out.to);
    for (const tr of out.tracks) byMid.set(tr.mid, tr.camera);
    for (const u of out.unplayable) {
      const t = this.tiles.get(u.camera);
      if (t) this.setTile(t, "error", u.reason);
    }
    await pc.setRemoteDescription({ type: "answer", sdp: out.answer });
    this.playing = true;
    this.renderState();
  }

  send(cmd) {
    if (this.dc && this.dc.readyState === "open") this.dc.send(JSON.stringify(cmd));
  }

  toggle() {
    this.playing = !this.playing;
    this.send({ op: this.playing ? "play" : "pause" });
    this.renderState();
  }

  setSpeed(s) {
    this.speed = s;
    this.send({ op: "speed", speed: s });
  }

  step(frames) {
    this.playing = false;
    this.send({ op: "step", frames });
    this.renderState();
  }

  // seek moves every camera to instant t (a Date).
  seek(t) {
    this.note.textContent = "";
    this.send({ op: "seek", at: t.toISOString() });
    for (const tile of this.tiles.values()) if (tile.root.dataset.state !== "error") this.setTile(tile, this.playing ? "playing" : "paused");
  }

  renderState() {
    this.playBtn.textContent = this.playing ? "Pause" : "Play";
    this.playBtn.setAttribute("aria-pressed", String(this.playing));
    this.root.dataset.playing = String(this.playing);
  }

  event(ev) {
    const k = window.kuzetPlayback;
    k.events.push(ev.type === "position" ? { type: "position", at: ev.at } : ev);
    if (k.events.length > 500) k.events.splice(0, 100);
    switch (ev.type) {
      case "state":
        this.playing = ev.playing;
        this.speed = ev.speed;
        this.speedSel.value = String(ev.speed);
        this.renderState();
        break;
      case "position": {
        k.position = ev;
        this.at = new Date(ev.at);
        this.clock.textContent = fmtTime(this.at);
        this.opts.onPosition?.(this.at);
        for (const c of ev.cameras) {
          const t = this.tiles.get(c.camera);
          if (!t || t.root.dataset.state === "error") continue;
          if (c.at) t.root.dataset.at = c.at;
          if (c.mark) t.root.dataset.mark = c.mark;
          t.foot.textContent = c.at ? fmtTime(new Date(c.at)) : "";
          if (c.state === "gap") {
            if (t.root.dataset.state !== "gap") this.setTile(t, "gap", t.gapWhy || "no footage here");
          } else if (c.state === "ended") {
            this.setTile(t, "ended", "nothing more was recorded in this window");
          } else {
            this.setTile(t, ev.playing ? "playing" : "paused");
          }
        }
        break;
      }
      case "gap": {
        const t = this.tiles.get(ev.camera);
        if (t) {
          t.gapWhy = `${reasonText(ev.reason)} until ${fmtTime(new Date(ev.to))}`;
          this.setTile(t, "gap", t.gapWhy);
        }
        break;
      }
      case "skip":
        this.note.textContent = `No footage from ${fmtTime(new Date(ev.from))} to ${fmtTime(new Date(ev.to))}: skipped.`;
        break;
      case "end":
        this.note.textContent = "End of the footage.";
        break;
      case "error":
        this.note.textContent = (ev.camera ? ev.camera + ": " : "") + ev.detail;
        break;
    }
  }

  release(id) {
    const headers = session.csrf ? { "X-CSRF-Token": session.csrf } : {};
    fetch("/api/v1/playback/" + id, { method: "DELETE", headers, credentials: "same-origin", keepalive: true }).catch(() => {});
  }

  stop() {
    this.stopped = true;
    if (this.session) this.release(this.session);
    this.session = "";
    if (this.pc) this.pc.close();
    for (const t of this.tiles.values()) t.video.srcObject = null;
  }
}

export function fmtTime(d) {
  if (!d || isNaN(d)) return "—";
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const REASONS = {
  camera_offline: "camera offline",
  recorder_down: "recorder down",
  writer_overload: "recorder overloaded",
  spool_full: "local storage full",
  discontinuity: "stream interrupted",
  disabled: "camera disabled",
  deleted: "deleted by retention",
  no_recording: "not recorded",
};

export function reasonText(r) {
  return REASONS[r] || r;
}
