"""Throttle visibility: the limiter's view per model (limits and where they came from),
the rate-limited INFO lines, and the stage logging them against the simulator."""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

import pytest

from docmill.llm.limits import KeyLimiter, LimiterConfig, ModelView, Outcome
from docmill.llm.rate_signals import Allowance, RateSignals, Refusal
from docmill.llm.watch import ThrottleLog
from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from test_llm_stage import SCALE, invoice_text, run_stage


def view(model: str = "m", **kw: object) -> ModelView:
    base: dict[str, object] = dict(
        model=model, scope="key", rpm=0.0, rpm_source="", tpm=0.0, tpm_source="",
        in_flight=0, waiting=0, concurrency=16, breaker="closed",
    )  # fmt: skip
    base.update(kw)
    return ModelView(**base)  # type: ignore[arg-type]


# --- the limiter's view ------------------------------------------------------------------


def test_views_say_where_each_limit_came_from() -> None:
    lim = KeyLimiter(LimiterConfig(tpm=50_000, learn_rpm=True), now=0.0, random=lambda: 0.5)
    a = lim.acquire(0.0, 100, model="small").permit
    b = lim.acquire(0.0, 100, model="large").permit
    assert a is not None and b is not None
    views = {v.model: v for v in lim.views(0.0)}
    assert views["small"].in_flight == 1 and views["large"].in_flight == 1
    assert (views["small"].rpm, views["small"].rpm_source) == (0.0, "")
    assert (views["small"].tpm, views["small"].tpm_source) == (50_000, "configured")
    # a 429 stating its limit; then headers stating the tokens per minute
    refusal = Refusal(kind="requests", figure=90.0, used=90.0)
    lim.on_result(a, 1.0, Outcome.RATE_LIMITED, 0.5, None, 1.0, RateSignals(refusal=refusal))
    headers = RateSignals(tokens=Allowance(limit=40_000, remaining=39_000, reset_s=1.0))
    lim.on_result(b, 1.0, Outcome.SUCCESS, 0.5, 200, None, headers)
    views = {v.model: v for v in lim.views(1.0)}
    assert (views["small"].rpm, views["small"].rpm_source) == (90.0, "429")
    assert (views["small"].rate_limited, views["large"].rate_limited) == (1, 0)  # 429s counted
    assert views["small"].to_dict()["rate_limited"] == 1
    assert (views["large"].tpm, views["large"].tpm_source) == (40_000, "headers")
    assert views["small"].scope == views["large"].scope == "key"
    assert views["small"].in_flight == views["large"].in_flight == 0
    lim.enqueue("classify", "small", 100)
    assert {v.model: v.waiting for v in lim.views(1.0)} == {"large": 0, "small": 1}


def test_a_limit_learned_from_429s_without_figures_says_learned() -> None:
    lim = KeyLimiter(LimiterConfig(learn_rpm=True), now=0.0, random=lambda: 0.5)
    permits = [lim.acquire(0.0, 0, model="m").permit for _ in range(5)]
    for p in permits[:4]:
        assert p is not None
        lim.on_result(p, 0.5, Outcome.SUCCESS, 0.5)
    last = permits[4]
    assert last is not None
    lim.on_result(last, 0.6, Outcome.RATE_LIMITED, 0.1, None, 59.0, None)
    (only,) = lim.views(0.6)
    assert only.rpm_source == "learned" and only.rpm == pytest.approx(4.0)


# --- the lines ---------------------------------------------------------------------------


def test_one_line_per_kind_per_interval_with_the_counts_since_the_last() -> None:
    log = ThrottleLog(interval_s=30.0)
    assert log.lines(0.0) == []
    log.note("rate_limited", "small", 1.0)
    first = log.lines(1.0)  # the first event of a kind is told at once
    assert first == ["llm throttled: 1 request refused with 429 (rate limited; retried) in 1 s (small 1)"]
    told: dict[int, list[str]] = {}
    for t in range(2, 40):
        log.note("rate_limited", "small" if t % 3 else "large", float(t))
        log.note("timeout", "large", float(t))
        told[t] = log.lines(float(t))
    rate_lines = [(t, line) for t, lines in told.items() for line in lines if "429" in line]
    # the timeouts' first line at once, then nothing of either kind until 30 s later
    assert [t for t, _ in rate_lines] == [31]
    assert "30 requests refused with 429" in rate_lines[0][1] and "in 29 s" in rate_lines[0][1]
    assert "(large 10, small 20)" in rate_lines[0][1]
    timeout_lines = [(t, line) for t, lines in told.items() for line in lines if "timed out" in line]
    assert [t for t, _ in timeout_lines] == [2, 32]
    assert "1 request timed out" in timeout_lines[0][1] and "30 requests timed out" in timeout_lines[1][1]
    leftover = log.lines(40.0, flush=True)
    assert len(leftover) == 2 and "8 requests refused" in leftover[0] and "7 requests timed out" in leftover[1]
    assert log.lines(41.0, flush=True) == []


