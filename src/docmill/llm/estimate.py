"""What the LLM stage would cost, predicted from a sample before anything is spent
(``docmill estimate``). Nothing is sent to any provider.

For a sample of the sources (spread evenly over the enumeration, deterministic), the text
is extracted in-process, cut as the stage cuts it (:func:`~docmill.llm.stage.text_to_send`)
and masked when ``llm.redact_pii`` is on; the local classifier says which documents it
decides alone. Each remaining document costs a classification call; a document whose
label (the local decision, else the classifier's best candidate) has a field schema also
costs an extraction call. The prompts are the stage's own
(:func:`~docmill.llm.stage.classify_messages`, :func:`~docmill.llm.stage.extract_messages`)
and their tokens are counted with the stage's estimator over what a provider bills: the
messages' text and the JSON schema.

Output tokens per call, three ways (each capped by ``llm.max_output_tokens``):

* **low**: the shortest valid answer (the shortest label with confidence ``0``; every
  field ``null``);
* **expected**: a typical answer (the candidate label with confidence ``0.9``; the null
  answer plus :data:`FIELD_VALUE_TOKENS` per schema property);
* **high**: ``llm.max_output_tokens``, the most the stage asks for.

Repairs: a field answer that does not validate is asked once more (the same prompt and
the problem). The expected and high costs count a share of one more extraction call per
document with fields: :data:`REPAIR_SHARE` (answers a provider sends malformed) for a
document the local classifier decided, plus :data:`REPAIR_SHARE_UNSURE` for one the LLM
labels (a document it labels ``invoice`` that is no invoice lacks the fields, and its
answer fails the schema). The low cost counts none.

The constants are calibrated on the labelled corpus (``docmill.testkit.labelled``, seed 1)
with the example spec against what the simulator bills (``bench/llm_estimate.py``; a
held-out seed is the test, ``tests/test_llm_estimate.py``).

Totals over all documents: ``expected`` is the number of documents times the sample's
mean cost per document; ``low`` / ``high`` are the ends of a percentile bootstrap of that
mean (:func:`~docmill.llm.cost.bootstrap_mean`) with low and high output tokens.
``input_tokens``, ``output_tokens``, ``classify_calls`` and ``extract_calls`` count first
answers; ``repair_calls`` the expected repairs. Not counted: answers already cached in
an output folder, duplicate content (processed once by a run), and the difference an LLM
makes by picking a label other than the local best candidate (on the labelled corpus
those choices cancel out: as many documents reach fields as the candidates say).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from statistics import fmean
from typing import Any, Final

from docmill.llm.classify import Guess, LocalClassifier
from docmill.llm.cost import PriceTable, bootstrap_mean
from docmill.llm.spec import Label, LlmSpec
from docmill.llm.stage import (
    billed_tokens,
    classify_messages,
    classify_schema,
    estimate_tokens,
    extract_messages,
    text_to_send,
)
from docmill.model import DocState
from docmill.processors import ExtractOptions, Task, process_task
from docmill.settings import LlmSettings, SourceSettings
from docmill.sources import iter_sources
from docmill.sources.discover import check_sources

DEFAULT_SAMPLE: Final = 50
FIELD_VALUE_TOKENS: Final = 1.5
"""A typical field value's tokens beyond ``null`` (dates, numbers, codes, short names)."""
REPAIR_SHARE: Final = 0.02
"""Field answers a provider sends malformed: one repair request each."""
REPAIR_SHARE_UNSURE: Final = 0.35
"""More field answers that fail their schema when the LLM, not the local classifier,
picked the label (the document may not hold the fields)."""
REPAIR_PROBLEM: Final = "currency: '' does not match '^[A-Z]{3}$'"
"""A typical problem a repair request names (its tokens are part of the request)."""
CONFIDENCE: Final = 0.90  # central interval of the bootstrap


@dataclass(frozen=True)
class Tokens:
    """Tokens of one call: input, and output low / expected / high."""

    input: int
    output_low: int
    output_expected: int
    output_high: int


@dataclass(frozen=True)
class DocEstimate:
    """One sampled document: the calls it would cost and their price in USD."""

    path: str
    status: str  # llm (sent to the stage) | failed | skipped (extraction did not give a document)
    decided_locally: bool = False
    label: str | None = None  # the local decision, else the best candidate
    classify: Tokens | None = None
    extract: Tokens | None = None
    repair: Tokens | None = None  # a repair request after an invalid field answer
    repair_share: float = 0.0  # expected repairs of this document's field answer
    cost_low: float = 0.0
    cost_expected: float = 0.0
    cost_high: float = 0.0


