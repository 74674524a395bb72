#!/usr/bin/env python3
"""PII masking: recall per kind, false positives, and the cost per KB of text.

    recall of planted personal data, per kind (testkit/pii_set)              target >= 99 %
    amounts, dates, invoice/order/reference numbers ... masked (same set)    target 0
    amounts, dates, invoice/receipt/tax numbers masked (testkit/labelled)    target 0
    microseconds per KB: log lines, labelled document text, the PII set      reported

What is measured is ``docmill.observability.redact.redact`` end to end: the spans it
replaced are read back from a diff of its input and output, so ``--baseline REF`` (the
redactor of another commit, e.g. ``main``) is measured the same way, side by side. A
planted item counts as masked when every digit and "@" in it was replaced; a kept item
is a false positive when any of it was. Speed: the best of 5 passes, one ``redact``
call per log line, per page, per generated text. Nothing is asserted (the tests in
tests/test_redact.py do).
"""

from __future__ import annotations

import argparse
import difflib
import random
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus import REPO, add_output_args, ensure_venv, run_benchmark, table

ensure_venv()

from docmill.observability.redact import redact  # noqa: E402
from docmill.testkit import pii_set  # noqa: E402
from docmill.testkit.labelled import labels_for, make_document  # noqa: E402

Redact = Callable[[str], str]

LOG_LINES = (
    "2026-01-15 12:34:56,789 INFO docmill: docs 1,234/10,000 (12.3%) | pages 45,678"
    " | 5,432 pages/min | 120.5 docs/min | failed 3 | skipped 0 | running 4 | ETA 1h02m",
    "2026-01-15 12:34:57,001 WARNING docmill.pool: worker 4242 killed (timeout after"
    " 60.0s) on /data/in/2024-01-15/report_0001.pdf, attempt 2 of 3",
    "2026-01-15 12:34:57,120 INFO docmill.llm: provider openai status 200 kind ok"
    " latency 0.842s tokens 1234/56",
    "2026-01-15 12:34:58,500 ERROR docmill.sink: part 17 holds ids 1001-2000; fsync"
    " 12.5 ms; sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "2026-01-15 12:34:59,002 WARNING docmill: /in/jane.doe@example.com 020 7946 1001.pdf"
    " failed (corrupt): no trailer found",
)


def spans_of(fn: Redact) -> pii_set.Finder:
    """The spans of ``text`` that ``fn`` replaced (from a diff of its input and output)."""

    def finder(text: str) -> list[tuple[int, int]]:
        out = fn(text)
        if out == text:
            return []
        matcher = difflib.SequenceMatcher(None, text, out, autojunk=False)
        return [(i1, i2) for op, i1, i2, _, _ in matcher.get_opcodes() if op != "equal"]

    return finder


def baseline_redact(ref: str) -> Redact:
    """``redact`` of ``ref``'s ``observability/redact.py`` (a self-contained module)."""
    source = subprocess.run(
        ["git", "show", f"{ref}:src/docmill/observability/redact.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"redact_{ref}")
    exec(compile(source, f"{ref}:redact.py", "exec"), module.__dict__)
    fn: Redact = module.redact
    return fn


def us_per_kb(fn: Redact, items: list[str]) -> float:
    for item in items:  # warm: imports, caches
        fn(item)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    kb = sum(len(item.encode()) for item in items) / 1024
    return best * 1e6 / kb


def quality(fn: Redact, docs: list[pii_set.PiiDoc], labelled_n: int, seed: int) -> dict[str, Any]:
    finder = spans_of(fn)
    score = pii_set.score(docs, finder)
    check = pii_set.labelled_false_positives(finder, labelled_n, seed)
    weakest = sorted(
        (score.masked_forms[key] / planted, f"{key[0]}: {key[1]}")
        for key, planted in score.planted_forms.items()
    )[:5]
    return {
        "recall": {k: round(score.recall(k), 4) for k in pii_set.PII_KINDS},
        "planted": dict(score.planted),
        "masked": dict(score.masked),
        "weakest_forms": [(form, round(r, 3)) for r, form in weakest],
        "kept": sum(score.kept.values()),
        "false_positives": dict(score.false_positives),
        "misses": score.misses[:10],
        "wrongly_masked": score.wrongly_masked[:10],
        "labelled_protected": dict(check.protected),
        "labelled_false_positives": dict(check.false_positives),
        "labelled_other_masked": len(check.other_findings),
    }


def measure(args: argparse.Namespace, _tmp: Path) -> dict[str, Any]:
    docs = pii_set.generate(args.docs, args.seed)
    rng = random.Random(args.seed)
    pages = [p for label in labels_for(60, rng) for p in make_document(label, rng).pages]
    texts = {
        "log lines": list(LOG_LINES) * 20,
        "labelled pages": pages,
        "PII set texts": [d.text for d in docs[:60]],
    }
    start = time.perf_counter()
    import phonenumbers  # noqa: F401  (its import is paid once, at the first phone run)

    import_ms = (time.perf_counter() - start) * 1e3
    redactors = {"now": redact}
    if args.baseline:
        redactors[args.baseline] = baseline_redact(args.baseline)
    fig: dict[str, Any] = {"docs": args.docs, "seed": args.seed, "phonenumbers_import_ms": import_ms}
    for name, fn in redactors.items():
        fig[name] = quality(fn, docs, args.labelled, args.seed)
        fig[name]["us_per_kb"] = {k: round(us_per_kb(fn, v), 1) for k, v in texts.items()}
    return fig


def report(fig: dict[str, Any]) -> str:
    names = [k for k in fig if isinstance(fig[k], dict) and "recall" in fig[k]]
    rows: list[tuple[str, str]] = []
    for kind in pii_set.PII_KINDS:
        cells = [f"{fig[n]['recall'][kind]:8.2%} ({fig[n]['masked'].get(kind, 0):,}/{fig[n]['planted'][kind]:,})" for n in names]
        rows.append((f"recall {kind}", "   ".join(cells)))
    rows.append(("kept items masked", "   ".join(f"{sum(fig[n]['false_positives'].values()):,} of {fig[n]['kept']:,} {fig[n]['false_positives'] or ''}" for n in names)))
    rows.append(("labelled: masked", "   ".join(f"{sum(fig[n]['labelled_false_positives'].values())} of {fig[n]['labelled_protected']}" for n in names)))
    rows.append(("labelled: other masks", "   ".join(f"{fig[n]['labelled_other_masked']:>8}" for n in names)))
    for text in fig[names[0]]["us_per_kb"]:
        rows.append((f"us/KB {text}", "   ".join(f"{fig[n]['us_per_kb'][text]:8.1f}" for n in names)))
    rows.append(("phonenumbers import", f"{fig['phonenumbers_import_ms']:.0f} ms, once"))
    head = f"PII masking: {fig['docs']} generated texts (seed {fig['seed']}); columns: {', '.join(names)}"
    weakest = "\n".join(f"    {form}: {r:.1%}" for form, r in fig[names[0]]["weakest_forms"])
    misses = "\n".join(f"    {m}" for m in fig[names[0]]["misses"] + fig[names[0]]["wrongly_masked"])
    return f"{head}\n{table(rows)}\n  weakest forms (now):\n{weakest}" + (f"\n  examples:\n{misses}" if misses else "")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1000, help="generated texts (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--labelled", type=int, default=300, help="labelled documents (default: %(default)s)")
    parser.add_argument("--baseline", metavar="REF", help="also measure the redactor of this commit")
    add_output_args(parser, "pii")
    return run_benchmark("pii", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
