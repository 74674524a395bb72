"""What a delivery's failure is (a category, as a document's failure has one), and the
exceptions a delivery's code raises inside one item (never past it)."""

from __future__ import annotations

import enum

from docmill.sources.throttle import TransientError

__all__ = ["DeliveryCategory", "DeliveryFailed", "Stopped", "TransientError", "spent"]


class DeliveryCategory(enum.StrEnum):
    """Why a delivery failed. Stable strings: ``docmill retry --delivery`` and the
    status show them."""

    UNAVAILABLE = "unavailable"  # 5xx answers or dropped connections, every try
    RATE_LIMITED = "rate_limited"  # 429 / SlowDown answers, every try
    TIMEOUT = "timeout"  # no answer within timeout_s, every try
    REJECTED = "rejected"  # a 4xx answer: the destination refuses this item
    DENIED = "denied"  # 401/403, or credentials the store refuses
    MISSING = "missing"  # the source document is gone (files)
    CHANGED = "changed"  # the source's bytes are no longer its record's (files)
    NOT_ALLOWED = "not_allowed"  # the destination would leave its root
    CONFLICT = "conflict"  # another document's file goes to the same place
    IO = "io"  # the local disk
    ERROR = "error"  # anything else


class DeliveryFailed(Exception):
    """This item cannot be delivered (not tried again in this run). The message is safe
    to store and show: secrets scrubbed, no server path a caller should not see."""

    def __init__(self, category: DeliveryCategory, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


class Stopped(Exception):
    """The run stopped while this item waited (a backoff, the rate limit): it stays
    pending and is delivered by the next run."""


def spent(exc: TransientError, tries: int) -> DeliveryFailed:
    """A transient error once the tries are spent, as a failure with its category."""
    reason = exc.reason
    if exc.throttled or reason == "429":
        category = DeliveryCategory.RATE_LIMITED
    elif reason == "timeout":
        category = DeliveryCategory.TIMEOUT
    else:
        category = DeliveryCategory.UNAVAILABLE
    return DeliveryFailed(category, f"{exc} (gave up after {tries} tries)")