@dataclass(frozen=True)
class RunEstimate:
    documents: int
    sampled: int
    sent_to_llm: int  # of the sample: extracted, so the stage would see them
    decided_locally: int  # of those: the local classifier decides
    classify_calls: float  # projected over all documents
    extract_calls: float
    repair_calls: float  # expected repairs of field answers (not in the calls or tokens)
    input_tokens: float  # projected, expected
    output_tokens: float
    cost_low: float
    cost_expected: float
    cost_high: float
    budget_usd: float
    models: dict[str, str]
    samples: list[DocEstimate] = field(default_factory=list)

    @property
    def decided_share(self) -> float:
        return self.decided_locally / self.sent_to_llm if self.sent_to_llm else 0.0

    @property
    def budget_suffices(self) -> bool:
        """The budget covers even the high end."""
        return self.cost_high <= self.budget_usd

    def to_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "samples"}
        for key in ("classify_calls", "extract_calls", "input_tokens", "output_tokens"):
            data[key] = round(data[key])
        data["repair_calls"] = round(data["repair_calls"], 1)
        for key in ("cost_low", "cost_expected", "cost_high"):
            data[key] = round(data[key], 6)
        data["decided_share"] = round(self.decided_share, 4)
        data["budget_suffices"] = self.budget_suffices
        data["budget_suffices_expected"] = self.cost_expected <= self.budget_usd
        if with_samples:
            data["samples"] = [asdict(s) for s in self.samples]
        return data


# --- pure parts -------------------------------------------------------------------------


def spread(count: int, n: int, seed: int = 0) -> list[int]:
    """``n`` indexes spread evenly over ``range(count)`` (all of them when ``n >= count``):
    one from each of ``n`` equal strata, at a seeded position inside it (deterministic,
    and not fooled by a folder whose files repeat with the sampling period)."""
    if n <= 0 or count <= 0:
        return []
    if n >= count:
        return list(range(count))
    rng = random.Random(seed)
    width = count / n
    return [min(count - 1, math.floor((k + rng.random()) * width)) for k in range(n)]


def _capped(tokens: int, cap: int) -> int:
    return min(tokens, cap) if cap > 0 else tokens


def classify_tokens(spec: LlmSpec, text: str, max_output: int, candidate: str | None = None) -> Tokens:
    """A classification call's tokens; the expected answer names ``candidate`` (the local
    best candidate; None: the shortest label, the fallback an LLM picks when none fits)."""
    names = spec.label_names
    schema = classify_schema(names)
    shortest = min(names, key=len)
    low = estimate_tokens(json.dumps({"label": shortest, "confidence": 0}))
    typical = estimate_tokens(json.dumps({"label": candidate or shortest, "confidence": 0.9}))
    return Tokens(
        billed_tokens(classify_messages(spec, text), schema),
        _capped(low, max_output),
        _capped(typical, max_output),
        max_output if max_output > 0 else typical,
    )


def extract_tokens(label: Label, text: str, max_output: int, problem: str | None = None) -> Tokens:
    """An extraction call's tokens (``problem``: a repair request naming it)."""
    assert label.schema is not None
    props = label.schema.get("properties") or {}
    low = estimate_tokens(json.dumps({name: None for name in props}))
    typical = low + round(FIELD_VALUE_TOKENS * len(props))
    return Tokens(
        billed_tokens(extract_messages(label, text, problem), dict(label.schema)),
        _capped(low, max_output),
        _capped(typical, max_output),
        max_output if max_output > 0 else typical,
    )


def document_estimate(
    spec: LlmSpec, prices: PriceTable, path: str, text: str, guess: Guess, max_output: int
) -> DocEstimate:
    """The calls the stage would make for one document, and their cost."""
    label_name = guess.label if guess.decided else guess.best
    classify = None if guess.decided else classify_tokens(spec, text, max_output, label_name)
    label = spec.label(label_name or "")
    extract = repair = None
    share = 0.0
    if label is not None and label.schema is not None:
        extract = extract_tokens(label, text, max_output)
        repair = extract_tokens(label, text, max_output, REPAIR_PROBLEM)
        share = REPAIR_SHARE + (0.0 if guess.decided else REPAIR_SHARE_UNSURE)
    calls = (
        (classify, spec.provider.model, 1.0, True),
        (extract, spec.extract_provider.model, 1.0, True),
        (repair, spec.extract_provider.model, share, False),
    )
    costs = [0.0, 0.0, 0.0]
    for tokens, model, weight, in_low in calls:
        if tokens is None:
            continue
        outs = (tokens.output_low, tokens.output_expected, tokens.output_high)
        for i, out in enumerate(outs):
            if i > 0 or in_low:
                costs[i] += weight * prices.cost(model, tokens.input, out)
    return DocEstimate(
        path, "llm", guess.decided, label_name, classify, extract, repair, share,
        costs[0], costs[1], costs[2],
    )


