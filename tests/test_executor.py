"""The executor seam (engine/executor.py) and the Ray executor's pure policies, without
a cluster: kinds by name, a library caller's own executor, the messages for an unknown
kind, a missing Ray and an unreachable cluster, batch sizing and the in-flight window."""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from docmill.engine.executor import (
    ExecutorContext,
    ExecutorError,
    ExecutorState,
    known_executors,
    open_executor,
)
from docmill.engine.pool import WorkerPool
from docmill.engine.runner import Runner
from docmill.executors.batching import (
    OVERHEAD_BYTES,
    BatchSizer,
    batches_in_flight,
    goes_alone,
    on_this_machine,
    weight,
    window_batches,
)
from docmill.model import PageRange, ProcessOutcome
from docmill.processors import Task, process_task
from docmill.settings import SettingsError, load_settings
from engine_kit import env, read_parts, run_cli
from pdfgen import write_pdf
from ray_kit import free_port


class InlineExecutor:
    """An executor a library caller might write: every task runs in the driver's own
    thread, one per poll (no limits: only for trusted, small inputs)."""

    def __init__(self, context: ExecutorContext) -> None:
        self.window = 8
        self._todo: deque[Task] = deque()
        self.polls = 0

    @property
    def idle(self) -> int:
        return self.window - len(self._todo)

    @property
    def busy(self) -> int:
        return len(self._todo)

    def prepare(self) -> None:
        pass

    def start(self) -> None:
        pass

    def submit(self, task: Task) -> None:
        self._todo.append(task)

    def poll(self, wait_s: float) -> list[tuple[Task, ProcessOutcome]]:
        self.polls += 1
        if not self._todo:
            return []
        task = self._todo.popleft()
        outcome = process_task(task)
        outcome.seal()
        return [(task, outcome)]

    def take_returned(self) -> list[Task]:
        return []

    def shutdown(self, *, kill: bool = False) -> list[Task]:
        lost = list(self._todo)
        self._todo.clear()
        return lost

    def describe(self) -> ExecutorState | None:
        return ExecutorState(nodes=1, workers=1)


def test_the_builtin_kinds_are_local_and_ray() -> None:
    assert {"local", "ray"} <= set(known_executors())
    pool = open_executor(ExecutorContext(load_settings(env={}, overrides={"run.workers": "3"})))
    assert isinstance(pool, WorkerPool)
    assert pool.window == 48  # run.window 0: 16 x workers
    assert pool.describe() is None  # the local line is unchanged


def test_an_unknown_executor_lists_the_known_ones() -> None:
    settings = load_settings(env={}, overrides={"run.executor": "slurm"})
    with pytest.raises(SettingsError, match="unknown executor 'slurm'; known executors: local, ray"):
        open_executor(ExecutorContext(settings))


