// ExportPanel exports evidence: it starts an export job (an incident, or
// chosen cameras and range, with the reason), shows its progress, can
// cancel it, and offers the signed package and the public key that
// verifies it.

import { request, el } from "./api.js";

const POLL_MS = 1000;

function mb(n) {
  return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + " MB";
}

export class ExportPanel {
  // what: {incident} or {cameras, from, to}; reason() returns the reason
  // given (empty: the user is asked for one).
  constructor(what, { reason }) {
    this.what = what;
    this.reason = reason;
    this.button = el("button", { type: "button", class: "ex-start", onclick: () => this.start() }, "Export evidence");
    this.bar = el("progress", { max: "1", value: "0", hidden: true, "aria-label": "Export progress" });
    this.text = el("span", { class: "ex-text", role: "status" });
    this.cancelBtn = el("button", { type: "button", hidden: true, onclick: () => this.cancel() }, "Cancel");
    this.link = el("span", { class: "ex-link" });
    this.root = el("div", { class: "export toolbar" }, this.button, this.bar, this.text, this.cancelBtn, this.link);
    this.timer = 0;
    this.stopped = false;
  }

  async start() {
    const reason = this.reason();
    if (!reason) {
      this.text.textContent = "Say why first: the reason is written to the audit log.";
      return;
    }
    this.button.disabled = true;
    this.link.replaceChildren();
    this.text.textContent = "Starting…";
    try {
      this.job = await request("POST", "/api/v1/exports", { ...this.what, reason });
    } catch (e) {
      this.button.disabled = false;
      this.text.textContent = "Export refused: " + e.message;
      return;
    }
    this.bar.hidden = false;
    this.cancelBtn.hidden = false;
    this.show();
    this.poll();
  }

  async poll() {
    if (this.stopped || !this.job) return;
    try {
      this.job = await request("GET", "/api/v1/exports/" + this.job.id);
    } catch (e) {
      this.text.textContent = "Cannot follow the export: " + e.message;
      return;
    }
    this.show();
    if (this.job.state === "queued" || this.job.state === "running") this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  show() {
    const j = this.job;
    this.root.dataset.state = j.state;
    this.bar.value = j.progress;
    switch (j.state) {
      case "queued":
        this.text.textContent = "Waiting for a free slot…";
        break;
      case "running":
        this.text.textContent = `Writing ${mb(j.bytes_done)} of ${mb(j.bytes_total)} (${Math.round(j.progress * 100)}%)`;
        break;
      case "done":
        this.cancelBtn.hidden = true;
        this.button.disabled = false;
        this.text.textContent = `Done: ${j.files} files, ${mb(j.size)}.`;
        this.link.replaceChildren(
          el("a", { href: `/api/v1/exports/${j.id}/package`, download: `${j.id}.zip`, class: "ex-download" }, "Download the package"),
          " · SHA-256 ", el("code", {}, j.sha256.slice(0, 16) + "…"),
          " · ", el("a", { href: "/api/v1/export/pubkey", download: "kuzet-export-key.pub.pem" }, "public key to verify it"));
        break;
      default:
        this.cancelBtn.hidden = true;
        this.button.disabled = false;
        this.bar.hidden = true;
        this.text.textContent = `Export ${j.state}${j.error ? ": " + j.error : ""}.`;
    }
  }

  async cancel() {
    if (!this.job) return;
    clearTimeout(this.timer);
    try {
      await request("DELETE", "/api/v1/exports/" + this.job.id);
    } catch (e) {
      this.text.textContent = "Cannot cancel: " + e.message;
      return;
    }
    this.job = { ...this.job, state: "cancelled", error: "" };
    this.show();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
