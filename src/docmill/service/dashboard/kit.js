// Shared by the dashboard's modules: DOM building, formatting, the API and its events.
//
// Safety rule: the DOM is built with createElement and text nodes only (h() below):
// nothing from the service or a document is ever parsed as markup. The API key lives
// in sessionStorage and travels only in the Authorization header, never in a URL.

export const KEY = "docmill.apiKey";
export const FLASH = "docmill.flash";
export const NEXT = "docmill.next";
export const TERMINAL = new Set(["done", "failed", "cancelled", "stopped_budget"]);

// --- DOM --------------------------------------------------------------------------

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function" && name.startsWith("on")) {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (["value", "checked", "disabled", "hidden", "selected", "multiple"].includes(name)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// --- formatting ---------------------------------------------------------------------

export const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
export const rate = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));
export const usd = (n) => "$" + Number(n || 0).toFixed(4);
export const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");

export function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + (s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

export function value(v) {
  if (v === null || v === undefined) return "–";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export const badge = (status) => h("span", { class: "badge badge-" + String(status).replace(/[^a-z]/g, "") }, status);

// --- the API ------------------------------------------------------------------------

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  describe() {
    return this.status ? `${this.message} (${this.status} ${this.code})` : this.message;
  }
}

export const apiKey = () => sessionStorage.getItem(KEY) || "";

export async function failure(resp) {
  let code = "error";
  let message = resp.statusText || "request failed";
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = String(body.error.code || code);
      message = String(body.error.message || message);
    }
  } catch (_) { /* not JSON */ }
  return new ApiFailure(resp.status, code, message);
}

export async function request(path, opts, key) {
  const headers = new Headers(opts.headers || {});
  headers.set("Authorization", "Bearer " + key);
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  let body = opts.body;
  if (opts.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(opts.json);
  }
  try {
    return await fetch(path, { method: opts.method || "GET", headers, body, signal: opts.signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiFailure(0, "network", "the service cannot be reached: " + err.message);
  }
}

// A /v1 call with the session's key; a 401 signs out and returns to sign-in.
export async function api(path, opts = {}) {
  const resp = await request(path, opts, apiKey());
  if (resp.status === 401) {
    const err = await failure(resp);
    signOut(`The service refused the API key: ${err.message}. Sign in again.`);
    throw err;
  }
  if (!resp.ok) throw await failure(resp);
  return opts.raw ? resp : resp.json();
}

export function signOut(message) {
  sessionStorage.removeItem(KEY);
  if (message) sessionStorage.setItem(FLASH, message);
  if (location.hash !== "#/signin") {
    if (message && location.hash) sessionStorage.setItem(NEXT, location.hash);
    location.hash = "#/signin";
  } else {
    window.dispatchEvent(new HashChangeEvent("hashchange")); // the router shows sign-in again
  }
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
export async function readEvents(path, signal, onEvent) {
  const resp = await api(path, { signal, raw: true, headers: { Accept: "text/event-stream" } });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value: chunk, done } = await reader.read();
    if (done) return;
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) onEvent(event, data.join("\n"));
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "event") event = text;
      else if (field === "data") data.push(text);
    }
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export const jobPath = (id) => "/v1/jobs/" + encodeURIComponent(id);

export function problem(err) {
  return h("p", { class: "error", role: "alert" }, err instanceof ApiFailure ? err.describe() : String(err));
}

// Runs a view's loading; an error is shown on the view (replacing it when it is a 404).
export async function guarded(root, signal, render) {
  try {
    await render();
  } catch (err) {
    if (signal.aborted || err.name === "AbortError" || (err instanceof ApiFailure && err.status === 401)) return;
    if (err instanceof ApiFailure && err.status === 404) {
      fill(root, h("nav", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs")), problem(err));
    } else {
      append(root, problem(err));
    }
  }
}
