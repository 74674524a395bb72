"""The LLM stage: classify (cheapest first) and extract fields, within limits and a budget.

An :class:`LlmStage` runs its own asyncio loop on one thread of the driver. The driver
hands it documents whose text is extracted (:meth:`LlmStage.submit`, thread-safe) and
collects what it decided (:meth:`LlmStage.results`). For each document:

1. the local classifier's guess, when confident, decides the label (no call);
2. otherwise the cheap model is asked for the label (a JSON-schema answer);
3. for a label with a field schema, the extraction model is asked for the fields; the
   answer is validated against the schema, one repair request follows an invalid one,
   then the document fails with ``invalid_output``.

A document is admitted only when the expected cost of its requests (learned from the
answers so far per role and model, the spec's typical answer before any) fits in the
budget beside what the documents admitted before it still expect to spend
(:meth:`~docmill.llm.cost.Budget.pledge`): a document the budget cannot finish is not
classified, and one that is classified keeps what its fields need. Every request goes
through the answer cache, then its key's :class:`~docmill.llm.limits.KeyLimiter` (one per endpoint
and API key, :func:`limit_key`, shared by both roles and models: rate limits where the
provider counts them, per-model concurrency, Retry-After, breaker). A request waits in
its role's lane (``classify``, ``extract``) until the key's
:class:`~docmill.llm.dispatch.KeyDispatcher` (one task per key) hands it a permit; the
lanes share the key in proportion to the requests waiting in each; then, as it is sent, the
budget's hard reservation: the most the request can cost (its input with a margin for the
provider's tokenizer, its ``max_tokens``) must fit beside the reservations of the
requests in flight, so the spend never passes the budget. When money is short a request
asks for fewer output tokens (never fewer than twice the longest answer of its role
seen), and a request that does not fit waits for those in flight. 429s, 5xx and timeouts
are retried with backoff for as long as the stage runs: a provider outage delays
documents, it never fails them. Each billed answer is handed to ``on_billed`` (the
ledger commits it) before the stage uses it. A document that does not fit when nothing
else is admitted, or whose request cannot fit with nothing in flight, comes back
``deferred`` (pending for a later run) and the stage counts the budget as spent
(:attr:`LlmStage.exhausted`: the run claims nothing more); documents already waiting
may still go when they fit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from docmill.llm.cache import AnswerCache, cache_key
from docmill.llm.client import (
    ChatResult,
    ProviderClient,
    ProviderConfig,
    ResultKind,
    resolve_api_key,
)
from docmill.llm.cost import Budget, Pledge, PriceTable, Reservation, TokenStats
from docmill.llm.dispatch import KeyDispatcher
from docmill.llm.limits import KeyLimiter, LimiterConfig, ModelView
from docmill.llm.spec import Label, LlmSpec, ProviderSpec
from docmill.llm.watch import ThrottleLog
from docmill.model.llm import LlmAttempt

CLASSIFY_SCHEMA_NAME = "classification"
EXTRACT_SCHEMA_NAME = "fields"
CLASSIFY: Final = "classify"  # the lanes (roles) requests wait in at their key's limiter
EXTRACT: Final = "extract"
MIN_CONCURRENCY: Final = 4
"""No model's concurrency is cut below this (or below what its rate needs in flight)."""


def estimate_tokens(text: str) -> int:
    """About four characters a token (the providers' rule of thumb for English)."""
    return (len(text) + 3) // 4


def text_to_send(pages: Sequence[str], max_pages: int, max_chars: int) -> str:
    """A document's text as the stage sees it: the first ``max_pages`` pages (0: all)
    joined by a blank line, cut to ``max_chars`` (settings ``llm.max_pages`` /
    ``llm.max_chars``). PII masking, when asked, comes after the local classifier."""
    if max_pages:
        pages = pages[:max_pages]
    return "\n\n".join(pages)[:max_chars]


@dataclass(frozen=True)
class LlmJob:
    doc_id: int
    sha256: str
    text: str  # what may be sent: already cut to size and masked
    guess_label: str | None = None  # the local classifier's decision, if confident
    guess_confidence: float = 0.0
    guess_by: str | None = None  # rules | model
    images: tuple[str, ...] = ()  # page images as data URLs (llm.input = "images")


