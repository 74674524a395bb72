"""Logging setup for the ``docmill`` logger with PII redaction."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Final, TextIO, TypeAlias

from docmill.observability.redact import redact

LOGGER_NAME: Final = "docmill"
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWNED_ATTR: Final = "_docmill_owned_handler"

_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


def _fallback_text(record: logging.LogRecord) -> str:
    """Best-effort text for a record whose message cannot be formatted."""
    try:
        return f"{record.msg!s} [unformattable log arguments: {record.args!r}]"
    except Exception:
        return "[unprintable log message]"


class RedactingFilter(logging.Filter):
    """Replace a record's message with its formatted, redacted text (``args`` become None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args must not leak via handleError
            message = _fallback_text(record)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Formatter whose final output (message, traceback, stack) is redacted."""

    def formatException(self, ei: _ExcInfo) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        try:
            text = super().format(record)
        except Exception:  # never lose a line to a formatting error
            text = f"{record.levelname} {record.name}: {_fallback_text(record)}"
        return redact(text)


def _is_owned(handler: logging.Handler) -> bool:
    return bool(getattr(handler, _OWNED_ATTR, False))


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Logger:
    """Configure the ``docmill`` logger with one redacting stream handler (stderr by default).

    Idempotent: a handler added by an earlier call is replaced, not duplicated.
    The root logger is left alone and records do not propagate to it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())  # raises ValueError on an unknown level, before any change
    for old in [h for h in logger.handlers if _is_owned(h)]:
        logger.removeHandler(old)
        old.close()
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(
        stream if stream is not None else sys.stderr
    )
    setattr(handler, _OWNED_ATTR, True)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    return logger