def summarize(
    samples: list[DocEstimate], documents: int, budget_usd: float, spec: LlmSpec, *, seed: int = 0
) -> RunEstimate:
    """Totals over ``documents`` from the sampled documents' estimates."""
    sent = [s for s in samples if s.status == "llm"]
    k = len(samples)
    scale = documents / k if k else 0.0

    def total(values: list[float]) -> float:
        return sum(values) * scale

    if k:
        low, _, _ = bootstrap_mean([s.cost_low for s in samples], confidence=CONFIDENCE, seed=seed)
        expected = fmean([s.cost_expected for s in samples])
        _, _, high = bootstrap_mean([s.cost_high for s in samples], confidence=CONFIDENCE, seed=seed)
        mean_low = fmean([s.cost_low for s in samples])
        mean_high = fmean([s.cost_high for s in samples])
        cost_low = documents * min(low, mean_low)
        cost_expected = documents * expected
        cost_high = documents * max(high, mean_high)
    else:
        cost_low = cost_expected = cost_high = 0.0
    calls = [c for s in sent for c in (s.classify, s.extract) if c is not None]
    return RunEstimate(
        documents=documents,
        sampled=k,
        sent_to_llm=len(sent),
        decided_locally=sum(s.decided_locally for s in sent),
        classify_calls=total([1.0 for s in sent if s.classify is not None]),
        extract_calls=total([1.0 for s in sent if s.extract is not None]),
        repair_calls=total([s.repair_share for s in sent]),
        input_tokens=total([float(c.input) for c in calls]),
        output_tokens=total([float(c.output_expected) for c in calls]),
        cost_low=cost_low,
        cost_expected=cost_expected,
        cost_high=cost_high,
        budget_usd=budget_usd,
        models={"classify": spec.provider.model, "extract": spec.extract_provider.model},
        samples=samples,
    )


# --- with I/O ---------------------------------------------------------------------------


def sample_paths(
    sources: Sequence[str], options: SourceSettings, n: int, seed: int = 0
) -> tuple[int, list[str]]:
    """(how many files the sources name, ``n`` of them spread evenly): two lazy passes.
    Raises :class:`~docmill.sources.SourceError` for a source that does not exist."""
    check_sources(sources)
    count = sum(1 for _ in iter_sources(sources, options))
    wanted = spread(count, n, seed)
    picked: list[str] = []
    if wanted:
        targets = iter(wanted)
        nxt = next(targets, None)
        for i, found in enumerate(iter_sources(sources, options)):
            if i == nxt:
                picked.append(found.source)
                nxt = next(targets, None)
                if nxt is None:
                    break
    return count, picked


Extract = Callable[[str, ExtractOptions, int], tuple[str, list[str]]]
"""``(path, options, max_file_bytes) -> (status, page texts)``: how a sampled document is
read (the CLI: in-process; the service: in its supervised worker pool)."""


def extract_pages(path: str, options: ExtractOptions, max_file_bytes: int) -> tuple[str, list[str]]:
    """(status, page texts) of one document, extracted in-process."""
    outcome = process_task(Task(0, 0, path, None, max_file_bytes, options)).opened()
    if outcome.status != DocState.DONE:
        return str(outcome.status.value), []
    return "llm", list(outcome.text)


def estimate_run(
    sources: Sequence[str],
    spec: LlmSpec,
    llm: LlmSettings,
    source_options: SourceSettings,
    extract_options: ExtractOptions,
    *,
    sample: int = DEFAULT_SAMPLE,
    max_file_bytes: int = 2048 << 20,
    on_file: Callable[[str], None] | None = None,
    seed: int = 0,
    extract: Extract = extract_pages,
) -> RunEstimate:
    """Predict the LLM stage's calls, tokens and cost for ``sources``; sends nothing
    (``extract`` reads a sampled document: in-process unless told otherwise)."""
    documents, paths = sample_paths(sources, source_options, sample, seed)
    max_pages = llm.max_pages
    if extract_options.max_pages:
        max_pages = min(max_pages, extract_options.max_pages) if max_pages else extract_options.max_pages
    options = replace(extract_options, max_pages=max_pages)
    classifier = LocalClassifier.from_spec(spec)
    prices = PriceTable(spec.prices)
    samples = list(
        _estimates(paths, spec, llm, options, classifier, prices, max_file_bytes, on_file, extract)
    )
    return summarize(samples, documents, llm.budget_usd, spec, seed=seed)


def _estimates(
    paths: list[str],
    spec: LlmSpec,
    llm: LlmSettings,
    options: ExtractOptions,
    classifier: LocalClassifier,
    prices: PriceTable,
    max_file_bytes: int,
    on_file: Callable[[str], None] | None,
    extract: Extract = extract_pages,
) -> Iterator[DocEstimate]:
    for path in paths:
        if on_file:
            on_file(path)
        status, pages = extract(path, options, max_file_bytes)
        if status != "llm":
            yield DocEstimate(path, status)
            continue
        text = text_to_send(pages, llm.max_pages, llm.max_chars)
        guess = classifier.classify(text)
        if llm.redact_pii:
            from docmill.llm.pii import mask_pii

            text = mask_pii(text)
        yield document_estimate(spec, prices, path, text, guess, llm.max_output_tokens)