def test_a_library_callers_executor_runs_the_whole_run(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(5):
        write_pdf(src / f"doc-{i}.pdf", [f"inline {i}", "second page"])
    out = tmp_path / "out"
    built: list[InlineExecutor] = []

    def factory(context: ExecutorContext) -> InlineExecutor:
        built.append(InlineExecutor(context))
        return built[0]

    settings = load_settings(env={}, overrides={"run.executor": "inline"})
    runner = Runner(settings, [str(src)], out, executors={"inline": factory})
    summary = runner.run()
    assert summary.completed and summary.counts["done"] == 5
    assert built[0].polls > 0
    records = sorted(read_parts(out), key=lambda r: r["source"])
    assert [r["text"] for r in records] == [[f"inline {i}", "second page"] for i in range(5)]
    assert runner.last_snapshot is not None and runner.last_snapshot.nodes == 1


def test_asking_for_ray_without_it_says_how_to_get_it(tmp_path: Path) -> None:
    write_pdf(tmp_path / "in" / "a.pdf", ["a"])
    probe = (
        "import sys\nsys.modules['ray'] = None  # as if it were not installed\n"
        "from docmill.cli.main import main\n"
        f"sys.exit(main(['run', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'out')!r},"
        " '--executor', 'ray', '--quiet']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env(), timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "run.executor=ray needs Ray" in result.stderr
    assert "pip install 'docmill[ray]'" in result.stderr


def test_an_unknown_executor_on_the_command_line_is_a_setting_error(tmp_path: Path) -> None:
    write_pdf(tmp_path / "in" / "a.pdf", ["a"])
    result = run_cli(
        "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--executor", "slurm",
        "--quiet",
    )
    assert result.returncode == 1
    assert "known executors: local, ray" in result.stderr


def test_a_cluster_address_nobody_answers_is_refused_at_once(tmp_path: Path) -> None:
    write_pdf(tmp_path / "in" / "a.pdf", ["a"])
    address = f"127.0.0.2:{free_port()}"  # bound a moment ago, closed: nothing listens
    result = run_cli(
        "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--executor", "ray",
        "--set", f"run.ray_address={address}", "--quiet", timeout=120,
    )
    assert result.returncode == 1
    assert f"cannot join the Ray cluster at run.ray_address={address}" in result.stderr
    assert "ray start --head" in result.stderr


def test_a_ray_error_that_only_introduces_a_traceback_is_shown_with_its_cause() -> None:
    """Ray Client answers a failed connection with ``Initialization failure from
    server:`` and the server's traceback: the message keeps the traceback's last line."""
    from docmill.executors.ray import _first_line

    traceback = (
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 777, in Datapath\n'
        "RuntimeError: Proxy failed to Connect to backend!\n"
    )
    assert _first_line(ConnectionAbortedError(traceback)) == (
        "Initialization failure from server: RuntimeError: Proxy failed to Connect to backend!"
    )
    assert _first_line(ConnectionError("no cluster\nmore detail")) == "no cluster"
    assert _first_line(TimeoutError()) == "TimeoutError"


class _RayInit:
    """Ray's ``init`` as a Ray Client server answers it: ``failures`` failed sessions
    (what Ray raises for them), then a session."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def init(self, address: str, **_kwargs: object) -> None:
        self.calls.append(address)
        if len(self.calls) <= self.failures:
            raise ConnectionAbortedError(
                "Initialization failure from server:\nTraceback (most recent call last):\n"
                "RuntimeError: Proxy failed to Connect to backend!\n"
            )


def test_a_ray_client_session_the_server_failed_to_start_is_asked_for_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from docmill.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "CLIENT_PAUSE_S", 0.0)
    ray = _RayInit(failures=2)
    ray_executor._join(ray, "ray://127.0.0.2:10001")
    assert ray.calls == ["ray://127.0.0.2:10001"] * 3
    assert "asking again (3 of 3)" in caplog.text
    with pytest.raises(ExecutorError, match="Proxy failed to Connect to backend"):
        ray_executor._join(_RayInit(failures=3), "ray://127.0.0.2:10001")
    # a cluster joined by its GCS address is not a Ray Client session: one try
    direct = _RayInit(failures=1)
    with pytest.raises(ExecutorError, match=r"cannot join the Ray cluster at run\.ray_address=127\.0\.0\.2:6379"):
        ray_executor._join(direct, "127.0.0.2:6379")
    assert len(direct.calls) == 1


# --- batching (pure) ------------------------------------------------------------------


def _task(i: int, rng: PageRange | None = None) -> Task:
    return Task(task_id=i, doc_id=i, path=f"/d/{i}.pdf", page_range=rng, max_file_bytes=1)


def _take(sizer: BatchSizer, weights: list[int], cpus: int) -> int:
    return sizer.take(iter(weights), len(weights), sum(weights), cpus)


def test_before_any_batch_finished_a_batch_is_a_few_tasks() -> None:
    sizer = BatchSizer(first=4)
    assert sizer.budget is None and sizer.size == 4
    assert _take(sizer, [weight(1000)] * 100, cpus=8) == 4
    assert _take(sizer, [weight(1000)] * 3, cpus=4) == 3
    assert _take(sizer, [], cpus=4) == 0


def test_a_batch_gathers_about_target_seconds_of_work_by_weight() -> None:
    sizer = BatchSizer(target_s=1.0)
    # 10 small documents kept a worker 0.1 s: 10 ms per 64 KiB-and-a-bit
    sizer.observe(busy_s=0.1, tasks=10, units=10 * weight(1000))
    assert sizer.size == 100  # a full batch of such documents: the window counts in these
    small = [weight(1000)] * 1000
    assert 95 <= _take(sizer, small, cpus=4) <= 105  # ~1 s of them
    big = [weight(50 * OVERHEAD_BYTES)] * 100  # files 50x the overhead: ~0.5 s each
    assert _take(sizer, big, cpus=4) == 2
    assert _take(sizer, small, cpus=1) <= sizer.most
    # the end of a run: less than half a batch a CPU waits, so each batch is a CPU's share
    assert _take(sizer, small[:120], cpus=4) == 30
    assert _take(sizer, small[:3], cpus=4) == 1


def test_the_window_keeps_a_batch_a_cpu_waiting_beside_those_in_flight() -> None:
    assert batches_in_flight(0) == 1 and window_batches(0) == 2
    assert batches_in_flight(2) == 4 and window_batches(2) == 6
    assert batches_in_flight(32.5) == 64 and window_batches(32.5) == 96


def test_the_estimate_follows_the_work_smoothly_and_ignores_nonsense() -> None:
    sizer = BatchSizer()
    sizer.observe(1.0, 10, 1000)
    first = sizer.s_per_unit
    sizer.observe(0.0, 10, 1000)
    sizer.observe(1.0, 0, 1000)
    sizer.observe(float("inf"), 10, 1000)
    assert sizer.s_per_unit == first
    sizer.observe(3.0, 10, 1000)
    assert first is not None and sizer.s_per_unit is not None
    assert first < sizer.s_per_unit < 3.0 / 1000


def test_page_ranges_and_suspects_travel_alone() -> None:
    assert not goes_alone(_task(1), set())
    assert goes_alone(_task(1, PageRange(0, 500)), set())
    assert goes_alone(_task(7), {7})


def test_nodes_read_the_drivers_paths_only_on_this_machine() -> None:
    here = {"192.0.2.10", "127.0.0.1"}
    assert on_this_machine(["127.0.0.2", "127.0.0.2"], here)
    assert on_this_machine(["192.0.2.10"], here)
    assert not on_this_machine(["192.0.2.10", "198.51.100.7"], here)
    assert on_this_machine([], here)
