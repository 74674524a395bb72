"""The LLM stage: provider clients (``client``), pure rate and cost policies (``limits``,
``cost``), the answer cache (``cache``), PII masking before sending (``pii``).

Names are imported lazily so that importing ``docmill.llm`` does not load httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docmill.llm.client import (
        ChatResult,
        ProviderClient,
        ProviderConfig,
        ProviderConfigError,
        ResultKind,
        Usage,
        resolve_api_key,
    )

__all__ = [
    "ChatResult",
    "ProviderClient",
    "ProviderConfig",
    "ProviderConfigError",
    "ResultKind",
    "Usage",
    "resolve_api_key",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'docmill.llm' has no attribute {name!r}")
    return getattr(importlib.import_module("docmill.llm.client"), name)