def test_limits_are_told_when_they_change_and_breakers_when_they_open() -> None:
    log = ThrottleLog(interval_s=10.0)
    log.observe([view("small"), view("large")], 0.0)
    assert log.lines(0.0) == []  # nothing known: nothing to tell
    log.observe([view("small", rpm=90.0, rpm_source="429")], 1.0)
    assert log.lines(1.0) == [
        "llm limits: small: 90 requests/min (429 figures), no tokens/min limit known, counted per key"
    ]
    log.observe([view("small", rpm=91.0, rpm_source="429")], 20.0)  # moved < 5 %
    assert log.lines(20.0) == []
    log.observe([view("small", rpm=91.0, rpm_source="429", scope="model")], 21.0)
    assert log.lines(21.0) == [
        "llm limits: small: 91 requests/min (429 figures), no tokens/min limit known, counted per model"
    ]
    log.observe([view("large", rpm=60.0, rpm_source="learned", tpm=60_000, tpm_source="headers")], 22.0)
    assert log.lines(22.0) == []  # within 10 s of the last limits line
    assert log.lines(31.0) == [
        "llm limits: large: 60 requests/min (learned), 60,000 tokens/min (headers), counted per key"
    ]
    for t in (40.0, 43.0):
        log.note("breaker", "large", t)
    (line,) = log.lines(43.0)
    assert line.startswith("llm breaker opened 2 times in 3 s (large 2)")


# --- the stage, against the simulator ----------------------------------------------------


def test_the_stage_logs_throttling_at_most_once_per_kind_and_interval_with_every_429_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rpm = 20
    config = SimConfig(rpm=rpm, limit_scope="key", time_scale=SCALE, latency_min_s=0.5,
                       latency_max_s=4.5, latency_dist="lognormal", error_rate=0.05,
                       timeout_rate=0.03, hang_s=30.0, seed=31)  # fmt: skip
    interval = 1.0
    caplog.set_level(logging.INFO, logger="docmill.llm")
    with serve_in_thread(config) as sim:
        results, _limiter = run_stage(
            tmp_path, sim, [invoice_text(i) for i in range(40)],
            timeout_s=60.0 * SCALE, log_interval_s=interval,
        )  # fmt: skip
        stats = sim.stats()
    assert all(r.status == "done" for r in results)
    lines = [(r.created, r.getMessage()) for r in caplog.records if r.name == "docmill.llm"]
    assert stats["rate_limited"] > 0 and stats["timeouts"] > 0 and stats["server_errors"] > 0
    counted = {"429": 0, "timed out": 0, "5xx": 0}
    for kind in counted:
        told = [(t, m) for t, m in lines if m.startswith("llm throttled") and kind in m]
        assert told, (kind, lines)
        times = [t for t, _ in told]
        # at most one line per kind per interval (the last one: the stage's end, flushed)
        assert all(b - a >= interval * 0.99 for a, b in itertools.pairwise(times[:-1])), times
        counted[kind] = sum(int(re.search(r"throttled: (\d+)", m).group(1)) for _, m in told)  # type: ignore[union-attr]
    assert counted["429"] == stats["rate_limited"]
    # a hung request is a timeout on both sides; on a loaded machine the client may also
    # give up on a slow 5xx or answer, which the simulator counts as such
    assert counted["timed out"] >= stats["timeouts"]
    assert counted["timed out"] + counted["5xx"] >= stats["timeouts"] + stats["server_errors"]
    limits = [m for _, m in lines if m.startswith("llm limits")]
    assert any(f"{rpm} requests/min (429 figures)" in m for m in limits), limits
    assert all("INV-" not in m and "Acme" not in m for _, m in lines)  # no document text


def test_an_outage_logs_the_breaker_opening_and_the_5xx_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    caplog.set_level(logging.INFO, logger="docmill.llm")
    config = SimConfig(time_scale=SCALE, latency_min_s=0.2, latency_max_s=0.5, seed=32)
    with serve_in_thread(config) as sim:
        sim.set_outage(True)
        timer = threading.Timer(2.5, sim.set_outage, args=(False,))
        timer.start()
        try:
            results, limiter = run_stage(tmp_path, sim, [invoice_text(i) for i in range(12)], log_interval_s=60.0)
        finally:
            timer.cancel()
        stats = sim.stats()
    assert all(r.status == "done" for r in results)  # the outage delayed them, no more
    assert stats["outage_503"] >= 5
    lines = [r.getMessage() for r in caplog.records if r.name == "docmill.llm"]
    opened = [m for m in lines if m.startswith("llm breaker opened")]
    assert opened and "sim-small" in opened[0], lines
    # opened, then again after a failed probe (the outage outlasts the first pause)
    assert sum(int(re.search(r"opened (\d+) time", m).group(1)) for m in opened) >= 2, opened  # type: ignore[union-attr]
    errors = [m for m in lines if m.startswith("llm throttled") and "5xx" in m]
    # a line at once (the first look), the rest at the end (the interval outlasts the
    # test), every 503 counted
    assert 1 <= len(errors) <= 2, errors
    assert sum(int(re.search(r"throttled: (\d+)", m).group(1)) for m in errors) == stats["outage_503"]  # type: ignore[union-attr]
    assert limiter.breaker_of("sim-small").value == "closed"
