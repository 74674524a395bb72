"""The executor seam: where the runner hands tasks out, and the registry by kind.

The runner keeps everything a run owns (enumeration, the ledger, dedup, commits, part
files, progress) and gives only tasks (a document, or a page range of one) to an
executor, which answers each with a :class:`ProcessOutcome`, failures included. An
executor is what :class:`~docmill.engine.pool.WorkerPool` is to the runner:

* ``window``: how many documents the runner keeps claimed for it (read every turn, so
  an executor whose capacity changes, a cluster gaining or losing nodes, moves it);
* ``idle``: how many more tasks it takes now; ``busy``: whether it holds work;
* ``submit(task)``; ``poll(wait_s)``: the (task, outcome) pairs finished, waiting up to
  ``wait_s``; every limit is enforced inside: past ``run.timeout_s`` a task ends
  ``timeout``, over ``run.memory_mb`` ``memory``, a worker that dies ``crash``;
* ``take_returned()``: tasks that never ran because the worker they were queued on was
  killed for another task: sent again, no attempt counted;
* ``shutdown(kill=)``: stop; the tasks still in flight are returned (they go back to
  pending); ``describe()``: nodes and workers for the progress line (None: say nothing).

Executors are found by ``run.executor``: :data:`BUILTIN_EXECUTORS` (``local``: the
supervised worker processes of this machine; ``ray``: the same tasks on a Ray cluster,
``docmill.executors.ray``), then the entry points of the group ``docmill.executors``
(a plugin registers ``name = "pkg.module:Factory"`` exactly as the built-ins are
listed), or a table a library caller passes. An unknown kind is refused with the list
of the known ones. A factory takes an :class:`ExecutorContext`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from docmill.settings import Settings, SettingsError

if TYPE_CHECKING:
    from docmill.model import ProcessOutcome
    from docmill.processors import Task
    from docmill.sources.confine import Roots

__all__ = [
    "BUILTIN_EXECUTORS",
    "Executor",
    "ExecutorContext",
    "ExecutorError",
    "ExecutorFactory",
    "ExecutorState",
    "known_executors",
    "open_executor",
]

ENTRY_POINT_GROUP = "docmill.executors"

# kind -> "module:factory"; a plugin's entry point has exactly this form
BUILTIN_EXECUTORS: Mapping[str, str] = MappingProxyType(
    {
        "local": "docmill.engine.pool:local_executor",
        "ray": "docmill.executors.ray:RayExecutor",
    }
)


class ExecutorError(RuntimeError):
    """The executor cannot run (its package is missing, its cluster unreachable): a
    run-level error, raised before any document is given to it."""


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """What the progress line shows of an executor: its nodes and worker slots."""

    nodes: int
    workers: int


@dataclass(frozen=True, slots=True)
class ExecutorContext:
    """What an executor is built from: the run's settings and clock, and the roots a
    confined run reads inside (an executor that reads files itself opens them there)."""

    settings: Settings
    clock: Callable[[], float] = time.monotonic
    roots: Roots | None = None


class Executor(Protocol):
    """What the runner needs from an executor (see the module's docstring)."""

    @property
    def window(self) -> int: ...

    @property
    def idle(self) -> int: ...

    @property
    def busy(self) -> int: ...

    def prepare(self) -> None: ...

    def start(self) -> None: ...

    def submit(self, task: Task) -> None: ...

    def poll(self, wait_s: float) -> list[tuple[Task, ProcessOutcome]]: ...

    def take_returned(self) -> list[Task]: ...

    def shutdown(self, *, kill: bool = False) -> list[Task]: ...

    def describe(self) -> ExecutorState | None: ...


ExecutorFactory = Callable[[ExecutorContext], Executor]


def _plugin_table() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_executors(table: Mapping[str, str | ExecutorFactory] | None = None) -> list[str]:
    """The kinds ``run.executor`` may name: the built-ins, the plugins' and ``table``'s."""
    return sorted({**_plugin_table(), **BUILTIN_EXECUTORS, **(table or {})})


def open_executor(
    context: ExecutorContext, table: Mapping[str, str | ExecutorFactory] | None = None
) -> Executor:
    """The executor ``context.settings.run.executor`` names (not started yet).

    ``table`` (a library caller's, e.g. a benchmark's) is looked up first, then the
    built-ins, then the ``docmill.executors`` entry points. Raises
    :class:`SettingsError` for an unknown kind (listing the known ones) and
    :class:`ExecutorError` when the executor cannot be built.
    """
    kind = context.settings.run.executor.strip().lower()
    target: str | ExecutorFactory | None = (table or {}).get(kind) or BUILTIN_EXECUTORS.get(kind)
    if target is None:
        target = _plugin_table().get(kind)
    if target is None:
        raise SettingsError(
            f"run.executor: unknown executor {kind!r}; known executors: "
            f"{', '.join(known_executors(table))}"
        )
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            factory: ExecutorFactory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ExecutorError(f"run.executor={kind}: cannot load {target}: {exc}") from None
    else:
        factory = target
    return factory(context)
