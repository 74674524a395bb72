"""``bench/llm.py --provider-like``: the LLM stage against issue 15's provider, in real time.

The provider (``SimConfig.provider_like()``): 90 requests and 60,000 tokens per sliding
minute **per API key**, shared by both models and told to nobody (``llm.rpm = 0``);
latency log-normal with median 1.5 s and 5 % at 8-20 s; 3 % 500/502/503; 1 % of requests
hang until the client's timeout (``llm.timeout_s``, 60 s); 2 % malformed JSON answers;
OpenAI's 429 messages (``Limit 90, Used 90, Requested 1``, no model named). The work:
420 documents (``--docs`` 400 from ``testkit.labelled`` and ``--texts`` 20 text files)
through the real ``docmill run --workers 1`` with ``examples/llm/spec.toml`` (``sim-small``
classifies, ``sim-large`` extracts invoice and receipt fields, one key), pointed at the
simulator, with ``min_confidence = 1`` so that every document is classified by the LLM
(``--local-rules`` keeps the example's 0.8: then the rules decide about half alone). That
is about 420 classifications and 210 field requests, as in the issue's measurement.

Cases, each with its own simulator and run folder, all at once (they share nothing but
the machine), each with and without OpenAI's ``x-ratelimit-*`` headers:

- ``fresh``: a run on a quiet key;
- ``prefilled``: another client sends ``--prefill`` (90) requests with the same key over the
  ``--prefill-s`` (20) seconds just before the run starts, so the provider's minute is full
  of someone else's requests when it begins (a run started right after another);
- ``resume``: a run killed with SIGKILL (its whole process group) ``--kill-after`` (150) s
  after its first request and started again at once on the same folder: the provider's
  minute still holds the killed run's requests (and its hung ones until they are dropped).

``--bare`` adds the three cases against a provider that states nothing (no headers, no
figures in its 429s: the limit is learned from 429 counts alone).

``budget`` (only with ``--cases budget``): first a full run against a fast
provider with the same answers, 5xx and malformed share (no limits, no latency, nothing
hung) measures what the whole work costs; then a run against the provider-like one with
``llm.budget_usd`` = half that. Figures: spend ÷ budget (target 0.90-1.00, never more),
documents finished (done) ÷ all and those with fields ÷ the full run's (target >= 40 %),
and documents left classified without fields. ``budget/folder`` takes the folder as it is
(its files sorted: every invoice first, the documents whose fields cost most);
``budget/mixed`` lists the same files in a ``@list`` with the labels interleaved, as an
inbox holds them.

Every case also prints the ledger's spend ÷ what the simulator billed (its ``billed``
tokens per model at the spec's prices; not for ``prefilled``, whose other client is billed
too): after ``kill -9`` and resume only the answers of requests in flight at the kill may
be missing (target >= 0.99).

Figures, per case (for ``resume``, of the resumed run), from ``/_sim/stats`` read twice a
second; a run's minute 0 starts at its first request:

- sustained ÷ limit: requests the simulator admitted per minute from minute 1 until 98 %
  of the run's admitted requests were in, ÷ 90: while work was waiting. The last 2 % are
  the tail: a document whose request hung waits the 60 s timeout, then is sent again
  with nothing else left to send; the figure to the very last request is printed beside
  it; target >= 0.95 fresh, >= 0.90 prefilled / resumed;
- 429 share after the first minute: 429 answers ÷ chat requests;          target <= 2 %;
- documents lost: sources without exactly one record that is done, or failed with a
  reason;                                                                    target 0.

Real time, no ``time_scale``: every figure is in the seconds both the provider and the
limiter count in.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus import REPO, table, tool

HIDDEN_RPM = 90
TARGET_FRESH = 0.95
TARGET_PREFILLED = 0.90
TARGET_429 = 0.02
TARGET_BILLED = 0.99
TARGET_SPEND = (0.90, 1.00)
TARGET_FIELDS = 0.40
EXAMPLE = REPO / "examples" / "llm"


@dataclass(frozen=True)
class Case:
    start: str  # fresh | prefilled | resume | budget
    headers: bool
    figures: bool = True
    mixed: bool = False  # budget: the sources listed with their labels interleaved

    @property
    def name(self) -> str:
        if self.start == "budget":
            return "budget/mixed" if self.mixed else "budget/folder"
        said = "headers" if self.headers else "429-figures" if self.figures else "nothing-said"
        return f"{self.start}/{said}"

    @property
    def target(self) -> float:
        return TARGET_FRESH if self.start == "fresh" else TARGET_PREFILLED


Sample = tuple[float, int, int, int, int]
"""(time, chat requests, admitted, 429s, admitted requests in flight)."""


def make_corpus(src: Path, docs: int, texts: int, seed: int) -> list[Path]:
    """``docs`` labelled PDFs and ``texts`` text files (their pages joined); the sources."""
    import random

    from docmill.testkit.labelled import LABELS, generate, make_document

    generate(src, docs, seed)
    (src / "truth.jsonl").unlink()
    rng = random.Random(seed + 100)
    (src / "text").mkdir()
    for i in range(texts):
        doc = make_document(LABELS[i % len(LABELS)], rng)
        (src / "text" / f"note-{i:03d}.txt").write_text("\n\n".join(doc.pages), encoding="utf-8")
    return sorted(p for p in src.rglob("*") if p.suffix in (".pdf", ".txt"))


def write_spec(folder: Path, base_url: str, local_rules: bool) -> Path:
    """The example spec with its provider at the simulator (schemas copied beside it);
    without ``local_rules`` every document goes to the LLM (``min_confidence = 1``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for schema in EXAMPLE.glob("*.schema.json"):
        shutil.copy(schema, folder / schema.name)
    text = (EXAMPLE / "spec.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^base_url = ".*"', f'base_url = "{base_url}"', text, count=1)
    if not local_rules:
        text = re.sub(r"(?m)^min_confidence = [0-9.]+", "min_confidence = 1.0", text, count=1)
    path = folder / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def poll(handle: Any, stop: threading.Event, into: list[Sample]) -> None:
    while not stop.is_set():
        s = handle.stats()
        into.append((time.monotonic(), s["chat_requests"], s["admitted"], s["rate_limited"], s["in_flight"]))
        stop.wait(0.5)


def prefill(base_url: str, key: str, n: int, seconds: float) -> None:
    """Another client on the same key: ``n`` requests evenly over ``seconds``, both models."""
    import httpx

    async def main() -> None:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=5.0
        ) as http:

            async def one(i: int) -> None:
                await asyncio.sleep(i * seconds / n)
                body = {
                    "model": ("sim-small", "sim-large")[i % 2],
                    "messages": [{"role": "user", "content": f"another client's request {i}"}],
                }
                try:
                    await http.post("/chat/completions", json=body)
                except httpx.HTTPError:
                    pass  # a hung one: the provider counted it all the same

            await asyncio.gather(*(one(i) for i in range(n)))

    asyncio.run(main())


def interleaved(sources: list[Path]) -> list[Path]:
    """The sources with their folders (labels) taken in turn."""
    by_folder: dict[Path, list[Path]] = {}
    for path in sources:
        by_folder.setdefault(path.parent, []).append(path)
    columns = list(by_folder.values())
    return [p for row in itertools.zip_longest(*columns) for p in row if p is not None]


def docmill_argv(src: Path, out: Path, spec: Path, budget: float = 1000.0) -> list[str]:
    return [
        tool("docmill"), "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", f"llm.spec={spec}", "--set", f"llm.budget_usd={budget}",
    ]  # fmt: skip


def prices(spec: Path) -> dict[str, tuple[float, float]]:
    import tomllib

    table_ = tomllib.loads(spec.read_text(encoding="utf-8"))["prices"]
    return {model: (float(p["input"]), float(p["output"])) for model, p in table_.items()}


def billed_usd(stats: dict[str, Any], spec: Path) -> float:
    """What the simulator billed, at the spec's prices."""
    price = prices(spec)
    return sum(
        (c.get("prompt_tokens", 0) * price[m][0] + c.get("completion_tokens", 0) * price[m][1]) / 1e6
        for m, c in stats.get("by_model", {}).items()
    )


def ledger_spend(out: Path) -> dict[str, Any]:
    """The ledger's spend, documents by state, and those left classified without fields."""
    import sqlite3

    with sqlite3.connect(out / "docmill.db") as conn:
        spend = conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM documents").fetchone()[0]
        states = dict(conn.execute("SELECT state, COUNT(*) FROM documents GROUP BY state").fetchall())
        stranded = conn.execute(
            "SELECT COUNT(*) FROM documents d WHERE d.state = 'pending' AND EXISTS (SELECT 1 "
            "FROM llm_calls c WHERE c.doc_id = d.id AND c.role = 'classify' AND c.outcome = "
            "'valid') AND NOT EXISTS (SELECT 1 FROM llm_calls c WHERE c.doc_id = d.id AND "
            "c.role = 'extract')"
        ).fetchone()[0]
    return {"spend_usd": float(spend), "states": states, "stranded": int(stranded)}


def full_cost(args: argparse.Namespace, folder: Path, src: Path) -> dict[str, Any]:
    """What the whole work costs: one run against a fast provider with the provider-like
    answers, 5xx and malformed share (no limits, no latency, nothing hung)."""
    from docmill.testkit.llm_sim import SimConfig, serve_in_thread

    config = SimConfig.provider_like(
        rpm=0, tpm=0, latency_min_s=0.0, latency_max_s=0.02, latency_tail_rate=0.0,
        timeout_rate=0.0, seed=args.seed + 17,
    )  # fmt: skip
    env = {**os.environ, "DOCMILL_SIM_KEY": f"sk-bench-full-{folder.parent.name}"}
    with serve_in_thread(config) as sim:
        spec = write_spec(folder, sim.base_url, args.local_rules)
        done = subprocess.run(
            docmill_argv(src, folder / "out", spec), env=env, capture_output=True, text=True, check=False
        )
        billed = billed_usd(sim.stats(), spec)
    recs = records(folder / "out")
    return {
        "returncode": done.returncode,
        "cost_usd": ledger_spend(folder / "out")["spend_usd"],
        "billed_usd": billed,
        "with_fields": sum(1 for r in recs if r.get("status") == "done" and r.get("fields")),
    }


def records(out: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for part in sorted((out / "records").glob("part-*.jsonl")):
        with open(part, encoding="utf-8") as handle:
            found.extend(json.loads(line) for line in handle if line.strip())
    return found


def lost(sources: list[Path], out: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    """(sources without exactly one terminal record, record states, failure categories)."""
    expected = {str(p.resolve()) for p in sources}
    recs = records(out)
    seen = Counter(str(Path(r["source"]).resolve()) for r in recs)
    bad = {s for s, n in seen.items() if n != 1} | (expected - set(seen))
    failures: Counter[str] = Counter()
    for r in recs:
        state = r.get("status")
        if state not in ("done", "failed") or (state == "failed" and not r.get("error")):
            bad.add(str(Path(r["source"]).resolve()))
        if state == "failed":
            error = r.get("error") or {}
            failures[str(error.get("category") if isinstance(error, dict) else error)] += 1
    return len(bad), dict(Counter(str(r.get("status")) for r in recs)), dict(failures)


def at(samples: list[Sample], t: float, i: int) -> float:
    """Column ``i`` at time ``t``, linearly interpolated between samples."""
    for (t0, *a), (t1, *b) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return a[i - 1] + f * (b[i - 1] - a[i - 1])
    return float(samples[-1][i] if t > samples[-1][0] else samples[0][i])


def segment(samples: list[Sample], since: float, until: float) -> dict[str, Any]:
    """One docmill run's figures: its first request after ``since``, to its last admitted
    request before ``until``."""
    inside = [s for s in samples if since <= s[0] <= until]
    base_chat = at(samples, since, 1)
    grew = next((i for i, (_t, chat, *_) in enumerate(inside) if chat > base_chat), None)
    if grew is None:
        return {"error": "no request"}
    first = inside[max(0, grew - 1)][0]  # the last sample before its first request
    base_admitted = at(samples, since, 2)
    end_admitted = at(samples, until, 2)
    last = next(t for t, _c, a, *_ in reversed(inside) if a < end_admitted)
    backlog = base_admitted + 0.98 * (end_admitted - base_admitted)
    worked = next(t for t, _c, a, *_ in inside if a >= backlog)
    steady_from = first + 60.0
    if worked <= steady_from + 30.0:
        return {"error": "the run ended within its first 90 s: more documents"}

    def ratio(end: float) -> float:
        return (at(samples, end, 2) - at(samples, steady_from, 2)) / (end - steady_from) * 60.0

    span = worked - steady_from
    chats = at(samples, until, 1) - at(samples, steady_from, 1)
    limited = at(samples, until, 3) - at(samples, steady_from, 3)
    per_minute: list[dict[str, float]] = []
    start = first
    while start < last:
        stop = min(start + 60.0, last)
        flight = [s[4] for s in inside if start <= s[0] < stop] or [0]
        per_minute.append({
            "seconds": round(stop - start, 1),
            "admitted": round(at(samples, stop, 2) - at(samples, start, 2)),
            "rate_limited": round(at(samples, stop, 3) - at(samples, start, 3)),
            "in_flight_mean": round(sum(flight) / len(flight), 1),
        })  # fmt: skip
        start = stop
    return {
        "steady_s": round(span, 1),
        "sustained_rpm": round(ratio(worked), 2),
        "rate_ratio": round(ratio(worked) / HIDDEN_RPM, 4),
        "tail_s": round(last - worked, 1),
        "rate_ratio_to_last": round(ratio(last) / HIDDEN_RPM, 4),
        "share_429_after_1min": round(limited / max(1.0, chats), 4),
        "requests": round(at(samples, until, 1) - base_chat),
        "rate_limited": round(at(samples, until, 3) - at(samples, since, 3)),
        "first_minute_429": round(at(samples, steady_from, 3) - at(samples, since, 3)),
        "per_minute": per_minute,
    }


def run_case(case: Case, args: argparse.Namespace, work: Path, sources: list[Path], src: Path) -> dict[str, Any]:
    from docmill.testkit.llm_sim import SimConfig, serve_in_thread

    folder = work / case.name.replace("/", "-")
    key = f"sk-bench-{case.name.replace('/', '-')}"
    config = SimConfig.provider_like(
        ratelimit_headers=case.headers, limit_figures=case.figures, seed=args.seed + 17
    )
    samples: list[Sample] = []
    env = {**os.environ, "DOCMILL_SIM_KEY": key}
    out = folder / "out"
    marks: dict[str, float] = {}
    budget = 1000.0
    full: dict[str, Any] = {}
    if case.start == "budget":
        full = full_cost(args, folder / "full", src)
        budget = round(full["cost_usd"] / 2, 6)
    with serve_in_thread(config) as sim:
        spec = write_spec(folder, sim.base_url, args.local_rules)
        stop = threading.Event()
        poller = threading.Thread(target=poll, args=(sim, stop, samples), daemon=True)
        poller.start()
        if case.start == "prefilled":
            prefill(sim.base_url, key, args.prefill, args.prefill_s)
        marks["start"] = time.monotonic()
        argv = docmill_argv(src, out, spec, budget)
        if case.mixed:  # the same files, their labels interleaved, through a @list
            listing = folder / "sources.txt"
            listing.write_text("\n".join(str(p) for p in interleaved(sources)) + "\n", encoding="utf-8")
            argv[2] = f"@{listing}"
        if case.start == "resume":
            proc = subprocess.Popen(argv, env=env, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            while not samples or samples[-1][1] == 0:
                time.sleep(0.2)
            time.sleep(args.kill_after)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            marks["killed"] = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        marks["end"] = time.monotonic()
        time.sleep(1.0)
        stop.set()
        poller.join()
        final = sim.stats()
        billed = billed_usd(final, spec)
    since = marks.get("killed", marks["start"])
    figures = segment(samples, since, marks["end"])
    n_lost, states, failures = lost(sources, out)
    result: dict[str, Any] = {
        "case": case.name,
        "returncode": done.returncode,
        "stderr_tail": done.stderr[-1500:] if done.returncode else "",
        "documents": len(sources),
        "documents_lost": n_lost,
        "record_states": states,
        "failures": failures,
        "simulator": {k: final[k] for k in ("chat_requests", "admitted", "rate_limited", "server_errors", "timeouts", "invalid_json")},
        **figures,
    }
    spent = ledger_spend(out)
    if case.start != "prefilled":  # there the other client's requests are billed too
        result["ledger_usd"] = round(spent["spend_usd"], 6)
        result["billed_usd"] = round(billed, 6)
        result["ledger_per_billed"] = round(spent["spend_usd"] / billed, 4) if billed else None
    if case.start == "budget":
        recs = records(out)
        with_fields = sum(1 for r in recs if r.get("status") == "done" and r.get("fields"))
        result["budget"] = {
            "full_run": full,
            "budget_usd": budget,
            "spend_usd": round(spent["spend_usd"], 6),
            "spend_per_budget": round(spent["spend_usd"] / budget, 4),
            "finished": spent["states"].get("done", 0) + spent["states"].get("failed", 0),
            "finished_share": round(
                (spent["states"].get("done", 0) + spent["states"].get("failed", 0)) / len(sources), 4
            ),
            "with_fields": with_fields,
            "with_fields_share": round(with_fields / max(1, full["with_fields"]), 4),
            "pending": spent["states"].get("pending", 0),
            "stranded": spent["stranded"],
        }
    if "killed" in marks:
        result["before_kill"] = segment(samples, marks["start"], marks["killed"])
    return result


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    src = work / "sources"
    sources = make_corpus(src, args.docs, args.texts, args.seed)
    cases = [Case(start, headers) for start in ("fresh", "prefilled", "resume") for headers in (False, True)]
    if args.bare:
        cases += [Case(start, False, figures=False) for start in ("fresh", "prefilled", "resume")]
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        cases = [c for c in cases if any(c.name == w or c.name.startswith(w + "/") for w in wanted)]
        if "budget" in wanted or "budget/folder" in wanted:
            cases.append(Case("budget", False))
        if "budget" in wanted or "budget/mixed" in wanted:
            cases.append(Case("budget", False, mixed=True))
    with ThreadPoolExecutor(len(cases)) as pool:
        runs = list(pool.map(lambda c: run_case(c, args, work, sources, src), cases))
    return {
        "provider": "SimConfig.provider_like(): 90 RPM, 60,000 TPM per key; median 1.5 s, 5 % 8-20 s; 3 % 5xx, 1 % hung, 2 % malformed",
        "documents": len(sources),
        "prefill": [args.prefill, args.prefill_s],
        "kill_after_s": args.kill_after,
        "cases": runs,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def report(fig: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    for r in fig["cases"]:
        m = f"[{r['case']}]"
        start = r["case"].split("/")[0]
        target = TARGET_FRESH if start == "fresh" else TARGET_PREFILLED
        b = r.get("budget")
        if r["returncode"] != 0 and not (b and r["returncode"] == 3):  # 3: the budget is spent
            rows.append((f"{m} docmill exit", f"{r['returncode']}: {r['stderr_tail'][-300:]}"))
        if b:
            lo, hi = TARGET_SPEND
            rows += [
                (f"{m} spend ÷ budget", f"{b['spend_per_budget']:.3f}  ({b['spend_usd']:.5f} of "
                 f"{b['budget_usd']:.5f} USD, half the full run's {b['full_run']['cost_usd']:.5f}; "
                 f"target {lo:.2f}-{hi:.2f})"),
                (f"{m} documents finished", f"{b['finished_share']:.1%}  ({b['finished']} of "
                 f"{r['documents']}; {b['pending']} pending, {b['stranded']} of them classified "
                 "without fields)"),
                (f"{m} with fields ÷ full run's", f"{b['with_fields_share']:.1%}  ({b['with_fields']} "
                 f"of {b['full_run']['with_fields']}; target >= {TARGET_FIELDS:.0%})"),
            ]  # fmt: skip
        if r.get("ledger_per_billed") is not None:
            rows.append((f"{m} ledger spend ÷ billed", f"{r['ledger_per_billed']:.4f}  "
                         f"({r['ledger_usd']:.5f} of {r['billed_usd']:.5f} USD; target >= "
                         f"{TARGET_BILLED})"))  # fmt: skip
        if b:  # the rate figures of a run the budget stops are not the limiter's
            continue
        if "error" in r:
            rows.append((f"{m} error", r["error"]))
            continue
        rows += [
            (f"{m} sustained ÷ limit", f"{r['rate_ratio']:.3f}  ({r['sustained_rpm']:.1f}/min over "
             f"{r['steady_s']:.0f} s; target >= {target}; to the last request "
             f"{r['rate_ratio_to_last']:.3f}, {r['tail_s']:.0f} s of tail)"),
            (f"{m} 429 share after 1 min", f"{r['share_429_after_1min']:.2%}  (target <= "
             f"{TARGET_429:.0%}; {r['rate_limited']} 429s in all, {r['first_minute_429']} in minute 0)"),
            (f"{m} documents lost", f"{r['documents_lost']} of {r['documents']}  (target 0; "
             f"records {r['record_states']}, failed {r['failures']})"),
            (f"{m} per minute: admitted", " ".join(
                f"{p['admitted']}" + ("" if p["seconds"] >= 59.5 else f"/{p['seconds']:.0f}s")
                for p in r["per_minute"])),
            (f"{m} per minute: 429s", " ".join(f"{p['rate_limited']}" for p in r["per_minute"])),
        ]  # fmt: skip
        before = r.get("before_kill")
        if before and "error" not in before:
            rows.append((f"{m} before the kill", f"{before['rate_ratio']:.3f} ÷ limit; admitted "
                         + " ".join(str(p["admitted"]) for p in before["per_minute"])))  # fmt: skip
    head = (
        f"LLM stage against issue 15's provider ({fig['provider']}), real time; "
        f"{fig['documents']} documents; prefill {fig['prefill'][0]} requests in "
        f"{fig['prefill'][1]:g} s; kill -9 after {fig['kill_after_s']:g} s; {fig['wall_s']:.0f} s in all"
    )
    return head + "\n" + table(rows)


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--provider-like (issue 15)")
    g.add_argument("--provider-like", action="store_true",
                   help="run the provider-like cases instead (~10 min, real time)")  # fmt: skip
    g.add_argument("--docs", type=int, default=400, help="labelled PDFs (default: %(default)s)")
    g.add_argument("--texts", type=int, default=20, help="text files (default: %(default)s)")
    g.add_argument("--prefill", type=int, default=90,
                   help="another client's requests before a prefilled run (default: %(default)s)")  # fmt: skip
    g.add_argument("--prefill-s", type=float, default=20.0,
                   help="over this many seconds just before it (default: %(default)s)")  # fmt: skip
    g.add_argument("--kill-after", type=float, default=150.0,
                   help="seconds after its first request the resumed case is killed (default: %(default)s)")  # fmt: skip
    g.add_argument("--local-rules", action="store_true",
                   help="keep the example's min_confidence 0.8 (the rules decide about half)")  # fmt: skip
    g.add_argument("--cases", default="",
                   help="only these, comma-separated: fresh, prefilled/headers, ..., budget "
                        "(default: all but budget)")  # fmt: skip
    g.add_argument("--bare", action="store_true",
                   help="also against a provider that states nothing (no headers, no figures)")  # fmt: skip
