"""The LLM stage: pure rate/cost policies, the answer cache, PII masking before sending."""
