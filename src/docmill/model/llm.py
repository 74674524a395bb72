"""What one billed LLM answer was: shared by the stage that pays for it and the ledger that
keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LlmAttempt:
    """One billed answer: the role that asked, the model, tokens as billed, cost, and what
    the answer was worth (``valid``; ``invalid``: JSON that does not fit; ``not_json``)."""

    role: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model": self.model,
            "input_tokens": self.tokens_in,
            "output_tokens": self.tokens_out,
            "cost_usd": round(self.cost_usd, 8),
            "outcome": self.outcome,
        }
