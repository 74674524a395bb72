// The docmill dashboard: one page, hash routes, vanilla JS, no build step.
//
// Safety rule: the DOM is built with createElement and text nodes only (h() below):
// nothing from the service or a document is ever parsed as markup. The API key lives
// in sessionStorage and travels only in the Authorization header, never in a URL.
"use strict";

(() => {
  const KEY = "docmill.apiKey";
  const FLASH = "docmill.flash";
  const NEXT = "docmill.next";
  const TERMINAL = new Set(["done", "failed", "cancelled"]);
  const STATES = ["pending", "running", "done", "failed", "skipped"];
  const LIMITS = [25, 50, 100, 250, 1000];
  const PAGES_SHOWN = 20;
  let current = null; // AbortController of the view on screen

  // --- DOM --------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
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

  function append(el, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  // --- formatting ---------------------------------------------------------------------

  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const rate = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));
  const usd = (n) => "$" + Number(n || 0).toFixed(4);
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");

  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function value(v) {
    if (v === null || v === undefined) return "–";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  const badge = (status) => h("span", { class: "badge badge-" + String(status).replace(/[^a-z]/g, "") }, status);

  // --- the API ------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    describe() {
      return this.status ? `${this.message} (${this.status} ${this.code})` : this.message;
    }
  }

  const apiKey = () => sessionStorage.getItem(KEY) || "";

  async function failure(resp) {
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

  async function request(path, opts, key) {
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
  async function api(path, opts = {}) {
    const resp = await request(path, opts, apiKey());
    if (resp.status === 401) {
      const err = await failure(resp);
      signOut(`The service refused the API key: ${err.message}. Sign in again.`);
      throw err;
    }
    if (!resp.ok) throw await failure(resp);
    return opts.raw ? resp : resp.json();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (message) sessionStorage.setItem(FLASH, message);
    if (location.hash !== "#/signin") {
      if (message && location.hash) sessionStorage.setItem(NEXT, location.hash);
      location.hash = "#/signin";
    } else {
      route();
    }
  }

  // Server-sent events over fetch (EventSource cannot send the Authorization header).
  async function readEvents(path, signal, onEvent) {
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

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  const jobPath = (id) => "/v1/jobs/" + encodeURIComponent(id);

  function problem(err) {
    return h("p", { class: "error", role: "alert" }, err instanceof ApiFailure ? err.describe() : String(err));
  }

  // Runs a view's loading; an error is shown on the view (replacing it when it is a 404).
  async function guarded(root, signal, render) {
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

  // --- sign-in ------------------------------------------------------------------------

  function renderSignIn(root) {
    const flash = sessionStorage.getItem(FLASH);
    sessionStorage.removeItem(FLASH);
    const input = h("input", { type: "password", id: "api-key", name: "key", autocomplete: "off", required: true, placeholder: "dm_…" });
    const message = h("p", { class: "error", role: "alert", id: "signin-message" }, flash || "");
    message.hidden = !flash;
    const form = h("form", { class: "card narrow", id: "signin" },
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "Paste an API key. It stays in this tab (session storage) and is sent only as an Authorization header."),
      message,
      h("label", { for: "api-key" }, "API key"),
      input,
      h("button", { type: "submit", class: "primary" }, "Sign in"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      try {
        const resp = await request("/v1/jobs?limit=1", {}, key);
        if (!resp.ok) throw await failure(resp);
      } catch (err) {
        const text = err instanceof ApiFailure && err.status === 401
          ? `The service refused this key: ${err.message}.` : (err.describe ? err.describe() : String(err));
        fill(message, text);
        message.hidden = false;
        return;
      }
      sessionStorage.setItem(KEY, key);
      const next = sessionStorage.getItem(NEXT) || "#/jobs";
      sessionStorage.removeItem(NEXT);
      location.hash = next === "#/signin" ? "#/jobs" : next;
    });
    fill(root, form);
    input.focus();
  }

  // --- jobs ---------------------------------------------------------------------------

  function newJobForm() {
    const files = h("input", { type: "file", id: "job-files", name: "files", multiple: true });
    const source = h("input", { type: "text", id: "job-source", placeholder: "/srv/docs or https://…" });
    const tables = h("input", { type: "checkbox", id: "opt-tables" });
    const markdown = h("input", { type: "checkbox", id: "opt-markdown" });
    const ocr = h("select", { id: "opt-ocr" }, ["auto", "always", "never"].map((v) => h("option", { value: v }, v)));
    const maxPages = h("input", { type: "number", id: "opt-max-pages", min: "0", value: "0" });
    const submit = h("button", { type: "submit", class: "primary", id: "job-submit" }, "Start job");
    const message = h("p", { class: "error", role: "alert", id: "job-message", hidden: true });
    const form = h("form", { class: "card", id: "new-job" },
      h("h2", {}, "New job"),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "job-files" }, "Upload documents"), files),
        h("div", {}, h("label", { for: "job-source" }, "or a folder or URL the service may read"), source)),
      h("div", { class: "row options" },
        h("label", {}, tables, " detect tables"),
        h("label", {}, markdown, " Markdown"),
        h("label", { for: "opt-ocr" }, "OCR ", ocr),
        h("label", { for: "opt-max-pages" }, "max pages (0 = all) ", maxPages)),
      message,
      submit);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      message.hidden = true;
      const settings = {};
      if (tables.checked) settings["extract.tables"] = true;
      if (markdown.checked) settings["output.markdown"] = true;
      if (ocr.value !== "auto") settings["extract.ocr"] = ocr.value;
      const pages = parseInt(maxPages.value, 10);
      if (pages > 0) settings["extract.max_pages"] = pages;
      let opts;
      if (files.files.length) {
        const body = new FormData();
        for (const f of files.files) body.append("files", f, f.name);
        body.append("settings", JSON.stringify(settings));
        opts = { method: "POST", body };
      } else if (source.value.trim()) {
        opts = { method: "POST", json: { source: source.value.trim(), settings } };
      } else {
        fill(message, "Choose files to upload, or name a folder or URL.");
        message.hidden = false;
        return;
      }
      submit.disabled = true;
      fill(submit, "Uploading…");
      try {
        const job = await api("/v1/jobs", opts);
        location.hash = "#/jobs/" + encodeURIComponent(job.id);
      } catch (err) {
        fill(message, err instanceof ApiFailure ? err.describe() : String(err));
        message.hidden = false;
      } finally {
        submit.disabled = false;
        fill(submit, "Start job");
      }
    });
    return form;
  }

  function jobRow(job) {
    const finished = ["done", "failed", "skipped"].reduce((n, s) => n + (job.counts[s] || 0), 0);
    return h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: "#/jobs/" + encodeURIComponent(job.id), class: "mono" }, job.id.slice(0, 12))),
      h("td", {}, badge(job.status)),
      h("td", { class: "wrap" }, job.source),
      h("td", {}, when(job.created_at)),
      h("td", { class: "num" }, `${num(finished)} / ${num(job.total)}`),
      h("td", { class: "num" }, rate(job.docs_per_min)),
      h("td", { class: "num" }, usd(job.cost_usd)));
  }

  function renderJobs(root, signal) {
    const body = h("tbody", { id: "jobs-body" });
    const empty = h("p", { class: "muted", id: "jobs-empty", hidden: true }, "No jobs yet.");
    fill(root,
      newJobForm(),
      h("section", { class: "card" },
        h("h2", {}, "Jobs"),
        h("table", { class: "grid", id: "jobs" },
          h("thead", {}, h("tr", {}, ["Job", "Status", "Source", "Created", "Documents", "Docs/min", "Cost"].map((t) => h("th", {}, t)))),
          body),
        empty));
    guarded(root, signal, async () => {
      while (!signal.aborted) {
        const { items } = await api("/v1/jobs", { signal });
        fill(body, items.map(jobRow));
        empty.hidden = items.length > 0;
        await sleep(items.some((j) => !TERMINAL.has(j.status)) ? 2000 : 10000, signal);
      }
    });
  }

  // --- one job ------------------------------------------------------------------------

  const STATS = [
    ["total", "Documents", (j) => num(j.total)],
    ["done", "Done", (j) => num(j.counts.done || 0)],
    ["failed", "Failed", (j) => num(j.counts.failed || 0)],
    ["skipped", "Skipped", (j) => num(j.counts.skipped || 0)],
    ["running", "Running", (j) => num(j.counts.running || 0)],
    ["pending", "Pending", (j) => num(j.counts.pending || 0)],
    ["pages", "Pages", (j) => num(j.pages)],
    ["docs-per-min", "Documents/min", (j) => rate(j.docs_per_min)],
    ["pages-per-min", "Pages/min", (j) => rate(j.pages_per_min)],
    ["eta", "ETA", (j) => (TERMINAL.has(j.status) ? "–" : duration(j.eta_s))],
    ["cost", "Cost", (j) => usd(j.cost_usd)],
    ["tokens", "Tokens in / out", (j) => `${num(j.tokens.in)} / ${num(j.tokens.out)}`],
  ];

  function renderJob(root, jobId, signal) {
    const status = h("span", { id: "job-status" });
    const live = h("span", { class: "live", id: "live" }, "connecting…");
    const source = h("span", { class: "wrap" });
    const times = h("span", { class: "muted", id: "job-times" });
    const bar = h("progress", { id: "job-progress", max: "1", value: "0" });
    const stats = Object.fromEntries(STATS.map(([id]) => [id, h("dd", { id: "stat-" + id }, "–")]));
    const failures = h("tbody", { id: "failures-body" });
    const noFailures = h("p", { class: "muted", id: "no-failures" }, "No failures.");
    const message = h("p", { role: "status", id: "job-message", hidden: true });
    const cancel = h("button", { type: "button", id: "cancel", class: "danger" }, "Cancel");
    const retry = h("button", { type: "button", id: "retry" }, "Retry");
    const exports = ["jsonl", "csv", "parquet"].map((fmt) => h("button", { type: "button", class: "link", onclick: () => download(jobId, fmt, message) }, fmt.toUpperCase()));
    const docs = documentsTable(jobId, signal);
    let job = null;
    let streaming = false;

    function show(text, isError) {
      fill(message, text);
      message.className = isError ? "error" : "ok";
      message.hidden = false;
    }

    function update(next) {
      const before = job;
      job = next;
      fill(status, badge(job.status), job.cancel_requested && !TERMINAL.has(job.status) ? " cancelling…" : "");
      fill(source, job.source);
      fill(times, `created ${when(job.created_at)} · started ${when(job.started_at)} · finished ${when(job.finished_at)} · runs ${job.runs}`);
      const finished = (job.counts.done || 0) + (job.counts.failed || 0) + (job.counts.skipped || 0);
      bar.max = Math.max(job.total, 1);
      bar.value = finished;
      for (const [id, , show] of STATS) fill(stats[id], show(job));
      const rows = Object.entries(job.failures || {}).sort((a, b) => b[1] - a[1]);
      fill(failures, rows.map(([cat, n]) => h("tr", {}, h("td", {}, cat), h("td", { class: "num" }, num(n)))));
      noFailures.hidden = rows.length > 0;
      cancel.disabled = TERMINAL.has(job.status) || job.cancel_requested;
      retry.disabled = !TERMINAL.has(job.status);
      if (job.error) show(job.error, true);
      if (before && JSON.stringify(before.counts) !== JSON.stringify(job.counts)) docs.changed();
    }

    async function follow() {
      if (streaming) return;
      streaming = true;
      try {
        while (!signal.aborted) {
          let ended = false;
          fill(live, "● live");
          live.className = "live on";
          try {
            await readEvents(jobPath(jobId) + "/events", signal, (event, data) => {
              if (event === "progress") update(JSON.parse(data));
              else if (event === "end") ended = true;
            });
          } catch (err) {
            if (signal.aborted || (err instanceof ApiFailure && (err.status === 401 || err.status === 404))) return;
          }
          if (ended) {
            fill(live, "finished");
            live.className = "live";
            docs.reload();
            return;
          }
          fill(live, "reconnecting…");
          live.className = "live";
          await sleep(2000, signal);
        }
      } finally {
        streaming = false;
      }
    }

    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        update(await api(jobPath(jobId) + "/cancel", { method: "POST" }));
        show(job.status === "cancelled" ? "Cancelled." : "Cancel requested: documents in flight finish first.", false);
      } catch (err) {
        if (err instanceof ApiFailure) show(err.describe(), true);
        cancel.disabled = job ? TERMINAL.has(job.status) : false;
      }
    });
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        update(await api(jobPath(jobId) + "/retry", { method: "POST" }));
        show("Queued again: failed documents are retried, a cancelled job resumes.", false);
        follow();
      } catch (err) {
        if (err instanceof ApiFailure) show(err.describe(), true);
        retry.disabled = job ? !TERMINAL.has(job.status) : false;
      }
    });

    fill(root,
      h("nav", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " › ", h("span", { class: "mono" }, jobId)),
      h("section", { class: "card" },
        h("div", { class: "head" }, h("h1", {}, "Job ", h("span", { class: "mono" }, jobId.slice(0, 12))), status, live,
          h("span", { class: "spacer" }), cancel, retry),
        h("p", {}, source),
        h("p", {}, times),
        bar,
        h("dl", { class: "stats" }, STATS.map(([id, label]) => h("div", {}, h("dt", {}, label), stats[id]))),
        message,
        h("p", { class: "muted" }, "Export: ", exports)),
      h("section", { class: "card" },
        h("h2", {}, "Failures by category"),
        h("table", { class: "grid narrow", id: "failures" },
          h("thead", {}, h("tr", {}, h("th", {}, "Category"), h("th", {}, "Documents"))), failures),
        noFailures),
      docs.element);

    guarded(root, signal, async () => {
      for (;;) { // a 5xx or a lost connection is tried again; a 4xx is shown
        try {
          update(await api(jobPath(jobId), { signal }));
          message.hidden = true;
          break;
        } catch (err) {
          if (!(err instanceof ApiFailure) || (err.status >= 400 && err.status < 500)) throw err;
          show(err.describe() + " – trying again", true);
          await sleep(2000, signal);
          if (signal.aborted) return;
        }
      }
      docs.reload();
      follow();
    });
  }

  async function download(jobId, fmt, message) {
    try {
      const resp = await api(jobPath(jobId) + "/export?format=" + fmt, { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = h("a", { href: url, download: `${jobId}.${fmt}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      if (err instanceof ApiFailure) {
        fill(message, err.describe());
        message.className = "error";
        message.hidden = false;
      }
    }
  }

  // The documents table: filters, keyset pages (a stack of cursors for "previous").
  function documentsTable(jobId, signal) {
    const status = h("select", { id: "f-status" }, h("option", { value: "" }, "any status"), STATES.map((s) => h("option", { value: s }, s)));
    const label = h("input", { type: "text", id: "f-label", placeholder: "label" });
    const q = h("input", { type: "search", id: "f-q", placeholder: "file name contains…" });
    const limit = h("select", { id: "f-limit" }, LIMITS.map((n) => h("option", { value: String(n) }, String(n))));
    limit.value = "100";
    const body = h("tbody", { id: "docs-body" });
    const prev = h("button", { type: "button", id: "prev", disabled: true }, "‹ Previous");
    const next = h("button", { type: "button", id: "next", disabled: true }, "Next ›");
    const where = h("span", { id: "page-info", class: "muted" });
    const message = h("p", { class: "error", role: "alert", hidden: true });
    let cursors = [null]; // cursor of each page seen; the last is the page on screen
    let loading = null;
    let lastRefresh = 0;

    const form = h("form", { class: "filters", id: "doc-filters" },
      status, label, q, h("label", { for: "f-limit" }, "rows ", limit),
      h("button", { type: "submit" }, "Filter"),
      h("button", { type: "button", class: "link", onclick: () => { status.value = ""; label.value = ""; q.value = ""; first(); } }, "clear"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); first(); });
    status.addEventListener("change", first);
    limit.addEventListener("change", first);

    function first() {
      cursors = [null];
      reload();
    }

    async function reload() {
      const cursor = cursors[cursors.length - 1];
      const params = new URLSearchParams({ limit: limit.value });
      if (cursor) params.set("cursor", cursor);
      if (status.value) params.set("status", status.value);
      if (label.value.trim()) params.set("label", label.value.trim());
      if (q.value.trim()) params.set("q", q.value.trim());
      const mine = {};
      loading = mine;
      lastRefresh = Date.now();
      try {
        const page = await api(jobPath(jobId) + "/documents?" + params, { signal });
        if (loading !== mine) return;
        fill(body, page.items.map((d) => docRow(jobId, d)));
        if (!page.items.length) fill(body, h("tr", {}, h("td", { colspan: "8", class: "muted" }, "No documents match.")));
        message.hidden = true;
        prev.disabled = cursors.length <= 1;
        next.disabled = !page.next_cursor;
        next.dataset.cursor = page.next_cursor || "";
        fill(where, `page ${cursors.length} · ${page.items.length} rows`);
      } catch (err) {
        if (signal.aborted || err.name === "AbortError" || !(err instanceof ApiFailure)) return;
        fill(message, err.describe());
        message.hidden = false;
      }
    }

    next.addEventListener("click", () => {
      if (!next.dataset.cursor) return;
      cursors.push(next.dataset.cursor);
      reload();
    });
    prev.addEventListener("click", () => {
      if (cursors.length <= 1) return;
      cursors.pop();
      reload();
    });

    // while the job runs, the page on screen is refreshed at most every 3 s
    function changed() {
      if (Date.now() - lastRefresh > 3000) reload();
    }

    const element = h("section", { class: "card" },
      h("h2", {}, "Documents"),
      form,
      message,
      h("table", { class: "grid", id: "docs" },
        h("thead", {}, h("tr", {}, ["#", "Source", "Status", "Type", "Pages", "Label", "Error", "Cost"].map((t) => h("th", {}, t)))),
        body),
      h("div", { class: "pager" }, prev, where, next));
    return { element, reload, changed };
  }

  function docRow(jobId, d) {
    const href = `#/jobs/${encodeURIComponent(jobId)}/documents/${d.id}`;
    return h("tr", { "data-doc": String(d.id) },
      h("td", { class: "num" }, h("a", { href }, String(d.id))),
      h("td", { class: "wrap" }, h("a", { href }, d.source)),
      h("td", {}, badge(d.status)),
      h("td", {}, d.mime || "–"),
      h("td", { class: "num" }, num(d.pages)),
      h("td", {}, d.label || "–"),
      h("td", {}, d.error_category || ""),
      h("td", { class: "num" }, usd(d.cost_usd)));
  }

  // --- one document -------------------------------------------------------------------

  function facts(pairs) {
    return h("dl", { class: "facts" }, pairs.map(([k, v, id]) => h("div", {}, h("dt", {}, k), h("dd", id ? { id } : {}, v))));
  }

  function tableOf(t, i) {
    const headerRows = Math.max(0, t.header_rows || 0);
    const rows = t.rows || [];
    return h("figure", { class: "table" },
      h("figcaption", {}, `Table ${i + 1} · page ${(t.page || 0) + 1}`),
      h("table", { class: "grid data" },
        headerRows ? h("thead", {}, rows.slice(0, headerRows).map((r) => h("tr", {}, r.map((c) => h("th", {}, value(c)))))) : null,
        h("tbody", {}, rows.slice(headerRows).map((r) => h("tr", {}, r.map((c) => h("td", {}, value(c))))))));
  }

  function pagesOf(rec) {
    const text = rec.text || [];
    const sources = rec.text_source || [];
    const box = h("div", { id: "pages" });
    const more = h("button", { type: "button", id: "more-pages" });
    let shown = 0;
    function showMore() {
      const upto = Math.min(text.length, shown + PAGES_SHOWN);
      for (; shown < upto; shown++) {
        box.append(h("section", { class: "page", "data-page": String(shown + 1) },
          h("h3", {}, `Page ${shown + 1}`, sources[shown] ? h("span", { class: "muted" }, ` · ${value(sources[shown])}`) : null),
          h("pre", { class: "page-text" }, text[shown])));
      }
      more.hidden = shown >= text.length;
      fill(more, `Show ${Math.min(PAGES_SHOWN, text.length - shown)} more of ${text.length - shown} pages`);
    }
    more.addEventListener("click", showMore);
    showMore();
    if (!text.length) box.append(h("p", { class: "muted" }, "No text."));
    return [box, more];
  }

  function renderDocument(root, jobId, docId, signal) {
    const jobHref = "#/jobs/" + encodeURIComponent(jobId);
    fill(root, h("nav", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " › ",
      h("a", { href: jobHref, class: "mono" }, jobId.slice(0, 12)), " › ", `document ${docId}`));
    guarded(root, signal, async () => {
      const rec = await api(`${jobPath(jobId)}/documents/${encodeURIComponent(docId)}`, { signal });
      const fields = rec.fields && typeof rec.fields === "object" ? Object.entries(rec.fields) : [];
      const timings = Object.entries(rec.timings || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)} s`).join(" · ");
      append(root,
        h("section", { class: "card" },
          h("h1", { class: "wrap", id: "doc-source" }, rec.source),
          facts([
            ["Status", badge(rec.status), "doc-status"],
            ["Type", rec.mime || "–"],
            ["Pages", num(rec.pages)],
            ["Label", rec.class || "–", "doc-label"],
            ["Cost", usd(rec.cost_usd), "doc-cost"],
            ["Tokens in / out", `${num((rec.tokens || {}).in)} / ${num((rec.tokens || {}).out)}`],
            ["Size", num(rec.size) + " bytes"],
            ["Attempts", num(rec.attempts)],
            ["Timings", timings || "–"],
            ["SHA-256", h("span", { class: "mono" }, rec.sha256 || "–")],
            rec.duplicate_of ? ["Duplicate of", h("a", { href: `${jobHref}/documents/${rec.duplicate_of}` }, String(rec.duplicate_of))] : null,
          ].filter(Boolean))),
        rec.error ? h("section", { class: "card", id: "doc-error" },
          h("h2", {}, "Error"),
          facts([["Category", rec.error.category], ["Stage", rec.error.stage || "–"], ["Message", rec.error.message]])) : null,
        fields.length ? h("section", { class: "card", id: "doc-fields" },
          h("h2", {}, "Fields"),
          h("table", { class: "grid narrow" }, h("tbody", {}, fields.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "wrap" }, value(v))))))) : null,
        h("section", { class: "card", id: "doc-text" }, h("h2", {}, "Text"), pagesOf(rec)),
        (rec.tables || []).length ? h("section", { class: "card", id: "doc-tables" },
          h("h2", {}, `Tables (${rec.tables.length})`), rec.tables.map(tableOf)) : null,
        rec.markdown ? h("details", { class: "card" }, h("summary", {}, "Markdown"), h("pre", { class: "page-text" }, value(rec.markdown))) : null,
        rec.llm ? h("details", { class: "card" }, h("summary", {}, "LLM"), h("pre", {}, JSON.stringify(rec.llm, null, 2))) : null,
        h("details", { class: "card" }, h("summary", {}, "Metadata"), h("pre", {}, JSON.stringify(rec.metadata || {}, null, 2))));
    });
  }

  // --- routing ------------------------------------------------------------------------

  function route() {
    if (current) current.abort();
    current = new AbortController();
    const signal = current.signal;
    const root = document.getElementById("app");
    const hash = location.hash || "#/jobs";
    document.getElementById("signout").hidden = !apiKey();
    root.replaceChildren();
    if (!apiKey()) {
      if (hash !== "#/signin") {
        sessionStorage.setItem(NEXT, hash);
        location.hash = "#/signin"; // routes again
        return;
      }
      renderSignIn(root);
      return;
    }
    let m;
    if ((m = hash.match(/^#\/jobs\/([^/]+)\/documents\/(\d+)$/))) renderDocument(root, decodeURIComponent(m[1]), m[2], signal);
    else if ((m = hash.match(/^#\/jobs\/([^/]+)$/))) renderJob(root, decodeURIComponent(m[1]), signal);
    else if (hash === "#/jobs") renderJobs(root, signal);
    else location.hash = "#/jobs"; // routes again
  }

  window.addEventListener("hashchange", route);
  document.getElementById("signout").addEventListener("click", () => signOut(""));
  route();
})();
