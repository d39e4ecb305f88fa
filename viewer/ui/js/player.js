// LivePlayer plays one camera live in a <video>: WebRTC through WHEP first;
// when WebRTC cannot connect within a few seconds, fragmented MP4 over a
// WebSocket with Media Source Extensions. It watches the frames it gets
// and reports its state; it never lets a frozen frame pass for live.
//
// States reported to onState(state, detail):
//   connecting  setting up, or waiting to retry
//   live        frames arrive
//   stalled     no frame for STALL_MS although the session is up
//   offline     the server says the camera is offline (detail says why)
//   refused     not allowed (401/403)
//   unplayable  the camera's codec cannot be played in this browser
//   error       anything else (retried)

import { session, problemOf } from "./api.js";

const CONNECT_MS = 4000; // WebRTC must connect within this, else fallback
const STALL_MS = 2500; // no frame for this long: stalled
const RETRY_MS = 2000;

export class LivePlayer {
  // opts: audio (bool), transport ("auto" | "webrtc" | "mse"), t0 (a
  // performance.now() time the first-frame delay is measured from),
  // onState(state, detail), onFirstFrame(ms), onUnauthenticated().
  constructor(video, cameraId, opts = {}) {
    this.video = video;
    this.id = cameraId;
    this.opts = opts;
    this.gen = 0;
    this.state = "";
    this.transport = "";
    this.frames = 0;
    this.lastFrameAt = 0;
    this.firstFrameMs = -1;
    this.note = "";
    this.timers = new Set();
    this.stopped = false;
  }

  start() {
    this.t0 = this.opts.t0 ?? performance.now();
    this.watch();
    if (this.opts.transport === "mse") this.connectMSE();
    else this.connectWebRTC();
  }

