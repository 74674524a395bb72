"""Test kit: local stand-ins for outside services (``llm_sim``: an OpenAI-compatible server;
``drive_sim``: a Google Drive API v3 with its quotas and token endpoint).

Shipped with the package so that tests, benches and users' own test suites can run the
LLM stage against a provider that behaves like a paid API, and Drive sources against a
Drive, without one. Names are imported lazily, so ``python -m docmill.testkit.llm_sim``
runs the module only once (the Drive simulator is imported by its module path).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docmill.testkit.llm_sim import LlmSimulator, SimConfig, SimHandle, serve_in_thread

__all__ = ["LlmSimulator", "SimConfig", "SimHandle", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'docmill.testkit' has no attribute {name!r}")
    return getattr(importlib.import_module("docmill.testkit.llm_sim"), name)
