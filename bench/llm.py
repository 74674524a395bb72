#!/usr/bin/env python3
"""The LLM stage (issue 4): the limiter against a rate-limited slow provider, and the
cascade's cost against sending every document to the LLM. ``--provider-like`` runs issue
15's cases instead (``bench/llm_provider.py``: a provider whose per-key limits the client
is not told, fresh, prefilled and resumed after ``kill -9``, with and without headers).

(1) Limits. The LLM simulator (``docmill.testkit.llm_sim``) on loopback at ``--rpm`` R
requests/min per key, latency uniform in ``--latency`` (2-30 s), real time (the limiter
reads ``time.monotonic``, so a compressed simulator clock would not be seen consistently).
``docmill run`` classifies ``R x (--minutes - 0.5)`` labelled PDFs with ``llm.spec``
pointing at it: every document is exactly one classification request (no field schemas;
the local classifier never decides: ``min_confidence = 1``). Two runs side by side, each
against its own simulator: ``llm.rpm = R`` (known) and ``llm.rpm = 0`` (learned from
429s). The bench polls ``/_sim/stats`` twice a second; the minute counts from the first
request. Figures:

- sustained ÷ R: requests the simulator admitted (not 429) per minute from minute 1 to
  the last admitted request (all documents are there from the start, so demand exceeds R
  until the last one is sent), divided by R;                              target >= 0.95
- 429 share after the first minute: 429 answers ÷ chat requests;         target <= 2 %
- documents lost: sources without exactly one record that is done or failed with a
  reason (ledger and part files against the input);                         target 0

(2) Cascade. ``testkit.labelled`` makes a training set (``--seed``) and a disjoint
evaluation set (``--seed + 1``); ``docmill train-classifier``'s code trains the local
model on the first. The evaluation set is classified twice through ``docmill run``
against a fast simulator: every document sent to the LLM (no model, ``min_confidence =
1``), and the cascade (rules, then the model, the LLM only below ``min_confidence``).
Cost is the ledger's LLM spend (the spec's prices); accuracy is the records' label against
``truth.jsonl`` (the simulator's answers are deterministic keyword counts). The figure is
cascade cost ÷ all-LLM cost (target <= 0.30) with the cascade's accuracy not below the
all-LLM one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import llm_provider
from corpus import REPO, add_output_args, ensure_venv, run_benchmark, table, tool

sys.path.insert(0, str(REPO / "src"))

TARGET_RATE = 0.95
TARGET_429 = 0.02
TARGET_COST = 0.30

LABELS = """
[labels.invoice]
description = "A bill for goods or services that asks for payment"
keywords = ["invoice", "invoice number", "amount due", "payment terms", "rechnung", "rechnungsnummer", "facture", "factura", "subtotal"]
patterns = ['(?i)\\binvoice\\s+(no|number|#)', '(?i)\\b(vat|mwst|tva|iva)\\b.*\\d']

[labels.receipt]
description = "Proof of a payment already made, e.g. a till or card receipt"
keywords = ["receipt", "thank you for your purchase", "change", "cash", "kassenbon", "quittung", "ticket de caisse", "reçu", "recibo", "paid"]
patterns = ['(?i)\\breceipt\\s+(no|number|#)', '(?im)^paid:\\s']

[labels.tax_notice]
description = "A notice from a tax authority: an assessment, a refund or an amount of tax to pay"
keywords = ["tax office", "tax year", "assessment", "taxpayer", "tax reference", "steuerbescheid", "finanzamt", "steuernummer", "avis d'imposition", "agencia tributaria", "contribuyente"]
patterns = ['(?i)\\bnotice\\s+of\\s+assessment\\b', '(?i)\\b(income\\s+tax|einkommensteuer|imp[oô]t\\s+sur\\s+le\\s+revenu)\\b']

[labels.letter]
description = "Correspondence between people or organisations that is not a bill, receipt or tax notice"
keywords = ["dear", "kind regards", "sincerely", "yours faithfully", "best wishes", "sehr geehrte", "mit freundlichen grüßen", "cordialement", "madame, monsieur", "atentamente", "subject"]
patterns = ['(?im)^(subject|betreff|objet|asunto)\\s*:']

[labels.other]
description = "Anything else: minutes, manuals, CVs, statements, delivery notes, purchase orders"
keywords = ["delivery note", "purchase order", "quotation", "minutes", "curriculum vitae", "newsletter", "press release", "account statement"]
"""
"""The labels of examples/llm/spec.toml, without field schemas (classification only)."""


def write_spec(path: Path, base_url: str, min_confidence: float, model_file: Path | None) -> Path:
    model = f'model_file = "{model_file}"' if model_file else ""
    path.write_text(
        f"""[provider]