@dataclass
class LlmResult:
    doc_id: int
    status: str  # done | failed | deferred (not finished: back to pending)
    label: str | None = None
    confidence: float | None = None
    decided_by: str | None = None  # rules | model | llm
    fields: dict[str, Any] | None = None
    error: str | None = None  # category:message for a failure
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0  # requests not billed (429, 5xx, timeouts) and sent again
    attempts: list[dict[str, Any]] = field(default_factory=list)  # one per billed answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "decided_by": self.decided_by,
            "calls": self.calls,
            "cached": self.cached,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "attempts": self.attempts,
        }




OnBilled = Callable[[int, LlmAttempt], None]
"""Called with (document id, attempt) for each billed answer before the stage uses it."""


class BudgetExhausted(Exception):
    """The budget refused a request: stop sending."""


class InvalidOutput(Exception):
    """The model's answer does not match the schema, even after one repair."""


class ClientFailure(Exception):
    """The provider refused the request itself (a 4xx other than 429)."""


@dataclass(frozen=True)
class StageOptions:
    budget_usd: float
    spent_before_usd: float = 0.0  # spent in earlier runs of the same output folder
    max_output_tokens: int = 512
    timeout_s: float = 60.0
    rpm: int = 0  # the key's known limits (llm.rpm / llm.tpm; 0: learned)
    tpm: int = 0
    limit_scope: str = "key"  # key: limits shared by all models on a key | model: per model
    max_concurrency: int = 32
    cache_path: str | None = None  # None: no cache
    time_scale: float = 1.0  # real seconds per second of the limiters' clock: tests and
    # benches against a simulator with the same time_scale (its minute lasts 60 x this)
    log_interval_s: float = 30.0  # at most one throttle line per kind this often (llm/watch.py)


def classify_schema(labels: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": labels},
            "confidence": {"type": "number"},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }


IMAGE_TOKENS = 1105  # what a provider bills for one page image (OpenAI, high detail, ~A4)


def _user(text: str, images: Sequence[str]) -> Any:
    """A user message's content: the text, then the images (data URLs) if any."""
    if not images:
        return text
    return [
        {"type": "text", "text": text},
        *({"type": "image_url", "image_url": {"url": url}} for url in images),
    ]


def billed_tokens(messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any]) -> int:
    """Input tokens of a request as a provider bills them: the messages' text, the JSON
    schema and ``IMAGE_TOKENS`` per image (no JSON envelope)."""
    texts: list[str] = []
    images = 0
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                images += 1
    return estimate_tokens("\n".join(texts) + json.dumps(schema, sort_keys=True)) + images * IMAGE_TOKENS


def _repair(messages: list[dict[str, Any]], problem: str | None) -> list[dict[str, Any]]:
    if problem:
        messages.append(
            {"role": "user", "content": f"Your previous answer was invalid: {problem}. Answer again."}
        )
    return messages


def classify_messages(
    spec: LlmSpec, text: str, images: Sequence[str] = (), problem: str | None = None
) -> list[dict[str, Any]]:
    lines = [f"- {lb.name}: {', '.join(lb.keywords)}" for lb in spec.labels]
    described = "\n".join(f"{lb.name}: {lb.description}" for lb in spec.labels if lb.description)
    system = (
        "You classify documents. Answer with the one label that fits best and your "
        "confidence between 0 and 1."
    )
    user = f"Labels:\n{chr(10).join(lines)}\n\n{described}\n\n<document>\n{text}\n</document>"
    return _repair(
        [{"role": "system", "content": system}, {"role": "user", "content": _user(user, images)}],
        problem,
    )


def label_problem(labels: Sequence[str], answer: Any) -> str | None:
    """Why a classification answer is not usable (None: it is)."""
    label = answer.get("label") if isinstance(answer, dict) else None
    if label not in labels:
        return f"label {label!r} is not one of {list(labels)}"[:300]
    return None


def extract_messages(
    label: Label, text: str, problem: str | None = None, images: Sequence[str] = ()
) -> list[dict[str, Any]]:
    system = (
        f"You extract fields from a document of type {label.name}. Answer with JSON that "
        "matches the schema; use null for a field the document does not give."
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": _user(f"<document>\n{text}\n</document>", images)},
    ]
    return _repair(messages, problem)


