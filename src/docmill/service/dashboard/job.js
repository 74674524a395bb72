// The job page: live progress over the event stream, cancel and retry, the documents table.
import { ApiFailure, TERMINAL, api, badge, duration, fill, guarded, h, jobPath, num, rate, readEvents, sleep, usd, when } from "./kit.js";

const STATES = ["pending", "running", "done", "failed", "skipped"];
const LIMITS = [25, 50, 100, 250, 1000];

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
  ["eta", "ETA", (j) => (TERMINAL.has(j.status) ? j.status : duration(j.eta_s))], // ended: "done", "cancelled"…
  ["cost", "Cost", (j) => usd(j.cost_usd)],
  ["tokens", "Tokens in / out", (j) => `${num(j.tokens.in)} / ${num(j.tokens.out)}`],
];

export function renderJob(root, jobId, signal) {
  const status = h("span", { id: "job-status" });
  const live = h("span", { class: "live", id: "live" }, "connecting…");
  const source = h("span", { class: "wrap" });
  const times = h("span", { class: "muted", id: "job-times" });
  const bar = h("progress", { id: "job-progress", max: "1", value: "0" });
  const stats = Object.fromEntries(STATS.map(([id]) => [id, h("dd", { id: "stat-" + id }, "–")]));
  const failures = h("tbody", { id: "failures-body" });
  const noFailures = h("p", { class: "muted", id: "no-failures" }, "No failures.");
  const deliveries = h("tbody", { id: "deliveries-body" });
  const deliveriesCard = h("section", { class: "card", id: "deliveries-card", hidden: true },
    h("h2", {}, "Deliveries"),
    h("table", { class: "grid narrow", id: "deliveries" },
      h("thead", {}, h("tr", {}, h("th", {}, "Delivery"), h("th", {}, "Kind"), h("th", {}, "Done"),
        h("th", {}, "Pending"), h("th", {}, "Failed"), h("th", {}, "Failures"))), deliveries));
  const limits = h("tbody", { id: "llm-limits-body" });
  const limitsNote = h("p", { class: "muted", id: "llm-limits-note" });
  const limitsCard = h("section", { class: "card", id: "llm-limits-card", hidden: true },
    h("h2", {}, "LLM limits"),
    h("table", { class: "grid narrow", id: "llm-limits" },
      h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Requests/min"), h("th", {}, "Tokens/min"),
        h("th", {}, "Counted per"), h("th", {}, "In flight"), h("th", {}, "Waiting"), h("th", {}, "Breaker"),
        h("th", { title: "requests the provider refused with 429 in the last run" }, "429s"))), limits),
    limitsNote);
  const llm = llmCard(jobId, (next, text) => { update(next); show(text, false); follow(); }, (text) => show(text, true));
  const message = h("p", { role: "status", id: "job-message", hidden: true });
  const cancel = h("button", { type: "button", id: "cancel", class: "danger" }, "Cancel");
  const retry = h("button", { type: "button", id: "retry" }, "Retry");
  const exports = ["jsonl", "csv", "parquet"].map((fmt) => h("button", { type: "button", class: "link", onclick: () => download(jobId, fmt, message) }, fmt.toUpperCase()));
  const docs = documentsTable(jobId, signal);
  let job = null;
  let streaming = false;
  let wanted = 0; // bumped by every follow(): a stream that ends before the latest call reconnects

  function show(text, isError) {
    fill(message, text);
    message.className = isError ? "error" : "ok";
    message.hidden = false;
  }

  // enabled exactly when the service would accept it (the job's can_retry), else saying why
  function showRetry() {
    const refused = job ? job.retry_refused : null;
    retry.disabled = !job || !job.can_retry;
    retry.title = refused ? `Retry is not possible: ${refused.message} (${refused.code})` : "Retry failed documents; a cancelled job resumes";
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
    const named = Object.entries(job.deliveries || {});
    deliveriesCard.hidden = named.length === 0;
    fill(deliveries, named.map(([name, d]) => h("tr", {},
      h("td", {}, name), h("td", {}, d.kind || "–"), h("td", { class: "num" }, num(d.done)),
      h("td", { class: "num" }, num(d.pending)), h("td", { class: "num" }, num(d.failed)),
      h("td", {}, Object.entries(d.failures || {}).map(([cat, n]) => `${cat} ${num(n)}`).join(", ") || "–"))));
    const models = (job.llm_limits && job.llm_limits.models) || [];
    limitsCard.hidden = models.length === 0;
    fill(limits, models.map((m) => h("tr", {},
      h("td", { class: "mono" }, m.model), h("td", { class: "num" }, perMinute(m.rpm, m.rpm_source)),
      h("td", { class: "num" }, perMinute(m.tpm, m.tpm_source)), h("td", {}, m.scope),
      h("td", { class: "num" }, `${num(m.in_flight)} of ${num(m.concurrency)}`), h("td", { class: "num" }, num(m.waiting)),
      h("td", {}, m.breaker), h("td", { class: "num" }, num(m.rate_limited || 0)))));
    fill(limitsNote, job.llm_limits ? `${job.llm_limits.live ? "Now" : "As the last run left them"}; written ${when(job.llm_limits.updated_at)}. Where a limit comes from: the provider's headers, the figures in its 429 answers, learned from 429s, or configured (llm.rpm, llm.tpm).` : "");
    llm.update(job);
    cancel.disabled = TERMINAL.has(job.status) || job.cancel_requested;
    showRetry();
    if (job.error) show(job.error, true);
    if (before && JSON.stringify(before.counts) !== JSON.stringify(job.counts)) docs.changed();
  }

  // Follows the job's event stream until the job ends. Called again while a stream is open
  // (a retry), the open loop goes on: a stream that ends with the run before the retry
  // (its last snapshot read before the job was queued again) is followed by a new one.
  async function follow() {
    wanted++;
    if (streaming) return;
    streaming = true;
    try {
      while (!signal.aborted) {
        const wish = wanted;
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
        if (ended && wish !== wanted) continue; // a retry came while this stream ended
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
      showRetry();
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
    llm.element,
    deliveriesCard,
    limitsCard,
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

// The LLM card: the spec, cost so far against the budget in force (a bar), cost per
// document, tokens, documents per label (a bar each); stopped at its budget, a field to
// raise it and resume (POST /v1/jobs/{id}/resume, within the key's monthly limit).
function llmCard(jobId, resumed, failed) {
  const spec = h("span", { class: "mono", id: "llm-spec" });
  const spent = h("span", { id: "llm-spent" });
  const bar = h("progress", { id: "llm-budget-bar", max: "1", value: "0" });
  const perDoc = h("dd", { id: "llm-per-doc" }, "–");
  const tokens = h("dd", { id: "llm-tokens" }, "–");
  const asked = h("dd", { id: "llm-asked" }, "–");
  const calls = h("dd", { id: "llm-calls" }, "–");
  const labels = h("tbody", { id: "llm-labels-body" });
  const noLabels = h("p", { class: "muted", id: "llm-no-labels" }, "No document labelled yet.");
  const budget = h("input", { type: "number", id: "llm-new-budget", min: "0", step: "any", "aria-label": "new budget in USD" });
  const go = h("button", { type: "submit", id: "llm-resume-go" }, "Raise budget and resume");
  const resume = h("form", { id: "llm-resume", hidden: true },
    h("p", { id: "llm-stopped" }, "Stopped at its budget: the documents not yet labelled are pending. Documents already paid for are not paid again."),
    h("label", { for: "llm-new-budget" }, "New budget (USD) "), budget, " ", go);
  const element = h("section", { class: "card", id: "llm-card", hidden: true },
    h("h2", {}, "LLM ", spec),
    h("p", {}, spent), bar,
    h("dl", { class: "stats" },
      h("div", {}, h("dt", {}, "Cost per document"), perDoc),
      h("div", {}, h("dt", {}, "Tokens in / out"), tokens),
      h("div", {}, h("dt", {}, "Calls"), calls),
      h("div", {}, h("dt", {}, "Budget asked"), asked)),
    resume,
    h("table", { class: "grid narrow labels", id: "llm-labels" },
      h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", {}, "Documents"), h("th", {}, ""), h("th", {}, "Export"))), labels),
    noLabels);

  resume.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const value = Number(budget.value);
    if (!budget.value || !(value >= 0)) { failed("Enter a budget in USD."); return; }
    go.disabled = true;
    try {
      const next = await api(jobPath(jobId) + "/resume", { method: "POST", json: { budget_usd: value } });
      resumed(next, `Resuming with a budget of ${usd(value)}.`);
    } catch (err) {
      if (err instanceof ApiFailure) failed(err.describe());
    } finally {
      go.disabled = false;
    }
  });

  // the labels with fields in the job's spec (asked once): their rows get a CSV export
  let withFields = null;
  async function fieldsOf(name) {
    if (withFields) return;
    withFields = new Set();
    try {
      const specs = await api("/v1/specs");
      const spec = specs.items.find((s) => s.name === name);
      for (const lb of (spec ? spec.labels : [])) if (lb.fields.length) withFields.add(lb.name);
    } catch (err) {
      if (!(err instanceof ApiFailure)) throw err;
    }
  }

  function exportFields(label) {
    return h("button", { type: "button", class: "link", "data-export": label,
      onclick: () => download(jobId, "csv", null, `&label=${encodeURIComponent(label)}&fields=true`, `${label}-fields`, failed) },
      "fields CSV");
  }

  let last = null;
  function update(job) {
    last = job;
    const l = job.llm;
    element.hidden = !l;
    if (!l) return;
    if (l.spec && !withFields) fieldsOf(l.spec).then(() => update(last));
    fill(spec, l.spec || "");
    const cap = l.budget_in_force_usd;
    bar.max = Math.max(cap || l.budget_usd || 0, 1e-9);
    bar.value = Math.min(l.cost_usd, bar.max);
    const share = cap ? ` (${Math.round((l.cost_usd / cap) * 100)} %)` : "";
    fill(spent, `${usd(l.cost_usd)} of ${cap === null || cap === undefined ? usd(l.budget_usd) + " asked" : usd(cap)}${share}`);
    fill(perDoc, l.cost_per_document_usd === null ? "–" : usd(l.cost_per_document_usd));
    fill(tokens, `${num(l.tokens.in)} / ${num(l.tokens.out)}`);
    fill(asked, usd(l.budget_usd));
    fill(calls, num(l.calls));
    const rows = Object.entries(l.labels || {});
    const most = Math.max(1, ...rows.map(([, n]) => n));
    fill(labels, rows.map(([name, n]) => h("tr", { "data-label": name },
      h("td", {}, name), h("td", { class: "num" }, num(n)),
      h("td", {}, h("progress", { max: String(most), value: String(n), "aria-label": name })),
      h("td", {}, withFields && withFields.has(name) ? exportFields(name) : ""))));
    noLabels.hidden = rows.length > 0;
    resume.hidden = !l.stopped_at_budget;
    if (l.stopped_at_budget && !budget.value) budget.value = String(Math.round((l.budget_usd || 0) * 2 * 1e4) / 1e4);
  }

  return { element, update };
}

// a limit per minute and where it came from: "90 (429 figures)", "–" when none is known
function perMinute(value, source) {
  if (!value) return "–";
  const from = { "429": "429 figures" }[source] || source;
  return `${num(Math.round(value))}${from ? ` (${from})` : ""}`;
}

async function download(jobId, fmt, message, query = "", suffix = "", failed = null) {
  try {
    const resp = await api(jobPath(jobId) + "/export?format=" + fmt + query, { raw: true });
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: `${jobId}${suffix ? "-" + suffix : ""}.${fmt}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    if (err instanceof ApiFailure && failed) failed(err.describe());
    else if (err instanceof ApiFailure) {
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
  const fields = h("select", { id: "f-fields", title: "whether the LLM's fields fit the label's schema" },
    h("option", { value: "" }, "any fields"), h("option", { value: "valid" }, "fields valid"),
    h("option", { value: "invalid" }, "fields invalid"));
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
    status, label, fields, q, h("label", { for: "f-limit" }, "rows ", limit),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", class: "link", onclick: () => { status.value = ""; label.value = ""; fields.value = ""; q.value = ""; first(); } }, "clear"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); first(); });
  status.addEventListener("change", first);
  fields.addEventListener("change", first);
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
    if (fields.value) params.set("fields", fields.value);
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
