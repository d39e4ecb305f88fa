// Talking to the server: the session (who, CSRF token, granted actions)
// and JSON requests that carry the CSRF token on state-changing methods.

export const session = { user: null, csrf: "", actions: [] };

// ApiError is a failed request: HTTP status and the problem's code
// ("urn:kuzet:problem:CODE") and detail.
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export async function problemOf(resp) {
  let code = "", detail = "";
  try {
    const p = await resp.json();
    code = (p.type || "").replace("urn:kuzet:problem:", "");
    detail = p.detail || p.title || "";
  } catch {
    detail = resp.statusText;
  }
  return new ApiError(resp.status, code, detail);
}

// request sends a JSON request; it resolves to the decoded body (null for
// 204) or rejects with an ApiError.
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) throw await problemOf(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

function setSession(info) {
  session.user = info.user;
  session.csrf = info.csrf_token || "";
  session.actions = info.actions || [];
}

// loadSession asks who is logged in; false when nobody is.
export async function loadSession() {
  try {
    setSession(await request("GET", "/api/v1/session"));
    return true;
  } catch (e) {
    if (e.status === 401) {
      session.user = null;
      return false;
    }
    throw e;
  }
}

export async function login(username, password) {
  setSession(await request("POST", "/api/v1/login", { username, password }));
}

export async function logout() {
  try {
    await request("POST", "/api/v1/logout");
  } finally {
    session.user = null;
    session.csrf = "";
    session.actions = [];
  }
}

export function can(action) {
  return session.actions.includes(action);
}

// el builds an element: el("p", {class: "x"}, "text", child...).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