  stop() {
    this.stopped = true;
    this.gen++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.poller);
    if (this.rvfc !== undefined && this.video.cancelVideoFrameCallback) this.video.cancelVideoFrameCallback(this.rvfc);
    this.teardown();
  }

  setState(state, detail = "") {
    if (this.stopped) return;
    // A short journal of state changes, for support and tests.
    const log = (window.kuzetLiveLog ??= []);
    log.push([Math.round(performance.now()), this.id, this.transport, state, detail]);
    if (log.length > 500) log.splice(0, 100);
    this.state = state;
    this.detail = detail;
    this.opts.onState?.(state, detail);
  }

  later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  // teardown ends the current session, whatever its transport.
  teardown() {
    if (this.pc) {
      this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    if (this.location) {
      const headers = session.csrf ? { "X-CSRF-Token": session.csrf } : {};
      fetch(this.location, { method: "DELETE", headers, credentials: "same-origin", keepalive: true }).catch(() => {});
      this.location = "";
    }
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = null;
      this.ws.close();
      this.ws = null;
    }
    if (this.objectURL) {
      URL.revokeObjectURL(this.objectURL);
      this.objectURL = "";
    }
    this.video.srcObject = null;
    if (this.video.getAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  // watch counts decoded frames (requestVideoFrameCallback where there is
  // one, and the playback quality counter in any case) and turns their
  // absence into "stalled".
  watch() {
    const v = this.video;
    const frame = (now) => {
      this.lastFrameAt = performance.now();
      if (this.firstFrameMs < 0) {
        this.firstFrameMs = Math.round((now ?? this.lastFrameAt) - this.t0);
        this.opts.onFirstFrame?.(this.firstFrameMs);
      }
      if (this.state !== "live") this.setState("live", this.transport === "mse" ? "fallback stream" : "");
    };
    if (v.requestVideoFrameCallback) {
      const cb = (now) => {
        this.frames++;
        frame(now);
        this.rvfc = v.requestVideoFrameCallback(cb);
      };
      this.rvfc = v.requestVideoFrameCallback(cb);
    }
    let seen = 0;
    this.poller = setInterval(() => {
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
      if (q > seen) {
        seen = q;
        if (!v.requestVideoFrameCallback) {
          this.frames = q;
          frame();
        } else {
          this.lastFrameAt = Math.max(this.lastFrameAt, performance.now() - 300);
        }
      }
      if (this.state === "live" && performance.now() - this.lastFrameAt > STALL_MS) {
        this.setState("stalled", "no picture for " + Math.round((performance.now() - this.lastFrameAt) / 1000) + " s");
      } else if (this.state === "stalled") {
        this.setState("stalled", "no picture for " + Math.round((performance.now() - this.lastFrameAt) / 1000) + " s");
      }
      if (v.paused && (v.srcObject || v.getAttribute("src"))) v.play().catch(() => {});
    }, 250);
  }

  // refused handles a refusal of either transport.
  refused(err, transport) {
    const gen = this.gen;
    const retry = (fn, ms) => this.later(() => gen === this.gen && fn(), ms);
    switch (true) {
      case err.status === 401:
        this.setState("refused", "your session has ended: log in again");
        this.opts.onUnauthenticated?.();
        return;
      case err.status === 403:
        this.setState("refused", err.message);
        return;
      case err.status === 404:
        this.setState("error", err.message);
        return;
      case err.code === "codec-not-playable":
        if (transport === "webrtc" && window.MediaSource && this.opts.transport !== "webrtc") {
          // Media Source Extensions may play what WebRTC cannot.
          this.codecFallback = err.message;
          this.connectMSE();
          return;
        }
        this.setState("unplayable", "this camera's codec is not playable in this browser");
        return;
      case err.code === "camera-offline":
        this.setState("offline", err.message);
        retry(() => (transport === "mse" ? this.connectMSE() : this.connectWebRTC()), RETRY_MS);
        return;
      default:
        this.setState("error", err.message || "cannot start live view");
        retry(() => (transport === "mse" ? this.connectMSE() : this.connectWebRTC()), RETRY_MS + 2000);
    }
  }

  async connectWebRTC() {
    this.teardown();
    const gen = ++this.gen;
    this.transport = "webrtc";
    if (this.state !== "offline") this.setState("connecting", "connecting");
    let pc;
    try {
      pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    } catch {
      this.connectMSE("WebRTC is not available here; using the fallback stream");
      return;
    }
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    if (this.opts.audio) pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (ev) => {
      stream.addTrack(ev.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this.gen) return;
      const s = pc.connectionState;
      if (s === "connected") this.connected = true;
      if (s === "failed" || s === "closed") {
        this.setState("connecting", "connection lost; reconnecting");
        this.later(() => gen === this.gen && this.connectWebRTC(), 1000);
      }
    };
    this.connected = false;
    let resp;
    try {
      // No trickle ICE: the answer holds every server candidate, and the
      // browser's checks reach the server, so the offer goes at once.
      await pc.setLocalDescription(await pc.createOffer());
      const headers = { "Content-Type": "application/sdp" };
      if (session.csrf) headers["X-CSRF-Token"] = session.csrf;
      resp = await fetch("/whep/cameras/" + encodeURIComponent(this.id), {
        method: "POST", headers, body: pc.localDescription.sdp, credentials: "same-origin",
      });
    } catch (e) {
      if (gen === this.gen) this.webrtcFailed("signalling failed: " + e.message);
      return;
    }
    if (gen !== this.gen) {
      if (resp.status === 201) {
        const loc = resp.headers.get("Location");
        const headers = session.csrf ? { "X-CSRF-Token": session.csrf } : {};
        if (loc) fetch(loc, { method: "DELETE", headers, credentials: "same-origin" }).catch(() => {});
      }
      return;
    }
    if (resp.status !== 201) {
      const err = await problemOf(resp);
      if (gen !== this.gen) return;
      this.teardown();
      this.refused(err, "webrtc");
      return;
    }
    this.location = resp.headers.get("Location") || "";
    this.note = resp.headers.get("Kuzet-Live-Note") || "";
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    } catch (e) {
      if (gen === this.gen) this.webrtcFailed("bad answer: " + e.message);
      return;
    }
    this.later(() => {
      if (gen === this.gen && !this.connected) this.webrtcFailed("WebRTC did not connect within " + CONNECT_MS / 1000 + " s");
    }, CONNECT_MS);
  }

  webrtcFailed(why) {
    this.teardown();
    if (this.opts.transport === "webrtc") {
      this.setState("error", why);
      const gen = this.gen;
      this.later(() => gen === this.gen && this.connectWebRTC(), RETRY_MS);
      return;
    }
    this.connectMSE(why + "; using the fallback stream");
  }

  async connectMSE(why = "") {
    this.teardown();
    const gen = ++this.gen;
    this.transport = "mse";
    if (this.state !== "offline") this.setState("connecting", why || "connecting (fallback stream)");
    if (!window.MediaSource) {
      this.setState("unplayable", "this browser can play neither WebRTC nor Media Source Extensions");
      return;
    }
    // A WebSocket does not say why an upgrade was refused: ask first.
    try {
      const r = await fetch("/api/v1/live/cameras/" + encodeURIComponent(this.id), { credentials: "same-origin" });
      if (gen !== this.gen) return;
      if (!r.ok) {
        this.refused(await problemOf(r), "mse");
        return;
      }
      const cam = await r.json();
      if (cam.state !== "online" && cam.state !== "connecting") {
        this.refused({ status: 503, code: "camera-offline", message: cam.detail || cam.reason || "the camera is offline" }, "mse");
        return;
      }
    } catch (e) {
      this.setState("error", "cannot reach the server");
      this.later(() => gen === this.gen && this.connectMSE(), RETRY_MS);
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/api/v1/live/cameras/" + encodeURIComponent(this.id) + "/fmp4");
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let ms = null, sb = null, mime = "";
    const queue = [];
    const v = this.video;
    const pump = () => {
      if (!sb || sb.updating || gen !== this.gen) return;
      if (queue.length) {
        try {
          sb.appendBuffer(queue.shift());
        } catch (e) {
          this.setState("error", "playback failed: " + e.message);
          ws.close();
        }
        return;
      }
      // Stay at the live edge; keep the buffer short.
      const b = v.buffered;
      if (b.length) {
        const end = b.end(b.length - 1);
        if (end - v.currentTime > 1.5 || v.currentTime < b.start(0)) v.currentTime = Math.max(b.start(b.length - 1), end - 0.3);
        if (v.currentTime - b.start(0) > 30) sb.remove(b.start(0), v.currentTime - 10);
      }
      if (v.paused) v.play().catch(() => {});
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      if (typeof ev.data !== "string") {
        queue.push(ev.data);
        pump();
        return;
      }
      const m = JSON.parse(ev.data);
      if (m.type === "offline") {
        this.setState("offline", m.detail || "the camera is offline");
        return;
      }
      if (m.type !== "init") return;
      if (!MediaSource.isTypeSupported(m.mime)) {
        this.setState("unplayable", "this camera's codec is not playable in this browser");
        ws.onclose = null;
        ws.close();
        return;
      }
      if (ms && m.mime === mime) return; // same codec: the init segment follows in the queue
      mime = m.mime;
      queue.length = 0;
      ms = new MediaSource();
      if (this.objectURL) URL.revokeObjectURL(this.objectURL);
      this.objectURL = URL.createObjectURL(ms);
      v.srcObject = null;
      v.src = this.objectURL;
      sb = null;
      ms.addEventListener("sourceopen", () => {
        if (gen !== this.gen) return;
        sb = ms.addSourceBuffer(mime);
        sb.addEventListener("updateend", pump);
        pump();
      }, { once: true });
    };
    ws.onclose = () => {
      if (gen !== this.gen) return;
      this.ws = null;
      this.setState("connecting", "fallback stream closed; reconnecting");
      this.later(() => gen === this.gen && this.connectMSE(), 2000);
    };
  }
}
