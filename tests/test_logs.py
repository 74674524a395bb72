"""Tests for docmill.observability.logs."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from docmill.observability.logs import (
    RedactingFilter,
    RedactingFormatter,
    configure_logging,
)

EMAIL = "jane.roe@example.com"
SSN = "123-45-6789"


@pytest.fixture
def docmill_logger() -> Iterator[logging.Logger]:
    """The docmill logger, restored to its previous configuration afterwards."""
    logger = logging.getLogger("docmill")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture
def stream(docmill_logger: logging.Logger) -> io.StringIO:
    """A StringIO that the docmill logger (configured at DEBUG) writes to."""
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    return buffer


def test_percent_args_are_masked(stream: io.StringIO) -> None:
    logging.getLogger("docmill").info("user %s ssn %s pages %d", EMAIL, SSN, 12)
    out = stream.getvalue()
    assert "user [EMAIL] ssn [SSN] pages 12" in out
    assert EMAIL not in out and SSN not in out


def test_fstring_message_is_masked(stream: io.StringIO) -> None:
    logging.getLogger("docmill").warning(f"failed for {EMAIL} / {SSN}")
    out = stream.getvalue()
    assert "failed for [EMAIL] / [SSN]" in out
    assert EMAIL not in out and SSN not in out


def test_child_logger_records_are_masked(stream: io.StringIO) -> None:
    logging.getLogger("docmill.engine.worker").error("card %s", "4111 1111 1111 1111")
    out = stream.getvalue()
    assert "docmill.engine.worker: card [CARD]" in out


def test_exception_text_is_masked(stream: io.StringIO) -> None:
    logger = logging.getLogger("docmill")
    try:
        raise ValueError(f"bad owner {EMAIL} ssn {SSN}")
    except ValueError:
        logger.exception("processing failed for %s", EMAIL)
    out = stream.getvalue()
    assert "Traceback" in out
    assert "ValueError: bad owner [EMAIL] ssn [SSN]" in out
    assert EMAIL not in out and SSN not in out


def test_format_and_level(stream: io.StringIO) -> None:
    logger = logging.getLogger("docmill")
    logger.debug("hello")
    line = stream.getvalue().strip()
    # e.g. "2024-01-15 12:34:56,789 DEBUG docmill: hello": the timestamp is not redacted
    assert line.endswith(" DEBUG docmill: hello")
    assert "[" not in line


def test_unformattable_args_do_not_leak_or_raise(stream: io.StringIO) -> None:
    logging.getLogger("docmill").info("only one %s", EMAIL, SSN)
    out = stream.getvalue()
    assert "unformattable" in out
    assert EMAIL not in out and SSN not in out


def test_configure_is_idempotent_and_isolated(docmill_logger: logging.Logger) -> None:
    logger = docmill_logger
    root_handlers = list(logging.getLogger().handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    returned = configure_logging("warning", stream=second)
    assert returned is logger
    owned = [h for h in logger.handlers if getattr(h, "_docmill_owned_handler", False)]
    assert len(owned) == 1
    assert logger.propagate is False
    assert logger.level == logging.WARNING
    assert logging.getLogger().handlers == root_handlers
    logger.warning("to %s", EMAIL)
    logger.info("filtered out")
    assert first.getvalue() == ""
    assert "to [EMAIL]" in second.getvalue()
    assert "filtered out" not in second.getvalue()


def test_foreign_handlers_are_kept(docmill_logger: logging.Logger) -> None:
    foreign = logging.NullHandler()
    docmill_logger.addHandler(foreign)
    configure_logging(stream=io.StringIO())
    configure_logging(stream=io.StringIO())
    assert foreign in docmill_logger.handlers
    assert len(docmill_logger.handlers) == 2


def test_unknown_level_changes_nothing(docmill_logger: logging.Logger) -> None:
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    with pytest.raises(ValueError):
        configure_logging("LOUD", stream=io.StringIO())
    docmill_logger.info("still here")
    assert "still here" in buffer.getvalue()


def test_filter_rewrites_record() -> None:
    record = logging.LogRecord("docmill", logging.INFO, __file__, 1, "to %s", (EMAIL,), None)
    assert RedactingFilter().filter(record) is True
    assert record.msg == "to [EMAIL]"
    assert record.args is None


def test_formatter_alone_redacts_everything() -> None:
    try:
        raise RuntimeError(SSN)
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("docmill", logging.ERROR, __file__, 1, "x %s", (EMAIL,), exc_info)
    text = RedactingFormatter("%(message)s").format(record)
    assert EMAIL not in text and SSN not in text
    assert "RuntimeError: [SSN]" in text
