"""``webhook``: records POSTed as JSON, one or a batch per request.

The body::

    {"delivery": "hook", "idempotency_key": "<the request's key>",
     "items": [{"idempotency_key": "<the record's key>", "record": {...}}, ...]}

``record`` is the record as the part files hold it (``content = "summary"``: without
``text``, ``tables``, ``markdown``, ``parts``, ``text_source`` and ``metadata``). Every
request carries ``Idempotency-Key``: a record's key is ``<ledger id>-<document id>-
<sha256, 16 hex>-<generation>`` (the generation counts the record's versions: the same
document processed again is new news); a batch's key is derived from its members' keys,
and its members are fixed in the ledger before it is first sent. So a request sent
again (a retry, a rerun after ``kill -9``) always carries the key it had; a receiver
that keeps the keys it has seen sees each record once.

Answers: 2xx delivered; 429, 503, 408, 425 and other 5xx, timeouts and dropped
connections tried again (``retries``, full-jitter backoff, never sooner than
``Retry-After``, seconds or an HTTP date; a 429/503 pauses the whole delivery); 401/403
fail ``denied``, any other 4xx ``rejected``. Header values given by reference (the
token) are resolved once, at the start, and scrubbed from every message, with the
environment's credentials.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from docmill import __version__
from docmill.deliver.errors import DeliveryCategory, DeliveryFailed, TransientError
from docmill.deliver.work import HookWork, Work, settle
from docmill.settings.deliveries import DeliverySpec, SecretRef
from docmill.sources.backend import Secrets
from docmill.sources.throttle import Retrier
from docmill.state.deliveries import DeliveryDoc, DeliveryResult

SUMMARY_DROPS = ("text", "tables", "markdown", "parts", "text_source", "metadata")
SNIPPET = 200  # characters of an error answer's body kept in the message


def record_key(ledger_id: str, item: int, sha256: str | None, generation: int) -> str:
    """A record's idempotency key (see the module docstring)."""
    return f"{ledger_id}-{item}-{(sha256 or 'none')[:16]}-{generation}"


def batch_key(ledger_id: str, member_keys: list[str]) -> str:
    """One request's key: a single record's own, or derived from a batch's members."""
    if len(member_keys) == 1:
        return member_keys[0]
    digest = hashlib.sha256("\n".join(sorted(member_keys)).encode()).hexdigest()[:24]
    return f"{ledger_id}-batch-{digest}"


def resolve_headers(spec: DeliverySpec, env: Mapping[str, str]) -> dict[str, str]:
    """The request headers of ``spec``, references resolved (a missing variable is a
    :class:`~docmill.settings.SettingsError` naming it, never a value)."""
    headers: dict[str, str] = {}
    where = f"deliver {spec.name}"
    for name, value in spec.headers:
        headers[name] = value.resolve(env, f"{where}.headers.{name}") if isinstance(value, SecretRef) else value
    if spec.token is not None:
        headers["Authorization"] = "Bearer " + spec.token.resolve(env, f"{where}.token")
    return headers


def secret_values(spec: DeliverySpec, env: Mapping[str, str]) -> frozenset[str]:
    """The values ``spec``'s references resolve to (the token, secret headers): never to
    be shown, whole or as sent (``Bearer <token>``)."""
    where = f"deliver {spec.name}"
    refs = [spec.token] if spec.token is not None else []
    refs += [value for _name, value in spec.headers if isinstance(value, SecretRef)]
    values = {ref.resolve(env, where) for ref in refs}
    if spec.token is not None:
        values.add("Bearer " + spec.token.resolve(env, where))
    return frozenset(values)


def retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date (None: absent or unreadable)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def body_of(spec: DeliverySpec, work: HookWork) -> bytes:
    items: list[bytes] = []
    for _item, _version, key, doc in work.members:
        items.append(b'{"idempotency_key": ' + json.dumps(key).encode() + b', "record": ' + _record(spec, doc) + b"}")
    head = json.dumps({"delivery": spec.name, "idempotency_key": work.key})[:-1].encode()
    return head + b', "items": [' + b", ".join(items) + b"]}"


def _record(spec: DeliverySpec, doc: DeliveryDoc) -> bytes:
    if spec.content == "full":
        return doc.record.json_line_utf8()
    data: dict[str, Any] = doc.record.to_dict()
    for key in SUMMARY_DROPS:
        data.pop(key, None)
    return json.dumps(data, ensure_ascii=False).encode()


class WebhookDelivery:
    def __init__(
        self, spec: DeliverySpec, headers: dict[str, str], retrier: Retrier, secrets: Secrets,
        stop: threading.Event,
    ) -> None:
        self.spec = spec
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"docmill/{__version__}",
            **headers,
        }
        self._retrier = retrier
        self._secrets = secrets
        self._stop = stop
        self._local = threading.local()  # one client per delivery thread
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            timeout = self.spec.timeout_s
            client = httpx.Client(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                follow_redirects=False, trust_env=False,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def deliver(self, work: Work) -> DeliveryResult:
        if not isinstance(work, HookWork):
            raise TypeError(f"a {self.spec.kind} delivery takes HookWork, not {type(work).__name__}")
        body = body_of(self.spec, work)
        headers = {**self._headers, "Idempotency-Key": work.key}
        url = self.spec.to

        def attempt() -> None:
            try:
                answer = self._client().post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                raise TransientError(f"{url}: no answer within {self.spec.timeout_s:g} s",
                                     reason="timeout") from None
            except httpx.TransportError as exc:
                raise TransientError(f"{url}: connection failed ({type(exc).__name__})",
                                     reason="connection") from None
            status = answer.status_code
            if 200 <= status < 300:
                return
            text = self._secrets.scrub(answer.text[:SNIPPET].strip())
            what = f"{url} answered {status}" + (f": {text}" if text else "")
            after = retry_after(answer.headers.get("Retry-After"), time.time())
            if status in (429, 503):
                raise TransientError(what, retry_after_s=after, throttled=True, reason=str(status))
            if status in (408, 425) or status >= 500:
                raise TransientError(what, retry_after_s=after, reason=str(status))
            if status in (401, 403):
                raise DeliveryFailed(DeliveryCategory.DENIED, what)
            raise DeliveryFailed(DeliveryCategory.REJECTED, what)

        return settle(self.spec.name, work, self._retrier, attempt, self._secrets, self._stop)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
