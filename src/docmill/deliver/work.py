"""What a delivery thread is handed (one item, or a webhook batch), and how one item's
tries become its result: errors as data, never past the item."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docmill.deliver.errors import DeliveryCategory, DeliveryFailed, Stopped, TransientError, spent
from docmill.sources.backend import Secrets
from docmill.sources.throttle import Backoff, Retrier
from docmill.state.deliveries import DeliveryDoc, DeliveryResult


@dataclass(frozen=True, slots=True)
class PartWork:
    """``records``: put (or delete) one part file under ``key``."""

    item: int  # the part number
    version: float
    op: str  # put | delete
    path: Path  # DIR/records/part-N.ext
    key: str  # its name at the destination


@dataclass(frozen=True, slots=True)
class FileWork:
    """``files``: one document's source to ``target`` (its old place ``previous``
    removed once the new one is in)."""

    item: int
    version: float
    doc: DeliveryDoc
    target: str
    previous: str | None


@dataclass(frozen=True, slots=True)
class HookWork:
    """``webhook``: records in one POST, with the batch's idempotency key and each
    record's own."""

    key: str
    members: tuple[tuple[int, float, str, DeliveryDoc], ...]  # (item, version, key, doc)


Work = PartWork | FileWork | HookWork


def items_of(work: Work) -> tuple[tuple[int, float], ...]:
    if isinstance(work, HookWork):
        return tuple((item, version) for item, version, _key, _doc in work.members)
    return ((work.item, work.version),)


def new_retrier(retries: int, requests_per_s: float, stop: threading.Event) -> Retrier:
    """A delivery's retrier: its rate, its tries, full-jitter backoff honouring
    ``Retry-After``; a wait is cut short (the item stays pending) when ``stop`` is set."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped()

    return Retrier(requests_per_s, retries, Backoff(base_s=0.2, cap_s=20.0), sleep=sleep)


def settle(
    name: str, work: Work, retrier: Retrier, attempt: Callable[[], None], secrets: Secrets,
    stop: threading.Event,
) -> DeliveryResult:
    """``attempt()`` through ``retrier`` (tried again on :class:`TransientError`), as a
    result for ``work``'s items: done, failed with a category, or pending when the run
    stopped first."""
    items = items_of(work)
    if stop.is_set():
        return DeliveryResult(name, items, "pending")
    try:
        retrier.call(attempt)
    except Stopped:
        return DeliveryResult(name, items, "pending")
    except TransientError as exc:
        failed = spent(exc, retrier.attempts)
        return DeliveryResult(name, items, "failed", str(failed.category), secrets.scrub(failed.message))
    except DeliveryFailed as exc:
        return DeliveryResult(name, items, "failed", str(exc.category), secrets.scrub(exc.message))
    except OSError as exc:
        message = secrets.scrub(f"{type(exc).__name__}: {exc.strerror or exc}")
        return DeliveryResult(name, items, "failed", str(DeliveryCategory.IO), message)
    except Exception as exc:  # a bug or a library's surprise: this item fails, not the run
        message = secrets.scrub(f"{type(exc).__name__}: {exc}")
        return DeliveryResult(name, items, "failed", str(DeliveryCategory.ERROR), message)
    return DeliveryResult(name, items, "done")