def schema_problem(schema: Mapping[str, Any], answer: Any) -> str | None:
    """Why ``answer`` does not validate against ``schema`` (None: it does)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"[:300]


def _endpoint(base_url: str) -> str:
    """A base URL compared without case in scheme and host and without a trailing slash."""
    scheme, sep, rest = base_url.strip().partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}".rstrip("/")


def limit_key(provider: ProviderSpec, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The rate-limit budget a provider entry draws on: (endpoint, API key fingerprint).

    Providers count limits per API key or organisation, shared by every model on it, so
    both roles share one :class:`KeyLimiter` whenever they use the same key at the same
    endpoint, whatever their models (the limiter narrows to a model only when the
    provider says its limits are per model). The key is told apart by a short sha256 of
    its value (never the key itself; "" without a key), so two variables holding the same
    key share. The endpoint is compared without case in scheme and host and without a
    trailing slash.
    """
    key = resolve_api_key(provider.name, provider.api_key, env)
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""
    return _endpoint(provider.base_url), fingerprint


@dataclass
class _Route:
    """How one role reaches its model: its client, and the key's permits it waits for."""

    client: ProviderClient
    model: str
    lane: str
    dispatch: KeyDispatcher


class LlmStage:
    """The stage's thread and loop. Construct, :meth:`start`, submit, poll, :meth:`close`."""

    def __init__(
        self,
        spec: LlmSpec,
        options: StageOptions,
        *,
        seed: int = 0,
        on_billed: OnBilled | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.prices = PriceTable(spec.prices)
        remaining = max(0.0, options.budget_usd - options.spent_before_usd)
        self.budget = Budget(remaining)
        self.tokens = TokenStats()  # what answers cost so far, per role and model
        self.exhausted = False
        self._on_billed = on_billed
        self._budget_changed: asyncio.Event | None = None
        self._random = random.Random(seed)
        self._results: deque[LlmResult] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="docmill-llm", daemon=True)
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatchers: dict[tuple[str, str], KeyDispatcher] = {}  # by limit_key
        self._routes: dict[str, _Route] = {}  # by lane
        self._cache: AnswerCache | None = None
        self._startup_error: BaseException | None = None
        self.sent = 0  # requests sent to providers (not cached)

    # --- thread side ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open())
        except BaseException as exc:  # a bad provider config: reported by start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _open(self) -> None:
        self._stopping = asyncio.Event()
        self._budget_changed = asyncio.Event()
        if self.options.cache_path:
            self._cache = AnswerCache(self.options.cache_path)
        self._route(CLASSIFY, self.spec.provider)
        self._route(EXTRACT, self.spec.extract_provider)

    def limiter(self, provider: ProviderSpec) -> KeyLimiter | None:
        """The limiter ``provider``'s key draws on (None before :meth:`start`), to look at:
        it belongs to the stage's loop and is not thread-safe."""
        dispatcher = self._dispatchers.get(limit_key(provider))
        return dispatcher.limiter if dispatcher is not None else None

    def limit_views(self) -> list[ModelView]:
        """Each model's limits, requests in flight and breaker, as its key's dispatcher
        last published them (once a second; any thread may ask)."""
        return [view for d in list(self._dispatchers.values()) for view in d.views]

    def _route(self, lane: str, provider: ProviderSpec) -> _Route:
        route = self._routes.get(lane)
        if route is not None:
            return route
        o = self.options
        key = limit_key(provider)
        dispatcher = self._dispatchers.get(key)
        if dispatcher is None:
            config = LimiterConfig(
                initial_concurrency=min(LimiterConfig.initial_concurrency, o.max_concurrency),
                min_concurrency=min(MIN_CONCURRENCY, o.max_concurrency),
                max_concurrency=o.max_concurrency,
                rpm=float(o.rpm),
                tpm=float(o.tpm),
                model_scope=o.limit_scope == "model",
                learn_rpm=True,
            )
            now = time.monotonic() / o.time_scale  # the limiter's clock (KeyDispatcher.now)
            limiter = KeyLimiter(config, now=now, random=self._random.random)
            watch = ThrottleLog(o.log_interval_s)
            dispatcher = KeyDispatcher(limiter, time_scale=o.time_scale, watch=watch)
            dispatcher.start()
            self._dispatchers[key] = dispatcher
        client = ProviderClient(
            ProviderConfig(
                name=provider.name,
                base_url=provider.base_url,
                model=provider.model,
                api_key=provider.api_key,
                timeout_s=o.timeout_s,
                max_connections=max(o.max_concurrency, 4),
            )
        )
        route = self._routes[lane] = _Route(client, provider.model, lane, dispatcher)
        return route

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for dispatcher in self._dispatchers.values():
            await dispatcher.close()
        for route in self._routes.values():
            await route.client.aclose()
        if self._cache is not None:
            self._cache.close()

    def submit(self, job: LlmJob) -> None:
        """Hand a document to the stage (any thread)."""
        with self._lock:
            self._pending += 1
        self._loop.call_soon_threadsafe(self._spawn, job)

    def results(self) -> list[LlmResult]:
        """What finished since the last call (any thread)."""
        out: list[LlmResult] = []
        with self._lock:
            while self._results:
                out.append(self._results.popleft())
            self._pending -= len(out)
        return out

    @property
    def pending(self) -> int:
        """Documents submitted and not yet collected."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        """Cancel what is in flight (those documents stay pending) and stop the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    @property
    def spent_usd(self) -> float:
        return self.budget.spent_usd

    # --- loop side ------------------------------------------------------------------

    def _spawn(self, job: LlmJob) -> None:
        task = self._loop.create_task(self._run_job(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, result: LlmResult) -> None:
        with self._lock:
            self._results.append(result)

    # --- the budget ---------------------------------------------------------------

    def _budget_moved(self) -> None:
        """Wake what waits for money: spend settled, a reservation or pledge released."""
        assert self._budget_changed is not None
        self._budget_changed.set()
        self._budget_changed = asyncio.Event()

    async def _budget_wait(self) -> None:
        assert self._budget_changed is not None
        await self._budget_changed.wait()

    def _prior_out(self, lane: str, label: Label | None = None) -> int:
        """Output tokens of a typical answer before any is seen (``docmill estimate``'s)."""
        from docmill.llm.estimate import FIELD_VALUE_TOKENS

        if lane == CLASSIFY:
            longest = max(self.spec.label_names, key=len)
            return estimate_tokens(json.dumps({"label": longest, "confidence": 0.95}))
        props = (label.schema or {}).get("properties") or {} if label is not None else {}
        return estimate_tokens(json.dumps({name: None for name in props})) + math.ceil(
            FIELD_VALUE_TOKENS * len(props)
        )

    def _expected(self, lane: str, est_in: int, prior_out: int) -> float:
        model = self._routes[lane].model
        tokens_in, tokens_out = self.tokens.expected(lane, model, est_in, prior_out)
        return self.prices.cost(model, tokens_in, min(tokens_out, self.options.max_output_tokens))

    def _spread(self, lane: str, est_in: int, prior_out: int) -> float:
        """The most a request may cost when money is short, above its expected cost."""
        model = self._routes[lane].model
        need = min(self.tokens.output_need(lane, model, prior_out), self.options.max_output_tokens)
        ceiling_in = self.tokens.input_ceiling(lane, model, est_in)
        return max(0.0, self.prices.cost(model, ceiling_in, need) - self._expected(
            lane, est_in, prior_out
        ))

    def _fields_plan(self, job: LlmJob, label: Label | None) -> tuple[float, float]:
        """(expected cost of the document's fields request, margin for its spread): for
        ``label``, the local guess's, or before classification the costliest label with a
        schema (any may be the one)."""
        if label is None and job.guess_label is None:
            candidates = [lb for lb in self.spec.labels if lb.schema is not None]
        else:
            chosen = label if label is not None else self.spec.label(job.guess_label or "")
            candidates = [chosen] if chosen is not None and chosen.schema is not None else []
        worst = margin = 0.0
        for lb in candidates:
            assert lb.schema is not None
            est = billed_tokens(extract_messages(lb, job.text, None, job.images), dict(lb.schema))
            prior = self._prior_out(EXTRACT, lb)
            worst = max(worst, self._expected(EXTRACT, est, prior))
            margin = max(margin, self._spread(EXTRACT, est, prior))
        return worst, margin

    def _classify_plan(self, job: LlmJob) -> tuple[float, float]:
        """(expected cost of the document's classification, margin for its spread)."""
        if job.guess_label is not None:
            return 0.0, 0.0
        est = billed_tokens(
            classify_messages(self.spec, job.text, job.images),
            classify_schema(self.spec.label_names),
        )
        prior = self._prior_out(CLASSIFY)
        return self._expected(CLASSIFY, est, prior), self._spread(CLASSIFY, est, prior)

    def _plan(self, job: LlmJob) -> tuple[float, float]:
        """(expected cost of all the document's requests, margin for their spread)."""
        expected, margin = self._fields_plan(job, None)
        classify, classify_margin = self._classify_plan(job)
        return expected + classify, max(margin, classify_margin)

    async def _admit(self, job: LlmJob) -> Pledge | None:
        """Wait until the document's expected cost fits (None: nothing to ask).

        While other documents are admitted it waits for them. Alone, a document whose
        fields may not fit is still classified when that fits (its label may need no
        fields; the answer is cached for a later run either way); when not even that
        fits, the budget is spent: :attr:`exhausted`."""
        expected, margin = self._plan(job)
        if expected <= 0:
            return None
        while True:
            pledge = self.budget.pledge(expected, margin)
            if pledge is not None:
                return pledge
            if self.budget.pledges == 0 and self.budget.in_flight == 0:
                classify, classify_margin = self._classify_plan(job)
                pledge = self.budget.pledge(classify, classify_margin) if classify else None
                if pledge is not None:
                    return pledge
                self.exhausted = True  # not even alone: the run claims nothing more
                raise BudgetExhausted
            await self._budget_wait()

    # --- one document ---------------------------------------------------------------

    async def _run_job(self, job: LlmJob) -> None:
        result = LlmResult(job.doc_id, "done")
        pledge: Pledge | None = None
        try:
            pledge = await self._admit(job)
            if job.guess_label is not None:
                result.label, result.confidence = job.guess_label, job.guess_confidence
                result.decided_by = job.guess_by
            else:
                labels = self.spec.label_names
                answer = await self._answer(
                    result,
                    CLASSIFY,
                    job,
                    lambda problem: classify_messages(self.spec, job.text, job.images, problem),
                    classify_schema(labels),
                    CLASSIFY_SCHEMA_NAME,
                    lambda answer: label_problem(labels, answer),
                    pledge,
                )
                result.label, result.decided_by = str(answer["label"]), "llm"
                confidence = answer.get("confidence")
                result.confidence = float(confidence) if isinstance(confidence, int | float) else None
            label_spec = self.spec.label(result.label or "")
            if label_spec is not None and label_spec.schema is not None:
                schema = label_spec.schema
                result.fields = dict(
                    await self._answer(
                        result,
                        EXTRACT,
                        job,
                        lambda problem: extract_messages(label_spec, job.text, problem, job.images),
                        dict(schema),
                        EXTRACT_SCHEMA_NAME,
                        lambda answer: schema_problem(schema, answer),
                        pledge,
                    )
                )
        except BudgetExhausted:
            result.status = "deferred"
        except asyncio.CancelledError:
            result.status = "deferred"
            self._finish(result)
            raise
        except InvalidOutput as exc:
            result.status, result.error = "failed", f"invalid_output:{exc}"
        except ClientFailure as exc:
            result.status, result.error = "failed", f"llm:{exc}"
        except Exception as exc:  # the ledger refused an answer's cost (disk full...)
            result.status, result.error = "failed", f"llm:{type(exc).__name__}: {exc}"[:300]
        finally:
            if pledge is not None:
                self.budget.release(pledge)
                self._budget_moved()
        self._finish(result)

    async def _answer(
        self,
        result: LlmResult,
        lane: str,
        job: LlmJob,
        messages: Callable[[str | None], list[dict[str, Any]]],
        schema: dict[str, Any],
        schema_name: str,
        check: Callable[[Any], str | None],
        pledge: Pledge | None,
    ) -> Any:
        """A valid answer: asked, then one repair request after an invalid one. Only a
        valid answer is cached (under the first request's key)."""
        slot = self._routes[lane]
        params = {"schema": schema, "max_tokens": self.options.max_output_tokens, "temperature": 0}
        first = messages(None)
        key = cache_key(job.sha256, json.dumps(first, ensure_ascii=False), slot.model, params)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None and check(hit.answer) is None:
                result.cached += 1
                return hit.answer
        problem: str | None = None
        for attempt in range(2):  # the answer, then one repair
            asked = first if attempt == 0 else messages(problem)
            if pledge is not None:  # what this document still expects to spend, from here
                label = self.spec.label(result.label or "") if lane == EXTRACT else None
                expected = self._expected(lane, billed_tokens(asked, schema), self._prior_out(lane, label))
                if lane == CLASSIFY:
                    expected += self._fields_plan(job, None)[0]
                self.budget.repledge(pledge, expected)
                self._budget_moved()
            answer, problem = await self._ask(result, lane, job, asked, schema, schema_name, check)
            if problem is None:
                if self._cache is not None:
                    last = result.attempts[-1]
                    usage = {"prompt_tokens": last["input_tokens"], "completion_tokens": last["output_tokens"]}
                    self._cache.put(key, answer, usage)
                return answer
        raise InvalidOutput(problem or "invalid answer")

    async def _ask(
        self,
        result: LlmResult,
        lane: str,
        job: LlmJob,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        check: Callable[[Any], str | None],
    ) -> tuple[Any, str | None]:
        """One billed answer from the provider and what is wrong with it (None: nothing);
        ``lane``: the role asking (``classify``, ``extract``). Its cost is handed to
        ``on_billed`` before it is returned."""
        slot = self._routes[lane]
        est_in = billed_tokens(messages, schema)
        label = self.spec.label(result.label or "") if lane == EXTRACT else None
        prior_out = self._prior_out(lane, label)
        attempt = 0
        while True:
            chat = await self._send(slot, messages, schema, schema_name, est_in, prior_out)
            if chat is None:  # not sent (stopping)
                raise asyncio.CancelledError
            result.calls += 1
            if chat.ok:
                usage = chat.usage
                tokens_in = usage.prompt_tokens if usage else est_in
                tokens_out = usage.completion_tokens if usage else 0
                cost = self.prices.cost(slot.model, tokens_in, tokens_out)
                self.tokens.observe(lane, slot.model, est_in, tokens_in, tokens_out)
                result.input_tokens += tokens_in
                result.output_tokens += tokens_out
                result.cost_usd += cost
                answer: Any = chat.parsed if chat.json_ok else _NOT_JSON
                problem = check(answer) if chat.json_ok else "the answer is not JSON"
                outcome = "valid" if problem is None else "not_json" if answer is _NOT_JSON else "invalid"
                billed = LlmAttempt(lane, slot.model, tokens_in, tokens_out, cost, outcome)
                if self._on_billed is not None:
                    self._on_billed(job.doc_id, billed)  # committed before it is used
                result.attempts.append(billed.to_dict())
                return answer, problem
            result.retries += 1
            if chat.kind is ResultKind.CLIENT_ERROR:
                raise ClientFailure(f"HTTP {chat.status}: {chat.error or 'refused'}"[:300])
            attempt += 1
            await slot.dispatch.backoff(min(attempt, 10))

    def _reserve(self, model: str, lane: str, est_in: int, prior_out: int) -> tuple[Reservation, int] | None:
        """The hard reservation for one request and the output tokens to ask for: all of
        ``max_output_tokens`` while they fit, else what fits, never under what the role's
        answers need (None: the request does not fit now)."""
        ceiling_in = self.tokens.input_ceiling(lane, model, est_in)
        most = self.options.max_output_tokens
        fits = self.prices.output_tokens_within(model, ceiling_in, self.budget.remaining_usd)
        max_tokens = min(most, fits)
        if max_tokens < min(most, self.tokens.output_need(lane, model, prior_out)):
            return None
        reservation = self.budget.reserve(self.prices.cost(model, ceiling_in, max_tokens))
        return (reservation, max_tokens) if reservation is not None else None

    async def _send(
        self,
        slot: _Route,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        est_in: int,
        prior_out: int,
    ) -> ChatResult | None:
        while True:  # money first: a request that cannot fit does not queue for the key
            if self._reserve_fits(slot, est_in, prior_out):
                est_tokens = est_in + self.options.max_output_tokens
                permit = await slot.dispatch.permit(slot.lane, slot.model, est_tokens)
                held = self._reserve(slot.model, slot.lane, est_in, prior_out)
                if held is not None:
                    break
                slot.dispatch.give_back(permit)  # spent meanwhile: wait again
            if self.budget.in_flight == 0:
                self.exhausted = True  # it cannot fit even alone: stop claiming
                raise BudgetExhausted
            await self._budget_wait()
        reservation, max_tokens = held
        try:
            self.sent += 1
            chat = await slot.client.chat(
                messages,
                schema=schema,
                schema_name=schema_name,
                max_tokens=max_tokens,
                temperature=0.0,
            )
        except asyncio.CancelledError:
            slot.dispatch.abandon(permit)
            self.budget.settle(reservation, 0.0)
            raise
        slot.dispatch.report(permit, chat)
        if chat.ok:
            usage = chat.usage
            cost = self.prices.cost(
                slot.model,
                usage.prompt_tokens if usage else est_in,
                usage.completion_tokens if usage else 0,
            )
            self.budget.settle(reservation, cost)
        else:
            self.budget.settle(reservation, 0.0)  # a refused or failed call is not billed
        self._budget_moved()
        return chat

    def _reserve_fits(self, slot: _Route, est_in: int, prior_out: int) -> bool:
        """Whether the request would get its reservation now (nothing is reserved)."""
        held = self._reserve(slot.model, slot.lane, est_in, prior_out)
        if held is None:
            return False
        self.budget.settle(held[0], 0.0)
        return True


_NOT_JSON: Any = object()
