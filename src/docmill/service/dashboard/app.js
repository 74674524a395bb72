// The docmill dashboard: one page, hash routes, vanilla JS modules, no build step.
import { ApiFailure, FLASH, KEY, NEXT, TERMINAL, api, apiKey, append, badge, failure, fill, guarded, h, jobPath, num, rate, request, signOut, sleep, usd, value, when } from "./kit.js";
import { renderJob } from "./job.js";
import { pageViewer } from "./page.js";

const PAGES_SHOWN = 20;
let current = null; // AbortController of the view on screen

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
  // the LLM: a spec the key may use (GET /v1/specs), a budget, an estimate before starting
  const spec = h("select", { id: "opt-spec" }, h("option", { value: "" }, "none"));
  const budget = h("input", { type: "number", id: "opt-budget", min: "0", step: "any", placeholder: "server default" });
  const estimate = h("button", { type: "button", id: "job-estimate-go" }, "Estimate cost");
  const estimated = h("p", { id: "job-estimate", class: "muted", hidden: true });
  const llmRow = h("div", { class: "row options", id: "llm-options", hidden: true },
    h("label", { for: "opt-spec" }, "LLM spec ", spec),
    h("label", { for: "opt-budget" }, "budget USD ", budget),
    h("div", {}, estimate));
  const submit = h("button", { type: "submit", class: "primary", id: "job-submit" }, "Start job");
  const message = h("p", { class: "error", role: "alert", id: "job-message", hidden: true });
  api("/v1/specs").then(({ items }) => {
    for (const s of items) {
      const labels = s.labels.map((lb) => lb.name).join(", ");
      spec.append(h("option", { value: s.name, title: `labels: ${labels}` }, s.name));
    }
    llmRow.hidden = items.length === 0;
  }).catch(() => {});
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
    llmRow,
    estimated,
    message,
    submit);

  function jobRequest(dryRun) {
    const settings = {};
    if (tables.checked) settings["extract.tables"] = true;
    if (markdown.checked) settings["output.markdown"] = true;
    if (ocr.value !== "auto") settings["extract.ocr"] = ocr.value;
    const pages = parseInt(maxPages.value, 10);
    if (pages > 0) settings["extract.max_pages"] = pages;
    const llm = {};
    if (spec.value) llm.spec = spec.value;
    if (spec.value && budget.value !== "") llm.budget_usd = Number(budget.value);
    if (dryRun) llm.dry_run = true;
    if (files.files.length) {
      const body = new FormData();
      for (const f of files.files) body.append("files", f, f.name);
      body.append("settings", JSON.stringify(settings));
      for (const [k, v] of Object.entries(llm)) body.append(k, String(v));
      return { method: "POST", body };
    }
    if (source.value.trim()) return { method: "POST", json: { source: source.value.trim(), settings, ...llm } };
    fill(message, "Choose files to upload, or name a folder or URL.");
    message.hidden = false;
    return null;
  }

  estimate.addEventListener("click", async () => {
    message.hidden = true;
    if (!spec.value) {
      fill(message, "Choose an LLM spec to estimate its cost.");
      message.hidden = false;
      return;
    }
    const opts = jobRequest(true);
    if (!opts) return;
    estimate.disabled = true;
    fill(estimated, "Estimating (nothing is sent to the provider)…");
    estimated.hidden = false;
    try {
      const e = await api("/v1/jobs", opts);
      const verdict = e.budget_suffices ? "suffices" : e.budget_suffices_expected ? "covers the expected cost, not the high end" : "does NOT suffice";
      const month = e.monthly_budget_usd === null ? "" : ` · the key has ${usd(e.monthly_left_usd)} left this month`;
      fill(estimated,
        `${num(e.documents)} documents: about ${num(e.classify_calls)} classify and ${num(e.extract_calls)} extract calls, ` +
        `${num(e.input_tokens)} input tokens · cost ${usd(e.cost_expected)} (${usd(e.cost_low)} – ${usd(e.cost_high)}) · ` +
        `budget ${usd(e.budget_usd)} ${verdict}${month}`);
      if (budget.value === "") budget.value = String(Math.ceil(e.cost_high * 1e4) / 1e4);
    } catch (err) {
      fill(estimated, "");
      estimated.hidden = true;
      fill(message, err instanceof ApiFailure ? err.describe() : String(err));
      message.hidden = false;
    } finally {
      estimate.disabled = false;
    }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.hidden = true;
    const opts = jobRequest(false);
    if (!opts) return;
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

// --- one document -------------------------------------------------------------------

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v, id]) => h("div", {}, h("dt", {}, k), h("dd", id ? { id } : {}, v))));
}

function tableOf(t, i, viewer) {
  const headerRows = Math.max(0, t.header_rows || 0);
  const rows = t.rows || [];
  const page = t.page || 0;
  const go = viewer ? h("button", { type: "button", class: "link", "data-show-page": String(page), onclick: () => {
    viewer.show(page);
    viewer.element.scrollIntoView();
  } }, "show on the page") : null;
  return h("figure", { class: "table" },
    h("figcaption", {}, `Table ${i + 1} · page ${page + 1} `, go),
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
    // PDFs get the page view: the page as an image, its tables' boxes, its text
    const viewer = rec.mime === "application/pdf" && rec.pages > 0 ? pageViewer(jobId, rec, signal) : null;
    // the class: {label, confidence, decided_by} from the LLM stage (a bare label from older ledgers)
    const cls = rec.class && typeof rec.class === "object" ? rec.class : { label: rec.class || null };
    append(root,
      h("section", { class: "card" },
        h("h1", { class: "wrap", id: "doc-source" }, rec.source),
        facts([
          ["Status", badge(rec.status), "doc-status"],
          ["Type", rec.mime || "–"],
          ["Pages", num(rec.pages)],
          ["Label", cls.label || "–", "doc-label"],
          cls.confidence !== undefined && cls.confidence !== null ? ["Confidence", cls.confidence.toFixed(2), "doc-confidence"] : null,
          cls.decided_by ? ["Decided by", { rules: "local rules", model: "local model", llm: "the LLM" }[cls.decided_by] || cls.decided_by, "doc-decided-by"] : null,
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
      viewer ? viewer.element : null,
      h("section", { class: "card", id: "doc-text" }, h("h2", {}, "Text"), pagesOf(rec)),
      (rec.tables || []).length ? h("section", { class: "card", id: "doc-tables" },
        h("h2", {}, `Tables (${rec.tables.length})`), rec.tables.map((t, i) => tableOf(t, i, viewer))) : null,
      rec.markdown ? h("details", { class: "card" }, h("summary", {}, "Markdown"), h("pre", { class: "page-text" }, value(rec.markdown))) : null,
      rec.llm ? h("details", { class: "card" }, h("summary", {}, "LLM"), h("pre", {}, JSON.stringify(rec.llm, null, 2))) : null,
      h("details", { class: "card" }, h("summary", {}, "Metadata"), h("pre", {}, JSON.stringify(rec.metadata || {}, null, 2))));
    if (viewer) { // the first page with a table, else the first page
      const first = (rec.tables || []).find((t) => Number.isInteger(t.page) && t.page < rec.pages);
      viewer.show(first ? first.page : 0);
    }
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