name = "sim"
base_url = "{base_url}"
model = "sim-small"

[prices]
"sim-small" = {{ input = 0.15, output = 0.60 }}

[classifier]
min_confidence = {min_confidence}
{model}
{LABELS}""",
        encoding="utf-8",
    )
    return path


def docmill(src: Path, out: Path, spec: Path, *sets: str) -> tuple[float, int, str]:
    argv = [tool("docmill"), "run", str(src), "--out", str(out), "--workers", "1", "--quiet"]
    for item in (f"llm.spec={spec}", "llm.budget_usd=1000", *sets):
        argv += ["--set", item]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.returncode, done.stderr[-2000:]


def records(out: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for part in sorted((out / "records").glob("part-*.jsonl")):
        with open(part, encoding="utf-8") as handle:
            found.extend(json.loads(line) for line in handle if line.strip())
    return found


def status(out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [tool("docmill"), "status", str(out), "--json"], capture_output=True, text=True, check=True
    )
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def lost(src: Path, out: Path) -> tuple[int, dict[str, int]]:
    """Sources without exactly one terminal record (done, or failed with a reason)."""
    expected = {str(p.resolve()) for p in src.rglob("*.pdf")}
    recs = records(out)
    seen = Counter(str(Path(r["source"]).resolve()) for r in recs)
    states = Counter(str(r.get("status")) for r in recs)
    bad = {s for s, n in seen.items() if n != 1} | (expected - set(seen))
    for r in recs:
        state = r.get("status")
        if state not in ("done", "failed") or (state == "failed" and not r.get("error")):
            bad.add(str(Path(r["source"]).resolve()))
    return len(bad), dict(states)


# --- (1) limits ---------------------------------------------------------------------


Sample = tuple[float, int, int, int, int]
"""(time, chat requests, admitted, 429s, admitted requests in flight) from ``/_sim/stats``."""


def sample(handle: Any, stop: threading.Event, into: list[Sample]) -> None:
    while not stop.is_set():
        s = handle.stats()
        admitted = s["chat_requests"] - s["rate_limited"] - s["client_errors"]
        into.append(
            (time.monotonic(), s["chat_requests"], admitted, s["rate_limited"], s["in_flight"])
        )
        stop.wait(0.5)


def minutes(samples: list[Sample], first: float, end: float) -> list[dict[str, float]]:
    """Per minute from the first request: admitted, 429s, mean and peak in flight (the
    trace that shows where a ramp or a cut costs rate)."""
    rows: list[dict[str, float]] = []
    start = first
    while start < end:
        stop = min(start + 60.0, end)
        inside = [s[4] for s in samples if start <= s[0] < stop] or [0]
        rows.append({
            "minute": len(rows),
            "seconds": round(stop - start, 1),
            "admitted": round(at(samples, stop, 2) - at(samples, start, 2)),
            "rate_limited": round(at(samples, stop, 3) - at(samples, start, 3)),
            "in_flight_mean": round(sum(inside) / len(inside), 1),
            "in_flight_peak": max(inside),
        })
        start = stop
    return rows


def at(samples: list[Sample], t: float, i: int) -> float:
    """Column ``i`` at time ``t``, linearly interpolated between samples."""
    for (t0, *a), (t1, *b) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return a[i - 1] + f * (b[i - 1] - a[i - 1])
    return float(samples[-1][i] if t > samples[-1][0] else samples[0][i])


def limits_run(args: argparse.Namespace, work: Path, src: Path, known: bool) -> dict[str, Any]:
    from docmill.testkit.llm_sim import SimConfig, serve_in_thread

    name = "known" if known else "learned"
    config = SimConfig(
        rpm=args.rpm, latency_min_s=args.latency[0], latency_max_s=args.latency[1], seed=11
    )
    samples: list[Sample] = []
    with serve_in_thread(config) as sim:
        spec = write_spec(work / f"spec-{name}.toml", sim.base_url, 1.0, None)
        stop = threading.Event()
        poller = threading.Thread(target=sample, args=(sim, stop, samples), daemon=True)
        poller.start()
        out = work / f"out-{name}"
        sets = [f"llm.rpm={args.rpm if known else 0}", f"llm.max_concurrency={args.concurrency}"]
        wall, rc, err = docmill(src, out, spec, *sets)
        stop.set()
        poller.join()
        final = sim.stats()
    first = next(t for t, chat, *_ in samples if chat > 0)
    last = next(t for t, _c, a, *_ in reversed(samples) if a < final["chat_requests"] - final[
        "rate_limited"] - final["client_errors"])
    steady_from = first + 60.0
    if last <= steady_from:
        raise SystemExit("bench: the run ended within its first minute: raise --minutes")
    span = last - steady_from
    admitted = at(samples, last, 2) - at(samples, steady_from, 2)
    chats = final["chat_requests"] - at(samples, steady_from, 1)
    limited = final["rate_limited"] - at(samples, steady_from, 3)
    n_lost, states = lost(src, out)
    return {
        "mode": name,
        "llm_rpm": args.rpm if known else 0,
        "returncode": rc,
        "stderr_tail": err if rc else "",
        "wall_s": round(wall, 1),
        "steady_s": round(span, 1),
        "sustained_rpm": round(admitted / span * 60.0, 2),
        "rate_ratio": round(admitted / span * 60.0 / args.rpm, 4),
        "share_429_after_1min": round(limited / max(1.0, chats), 4),
        "requests": final["chat_requests"],
        "rate_limited": final["rate_limited"],
        "first_minute_429": int(at(samples, steady_from, 3)),
        "connections_peak": final["connections_peak"],
        "documents": sum(1 for _ in src.rglob("*.pdf")),
        "documents_lost": n_lost,
        "record_states": states,
        "per_minute": minutes(samples, first, last),
    }


# --- (2) cascade --------------------------------------------------------------------


def accuracy(out: Path, truth: dict[str, str]) -> tuple[float, Counter[str]]:
    recs = records(out)
    right = sum(
        1
        for r in recs
        if (r.get("class") or {}).get("label") == truth.get(Path(r["source"]).name)
    )
    by = Counter(str((r.get("class") or {}).get("decided_by")) for r in recs)
    return right / max(1, len(truth)), by


def cascade(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from docmill.llm.spec import load_spec
    from docmill.llm.train import train_classifier
    from docmill.testkit.labelled import generate, read_truth
    from docmill.testkit.llm_sim import SimConfig, serve_in_thread

    train_dir, eval_dir = work / "train", work / "eval"
    generate(train_dir, args.cascade_docs, args.seed)
    generate(eval_dir, args.cascade_docs, args.seed + 1)
    truth = {Path(t["file"]).name: t["label"] for t in read_truth(eval_dir)}
    (eval_dir / "truth.jsonl").unlink()
    model_file = work / "classifier.json"
    figures: dict[str, Any] = {"train_docs": args.cascade_docs, "eval_docs": len(truth)}
    with serve_in_thread(SimConfig(seed=5)) as sim:
        spec = write_spec(work / "spec-cascade.toml", sim.base_url, args.min_confidence, model_file)
        report = train_classifier(train_dir, spec=load_spec(spec), output=model_file)
        figures["cv_accuracy"] = round(report.accuracy, 4)
        all_spec = write_spec(work / "spec-all.toml", sim.base_url, 1.0, None)
        for name, s in (("all_llm", all_spec), ("cascade", spec)):
            out = work / f"out-{name}"
            wall, rc, err = docmill(eval_dir, out, s)
            acc, by = accuracy(out, truth)
            llm = status(out).get("llm") or {}
            figures[name] = {
                "returncode": rc,
                "stderr_tail": err if rc else "",
                "wall_s": round(wall, 1),
                "accuracy": round(acc, 4),
                "decided_by": dict(by),
                "cost_usd": llm.get("cost_usd"),
                "tokens_in": llm.get("tokens_in"),
                "tokens_out": llm.get("tokens_out"),
                "documents_lost": lost(eval_dir, out)[0],
            }
    a, c = figures["all_llm"], figures["cascade"]
    figures["cost_ratio"] = round(float(c["cost_usd"] or 0) / max(1e-12, float(a["cost_usd"] or 0)), 4)
    figures["llm_share_cascade"] = round(c["decided_by"].get("llm", 0) / max(1, len(truth)), 4)
    return figures


# --- the bench ----------------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from docmill.testkit.labelled import generate

    fig: dict[str, Any] = {
        "rpm": args.rpm,
        "latency_s": list(args.latency),
        "max_concurrency": args.concurrency,
    }
    started = time.perf_counter()
    n = int(args.rpm * (args.minutes - 0.5))
    src = work / "limits"
    generate(src, n, args.seed + 7)
    (src / "truth.jsonl").unlink()
    modes = [True, False] if args.mode == "both" else [args.mode == "known"]
    with ThreadPoolExecutor(len(modes) + 1) as pool:
        runs = [pool.submit(limits_run, args, work, src, known) for known in modes]
        casc = pool.submit(cascade, args, work) if args.cascade else None
        fig["limits"] = [r.result() for r in runs]
        fig["cascade"] = casc.result() if casc else None
    fig["wall_s"] = round(time.perf_counter() - started, 1)
    return fig


def report(fig: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    for r in fig["limits"]:
        m = f"[llm.rpm={r['llm_rpm']}]"
        if r["returncode"] not in (0,):
            rows.append((f"{m} docmill exit", f"{r['returncode']}: {r['stderr_tail'][-300:]}"))
        rows += [
            (f"{m} sustained ÷ R", f"{r['rate_ratio']:.3f}  ({r['sustained_rpm']:.1f}/min over "
             f"{r['steady_s']:.0f} s; target >= {TARGET_RATE})"),
            (f"{m} 429 share after 1 min", f"{r['share_429_after_1min']:.2%}  (target <= "
             f"{TARGET_429:.0%}; {r['rate_limited']} 429s in all, {r['first_minute_429']} in minute 0)"),
            (f"{m} documents lost", f"{r['documents_lost']} of {r['documents']}  (target 0; "
             f"records {r['record_states']})"),
            (f"{m} wall time", f"{r['wall_s']:.0f} s, {r['requests']} requests, peak "
             f"{r['connections_peak']} connections"),
            (f"{m} per minute: admitted", " ".join(
                f"{p['admitted']}" + ("" if p["seconds"] >= 59.5 else f"/{p['seconds']:.0f}s")
                for p in r["per_minute"])),
            (f"{m} per minute: 429s", " ".join(f"{p['rate_limited']}" for p in r["per_minute"])),
            (f"{m} per minute: in flight", " ".join(
                f"{p['in_flight_mean']:.0f}^{p['in_flight_peak']}" for p in r["per_minute"])),
        ]
    c = fig.get("cascade")
    if c:
        a, k = c["all_llm"], c["cascade"]
        rows += [
            ("cascade cost ÷ all-LLM cost", f"{c['cost_ratio']:.3f}  (target <= {TARGET_COST}; "
             f"{k['cost_usd']} / {a['cost_usd']} USD)"),
            ("accuracy all-LLM / cascade", f"{a['accuracy']:.3f} / {k['accuracy']:.3f}  "
             f"({c['eval_docs']} documents; cascade decided by {k['decided_by']})"),
            ("local model (cross-validated)", f"{c['cv_accuracy']:.3f} on {c['train_docs']} "
             "training documents"),
        ]
    head = (f"LLM stage: simulator at {fig['rpm']} requests/min, latency "
            f"{fig['latency_s'][0]:g}-{fig['latency_s'][1]:g} s, llm.max_concurrency "
            f"{fig['max_concurrency']}; {fig['wall_s']:.0f} s in all")
    return head + "\n" + table(rows)


def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    p = argparse.ArgumentParser(description="The LLM stage: limits against a slow rate-limited "
                                "simulator, and the cascade's cost against all-LLM.")
    p.add_argument("--rpm", type=int, default=120, help="simulator limit R (default: %(default)s)")
    p.add_argument("--latency", type=_latency, default=(2.0, 30.0),
                   help="MIN:MAX seconds, uniform (default: 2:30)")
    p.add_argument("--minutes", type=float, default=5.0,
                   help="documents for about this long at R (default: %(default)s)")
    p.add_argument("--mode", choices=("both", "known", "learned"), default="both",
                   help="llm.rpm = R, llm.rpm = 0 (learned), or both side by side")
    p.add_argument("--concurrency", type=int, default=64, help="llm.max_concurrency")
    p.add_argument("--cascade-docs", type=int, default=400,
                   help="training and evaluation documents each (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=0.8, help="the cascade's threshold")
    p.add_argument("--no-cascade", dest="cascade", action="store_false")
    p.add_argument("--seed", type=int, default=1)
    llm_provider.add_args(p)
    add_output_args(p, "llm")
    args = p.parse_args(argv)
    if args.provider_like:
        if args.json == p.get_default("json"):
            args.json = args.json.with_name("llm_provider.json")
        return run_benchmark("llm_provider", args, llm_provider.measure, llm_provider.report)
    return run_benchmark("llm", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
