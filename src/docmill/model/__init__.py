"""Typed values shared by every layer: document states, failures, results, records."""

from docmill.model.records import (
    TERMINAL_STATES,
    DocState,
    ErrorInfo,
    FailureCategory,
    PageRange,
    ProcessOutcome,
    Record,
    SourceFile,
)

__all__ = [
    "TERMINAL_STATES",
    "DocState",
    "ErrorInfo",
    "FailureCategory",
    "PageRange",
    "ProcessOutcome",
    "Record",
    "SourceFile",
]
