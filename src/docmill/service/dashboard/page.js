// A PDF document's pages as images, its tables' boxes drawn over them, the page's text beside.
//
// The image comes from /v1/.../pages/N.png with the key in the Authorization header (an
// <img src> could not send it), so it is fetched and shown through a blob: URL. The boxes
// are an SVG laid over the image whose viewBox is the page in PDF points (the response's
// X-Page-Width-Pt and X-Page-Height-Pt): a table's bbox (points, top-left origin) is
// drawn as it is, with attributes only (no style attribute: the CSP forbids them).
import { ApiFailure, api, fill, h, jobPath, num } from "./kit.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// The viewer of record ``rec`` of job ``jobId``: { element, show(n) } (n counts from 0).
export function pageViewer(jobId, rec, signal) {
  const pages = rec.pages || 0;
  const tables = (rec.tables || []).map((t, i) => ({ ...t, index: i }));
  const dpi = window.devicePixelRatio > 1 ? 150 : 100;
  const at = h("span", { id: "page-at", class: "muted" });
  const prev = h("button", { type: "button", id: "page-prev" }, "‹ Previous page");
  const next = h("button", { type: "button", id: "page-next" }, "Next page ›");
  const message = h("p", { class: "error", role: "alert", id: "page-message", hidden: true });
  const img = h("img", { id: "page-image", alt: "" });
  const boxes = svg("svg", { id: "page-boxes", class: "boxes", preserveAspectRatio: "none", "aria-hidden": "true" });
  const sheet = h("figure", { class: "sheet", id: "page-sheet" }, img, boxes);
  const caption = h("p", { class: "muted", id: "page-caption" });
  const text = h("pre", { class: "page-text", id: "page-view-text" });
  let current = -1;
  let url = null;
  let asked = 0; // the latest request: an older answer arriving late is dropped

  signal.addEventListener("abort", () => { if (url) URL.revokeObjectURL(url); }, { once: true });

  function drawBoxes(n, width, height) {
    boxes.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const label = Math.max(width, height) / 70; // a label's size in points: readable at any page size
    boxes.replaceChildren(...tables.filter((t) => t.page === n && Array.isArray(t.bbox)).map((t) => {
      const [x0, y0, x1, y1] = t.bbox.map(Number);
      const rows = (t.rows || []).length;
      const cols = Math.max(0, ...(t.rows || []).map((r) => r.length));
      return svg("g", { class: "box", "data-table": t.index },
        svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0 },
          svg("title", {}, `Table ${t.index + 1}: ${rows} rows × ${cols} columns`)),
        svg("text", { x: x0 + label * 0.3, y: y0 > label * 1.4 ? y0 - label * 0.4 : y0 + label * 1.1, "font-size": label },
          `Table ${t.index + 1}`));
    }));
  }

  async function show(n) {
    if (n < 0 || n >= pages) return;
    const mine = ++asked;
    current = n;
    sheet.dataset.state = "loading";
    sheet.dataset.page = String(n);
    prev.disabled = n <= 0;
    next.disabled = n >= pages - 1;
    fill(at, `page ${num(n + 1)} of ${num(pages)}`);
    const onPage = tables.filter((t) => t.page === n).length;
    fill(caption, onPage ? `${onPage} ${onPage === 1 ? "table" : "tables"} found on this page` : "No table found on this page.");
    const pageText = (rec.text || [])[n];
    fill(text, pageText === undefined ? "No text was extracted from this page (extract.max_pages)." : pageText);
    img.alt = `Page ${n + 1}`;
    try {
      const resp = await fetchPage(n);
      const width = Number(resp.headers.get("X-Page-Width-Pt"));
      const height = Number(resp.headers.get("X-Page-Height-Pt"));
      const blob = await resp.blob();
      if (mine !== asked || signal.aborted) return;
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      img.src = url;
      await img.decode();
      if (mine !== asked) return;
      drawBoxes(n, width, height);
      message.hidden = true;
      sheet.hidden = false;
      sheet.dataset.state = "ready";
    } catch (err) {
      if (mine !== asked || signal.aborted || err.name === "AbortError") return;
      fill(message, err instanceof ApiFailure ? `The page image cannot be shown: ${err.describe()}` : String(err));
      message.hidden = false;
      sheet.hidden = true;
      sheet.dataset.state = "failed";
    }
  }

  function fetchPage(n) {
    const path = `${jobPath(jobId)}/documents/${encodeURIComponent(rec.id)}/pages/${n}.png?dpi=${dpi}`;
    return api(path, { raw: true, signal, headers: { Accept: "image/png" } });
  }

  prev.addEventListener("click", () => show(current - 1));
  next.addEventListener("click", () => show(current + 1));

  const element = h("section", { class: "card", id: "page-view" },
    h("div", { class: "head" }, h("h2", {}, "Page view"), h("span", { class: "spacer" }), prev, at, next),
    message,
    h("div", { class: "viewer" },
      sheet,
      h("div", { class: "side" }, caption, text)));
  return { element, show };
}
