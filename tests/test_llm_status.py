"""``docmill status`` from another process while a run with the LLM stage goes, and after
it was killed (``kill -9``): each model's limits and where they came from, requests in
flight and waiting, and what the run finished. A real ``docmill run`` against the LLM
simulator on loopback; status is the real CLI, in its own process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from engine_kit import run_cli, start_cli, status, stop_all
from test_llm_stage import make_docs, write_spec


def finished(data: dict[str, Any]) -> int:
    return sum(data["counts"].get(s, 0) for s in ("done", "failed", "skipped"))


def test_status_shows_the_learned_limits_in_flight_and_what_a_killed_run_finished(
    tmp_path: Path,
) -> None:
    rpm = 12  # 30 documents need ~40 requests: the key's minute fills in the first seconds
    config = SimConfig(rpm=rpm, limit_scope="key", latency_min_s=0.2, latency_max_s=0.6, seed=8)
    make_docs(tmp_path / "in", 30)
    out = tmp_path / "out"
    with serve_in_thread(config) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        proc = start_cli(
            "run", str(tmp_path / "in"), "--out", str(out), "--workers", "2", "--quiet",
            "--set", f"llm.spec={spec}",
        )  # fmt: skip
        try:
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if (out / "docmill.db").exists():
                    data = status(out)
                    seen.append(data)
                    limits = (data.get("llm_limits") or {}).get("models") or []
                    learned = [m for m in limits if m["rpm"] == rpm and m["rpm_source"] == "429"]
                    if learned and finished(data) >= 3 and sim.stats()["rate_limited"]:
                        break
                time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()
            live = seen[-1]["llm_limits"]
            assert live["live"] is True
            models = {m["model"]: m for m in live["models"]}
            assert models["sim-small"]["rpm"] == rpm and models["sim-small"]["rpm_source"] == "429"
            assert models["sim-small"]["scope"] == "key"
            # the documents left wait for the key's minute (in flight or in the queue)
            busy = [
                sum(m["in_flight"] + m["waiting"] for m in s["llm_limits"]["models"])
                for s in seen
                if s.get("llm_limits")
            ]
            assert max(busy) > 0, busy
            os.kill(proc.pid, signal.SIGKILL)  # the driver, without a chance to record anything
            proc.wait(timeout=30)
        finally:
            stop_all(proc)
        _out, err = proc.communicate()
    assert "llm throttled:" in err and f"{rpm} requests/min (429 figures)" in err, err[-3000:]
    after = status(out)
    run = after["last_run"]
    assert run["status"] == "crashed"
    done = finished(after)
    assert done >= 3 and run["documents"] == done  # what that run finished, not 0
    assert run["pages"] == after["pages"] > 0
    assert run["elapsed_s"] > 0 and run["docs_per_min"] > 0
    limits = after["llm_limits"]
    assert limits["live"] is False
    assert {m["model"]: (m["rpm"], m["rpm_source"]) for m in limits["models"]}["sim-small"] == (rpm, "429")
    assert all(m["in_flight"] == 0 and m["waiting"] == 0 for m in limits["models"])
    text = run_cli("status", str(out))
    assert text.returncode == 0, text.stderr
    assert "last run: crashed" in text.stdout
    assert f"sim-small        {rpm} requests/min (429 figures)" in text.stdout, text.stdout
    assert "as the last run left them" in text.stdout
