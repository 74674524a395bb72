"""Observability: log redaction, logging setup and progress reporting."""
