"""A run's deliveries (``[[deliver]]``): one lane per table, each with a bounded queue and
its own threads, fed from the ledger by the runner's thread after each commit.

The runner calls :meth:`RunDeliveries.step` once a turn. It records what the delivery
threads answered (one transaction), enqueues in the ledger what the part files now hold
(``records``: the parts written or rewritten; ``files``/``webhook``: the documents of
new parts, so a record is delivered once it is committed *and* in a part), and fills
each lane's queue from the ledger's pending rows up to its bound, after writing where
each item goes (a ``files`` target, a ``webhook`` batch). The main pipeline never waits
for a destination: a full queue only means the rows stay ``pending`` a while longer.

A destination that keeps failing fails deliveries, never documents: after ``breaker``
failed items in a row a lane stops for this run and its rows stay pending for the next
run (``docmill retry --delivery`` puts the failed ones back). A stopped run (Ctrl-C)
leaves undelivered rows pending. Every step of an item can be repeated after a crash at
any moment (``docmill.deliver``), so a rerun completes each destination exactly once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docmill.deliver.destinations import Destination, check_destination, open_destination
from docmill.deliver.errors import DeliveryCategory
from docmill.deliver.files import FilesDelivery
from docmill.deliver.records import RecordsDelivery
from docmill.deliver.values import source_prefixes, template_values
from docmill.deliver.webhook import (
    WebhookDelivery,
    batch_key,
    record_key,
    resolve_headers,
    secret_values,
)
from docmill.deliver.work import FileWork, HookWork, PartWork, Work, items_of, new_retrier
from docmill.engine.sink import RECORDS_DIR
from docmill.outputs import part_name
from docmill.settings import Settings, SettingsError
from docmill.settings.deliveries import DeliverySpec, Template, TemplateError
from docmill.sources.backend import Backends, Secrets
from docmill.sources.confine import Roots
from docmill.sources.urls import UrlError, check_no_secret, is_remote, parse
from docmill.state import Store
from docmill.state.deliveries import DeliveryDoc, DeliveryLedger, DeliveryResult, PendingDelivery

log = logging.getLogger("docmill.deliver")

QUEUE_PER_THREAD = 4  # a lane's queue holds this many items per thread


@dataclass
class _Lane:
    spec: DeliverySpec
    deliver: Callable[[Work], DeliveryResult]
    queue: queue.Queue[Work | None]
    threads: list[threading.Thread] = field(default_factory=list)
    inflight: set[int] = field(default_factory=set)
    dirty: bool = True  # the ledger may have rows to feed
    stopped: bool = False  # the breaker opened (or the run stops)
    failed_in_a_row: int = 0
    done: int = 0
    failed: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    template: Template | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def check_deliveries(specs: Sequence[DeliverySpec], sources: Sequence[str]) -> None:
    """Before the run: each destination can be written (scheme known and installed, no
    secret in a URL); ``mode = "move"`` from a remote SOURCE needs a destination for that
    store (to remove the object). Raises :class:`SettingsError` saying what to do."""
    for spec in specs:
        where = f"deliver {spec.name}"
        if spec.kind == "webhook":
            try:
                check_no_secret(spec.to)
            except UrlError as exc:
                raise SettingsError(f"{where}: {exc}") from None
            continue
        root = spec.to if spec.kind == "records" else spec.template.root
        try:
            check_destination(root)
        except SettingsError as exc:
            raise SettingsError(f"{where}: {exc}") from None
        if spec.kind == "files" and spec.mode == "move":
            for source in sources:
                if is_remote(source):
                    try:
                        check_destination(f"{parse(source).store}/")
                    except SettingsError as exc:
                        raise SettingsError(
                            f"{where}: mode = \"move\" removes each source, and {exc}"
                        ) from None


class RunDeliveries:
    """The lanes of one run (see the module docstring)."""

    def __init__(
        self, settings: Settings, out_dir: Path, sources: Sequence[str], roots: Roots | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._records_dir = out_dir / RECORDS_DIR
        self._prefixes = source_prefixes(sources)
        self._roots = roots
        self._env = dict(os.environ if env is None else env)
        self._secrets = Secrets.from_environ(self._env)
        self._stop = threading.Event()
        self._results: queue.SimpleQueue[DeliveryResult] = queue.SimpleQueue()
        self._lanes: list[_Lane] = []
        self._ledger_id = ""
        self._last_part = 0
        self._sink_changes = -1
        self._backends: Backends | None = None
        self._stores: dict[str, Destination] = {}
        self._lock = threading.Lock()

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls, settings: Settings, out_dir: Path, store: Store, sources: Sequence[str],
        roots: Roots | None,
    ) -> RunDeliveries | None:
        """The run's lanes, started, with the ledger brought up to date (every part and
        committed record enqueued); None without ``[[deliver]]`` tables."""
        specs = settings.deliver
        if not specs:
            return None
        check_deliveries(specs, sources)
        run = cls(settings, out_dir, sources, roots)
        ledger = store.deliveries
        run._ledger_id = ledger.ledger_id()
        try:
            for spec in specs:
                run._lanes.append(run._lane(spec))
        except BaseException:
            run.close(drain=False)
            raise
        run._enqueue(store, from_part=0)
        run._last_part = store.next_part_number() - 1
        log.info(
            "deliveries: %s",
            ", ".join(f"{s.name} ({s.kind} to {s.to})" for s in specs),
        )
        return run

    def _lane(self, spec: DeliverySpec) -> _Lane:
        retrier = new_retrier(spec.retries, spec.requests_per_s, self._stop)
        lane_queue: queue.Queue[Work | None] = queue.Queue(spec.threads * QUEUE_PER_THREAD)
        closers: list[Callable[[], None]] = []
        template: Template | None = None
        deliver: Callable[[Work], DeliveryResult]
        if spec.kind == "webhook":
            headers = resolve_headers(spec, self._env)
            secrets = self._secrets.with_values(secret_values(spec, self._env))
            hook = WebhookDelivery(spec, headers, retrier, secrets, self._stop)
            closers.append(hook.close)
            deliver = hook.deliver
        else:
            root = spec.to if spec.kind == "records" else spec.template.root
            destination = open_destination(root, secrets=self._secrets, timeout_s=spec.timeout_s,
                                           options=self._settings.sources)
            closers.append(destination.close)
            if spec.kind == "records":
                deliver = RecordsDelivery(spec, destination, retrier, self._secrets, self._stop).deliver
            else:
                template = spec.template
                deliver = FilesDelivery(
                    spec, destination, retrier, self._secrets, self._stop, roots=self._roots,
                    backends=self._source_backends, source_store=self._source_store,
                ).deliver
        lane = _Lane(spec, deliver, lane_queue, template=template, closers=closers)
        for i in range(spec.threads):
            thread = threading.Thread(
                target=self._work, args=(lane,), name=f"docmill-deliver-{spec.name}-{i}", daemon=True
            )
            thread.start()
            lane.threads.append(thread)
        return lane

    def _source_backends(self) -> Backends:
        with self._lock:
            if self._backends is None:
                self._backends = Backends.load(self._settings.sources)
            return self._backends

    def _source_store(self, url: str) -> tuple[Destination, str]:
        parsed = parse(url)
        with self._lock:
            found = self._stores.get(parsed.store)
            if found is None:
                found = open_destination(f"{parsed.store}/", secrets=self._secrets, timeout_s=30.0,
                                         options=self._settings.sources)
                self._stores[parsed.store] = found
        return found, parsed.path

    # --- the threads --------------------------------------------------------------------

    def _work(self, lane: _Lane) -> None:
        while True:
            work = lane.queue.get()
            if work is None:
                return
            try:
                result = lane.deliver(work)
            except BaseException as exc:  # never expected (errors are data): keep the lane
                log.error("delivery %s: %s", lane.spec.name, self._secrets.scrub(repr(exc)))
                result = DeliveryResult(lane.spec.name, items_of(work), "failed",
                                        str(DeliveryCategory.ERROR), self._secrets.scrub(repr(exc)))
            self._results.put(result)

    # --- the runner's step ----------------------------------------------------------------

    def step(self, store: Store, sink_changes: int) -> None:
        """Record answers, enqueue what new or rewritten parts hold, feed the lanes."""
        ledger = store.deliveries
        self._collect(ledger)
        if sink_changes != self._sink_changes:
            self._sink_changes = sink_changes
            self._enqueue(store, from_part=self._last_part + 1)
            self._last_part = max(self._last_part, store.next_part_number() - 1)
        for lane in self._lanes:
            if lane.dirty and not lane.stopped and not self._stop.is_set():
                self._feed(ledger, lane)

    @property
    def busy(self) -> bool:
        """Items in flight, or rows a lane will still take in this run."""
        return any(lane.inflight or (lane.dirty and not lane.stopped) for lane in self._lanes)

    def _enqueue(self, store: Store, from_part: int) -> None:
        ledger = store.deliveries
        for lane in self._lanes:
            spec = lane.spec
            if spec.kind == "records":
                added = ledger.reconcile_parts(spec.name)
            else:
                added = ledger.enqueue_documents(spec.name, spec.delivered_statuses, from_part)
            if added:
                lane.dirty = True

    def _collect(self, ledger: DeliveryLedger) -> None:
        results: list[DeliveryResult] = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                break
        if not results:
            return
        ledger.finish(results)
        lanes = {lane.spec.name: lane for lane in self._lanes}
        for res in results:
            lane = lanes[res.name]
            for item, _version in res.items:
                lane.inflight.discard(item)
            lane.dirty = True
            if res.state == "done":
                lane.done += len(res.items)
                lane.failed_in_a_row = 0
            elif res.state == "failed":
                self._failed(lane, res)

    def _failed(self, lane: _Lane, res: DeliveryResult) -> None:
        lane.failed += len(res.items)
        category = res.category or str(DeliveryCategory.ERROR)
        lane.categories[category] = lane.categories.get(category, 0) + len(res.items)
        lane.failed_in_a_row += 1
        log.warning(
            "delivery %s: item %s failed (%s): %s", lane.spec.name,
            ",".join(str(i) for i, _v in res.items[:5]), category, res.message,
        )
        if lane.failed_in_a_row >= lane.spec.breaker and not lane.stopped:
            lane.stopped = True
            log.warning(
                "delivery %s: %d failures in a row: stopped for this run; what is left stays "
                "pending for the next run", lane.spec.name, lane.failed_in_a_row,
            )

    # --- feeding ------------------------------------------------------------------------

    def _feed(self, ledger: DeliveryLedger, lane: _Lane) -> None:
        room = lane.queue.maxsize - lane.queue.qsize()
        if room <= 0:
            return
        unit = lane.spec.batch if lane.spec.kind == "webhook" else 1
        limit = room * unit + len(lane.inflight)
        rows = ledger.pending(lane.spec.name, 0, limit)
        fresh = [r for r in rows if r.item not in lane.inflight]
        works: list[Work] = []
        if lane.spec.kind == "records":
            works = self._parts(ledger, lane, fresh)
        elif lane.spec.kind == "files":
            works = self._files(ledger, lane, fresh)
        elif fresh:
            works = self._hooks(ledger, lane, fresh)
        if len(rows) < limit or not works:
            lane.dirty = False  # every pending row is fed, in flight, or settled just now
        for work in works[:room]:
            lane.queue.put_nowait(work)
            lane.inflight.update(item for item, _v in items_of(work))
        if len(works) > room:
            lane.dirty = True

    def _parts(self, ledger: DeliveryLedger, lane: _Lane, rows: list[PendingDelivery]) -> list[Work]:
        formats = ledger.part_formats([r.item for r in rows if r.op == "put"])
        works: list[Work] = []
        plans: list[tuple[int, float, str]] = []
        for row in rows:
            if row.op == "put":
                fmt = formats.get(row.item)
                if fmt is None:  # forgotten since it was enqueued: deleted there too
                    key = row.target or part_name(row.item, "jsonl")
                    works.append(PartWork(row.item, row.version, "delete", self._records_dir / key, key))
                    continue
                key = part_name(row.item, fmt)
                if row.target != key:
                    plans.append((row.item, row.version, key))
                works.append(PartWork(row.item, row.version, "put", self._records_dir / key, key))
            else:
                key = row.target or part_name(row.item, "jsonl")
                works.append(PartWork(row.item, row.version, "delete", self._records_dir / key, key))
        if plans:
            ledger.plan(lane.spec.name, targets=plans)
        return works

    def _files(self, ledger: DeliveryLedger, lane: _Lane, rows: list[PendingDelivery]) -> list[Work]:
        name = lane.spec.name
        template = lane.template
        assert template is not None
        docs = ledger.documents([r.item for r in rows])
        works: list[Work] = []
        plans: list[tuple[int, float, str]] = []
        planned: dict[str, tuple[int, str | None]] = {}  # targets of this batch
        for row in rows:
            doc = docs.get(row.item)
            if doc is None:
                continue
            target = row.target
            if target is None:
                try:
                    target = template.render(template_values(template, doc, self._prefixes))
                except TemplateError as exc:
                    ledger.fail(name, [(row.item, row.version)], str(DeliveryCategory.NOT_ALLOWED), str(exc))
                    continue
                other = planned.get(target) or ledger.holder(name, target, row.item)
                if other is not None and other[1] != doc.record.sha256:
                    ledger.fail(
                        name, [(row.item, row.version)], str(DeliveryCategory.CONFLICT),
                        f"{target}: document {other[0]} (other content) goes there already",
                    )
                    continue
                plans.append((row.item, row.version, target))
                planned[target] = (row.item, doc.record.sha256)
            works.append(FileWork(row.item, row.version, doc, target, row.previous))
        if plans:  # where each goes is in the ledger before any copy
            ledger.plan(name, targets=plans)
        return works

    def _hooks(self, ledger: DeliveryLedger, lane: _Lane, rows: list[PendingDelivery]) -> list[Work]:
        spec = lane.spec
        groups: list[list[PendingDelivery]] = []
        planned: set[int] = set()
        new: list[PendingDelivery] = []
        for row in rows:
            if row.batch is None:
                new.append(row)
            elif row.batch not in planned:  # planned by an earlier run: the same members
                planned.add(row.batch)
                waiting = [m for m in ledger.batch(spec.name, row.batch) if m.item not in lane.inflight]
                if waiting:
                    groups.append(waiting)
        fresh_groups = [new[i : i + spec.batch] for i in range(0, len(new), spec.batch)]
        if fresh_groups:  # the members of each batch are in the ledger before it is sent
            ledger.plan(
                spec.name,
                batches=[(r.item, r.version, group[0].item) for group in fresh_groups for r in group],
            )
        groups += fresh_groups
        docs = ledger.documents([r.item for group in groups for r in group])
        works: list[Work] = []
        for group in groups:
            members: list[tuple[int, float, str, DeliveryDoc]] = []
            for row in group:
                doc = docs.get(row.item)
                if doc is not None:
                    key = record_key(self._ledger_id, row.item, doc.record.sha256, row.generation)
                    members.append((row.item, row.version, key, doc))
            if members:
                key = batch_key(self._ledger_id, [m[2] for m in members])
                works.append(HookWork(key, tuple(members)))
        return works

    # --- the end ----------------------------------------------------------------------------

    def stop(self) -> None:
        """No more feeding; waits (backoffs, the rate limit) end at once, their items
        staying pending."""
        self._stop.set()

    def close(self, *, drain: bool, store: Store | None = None) -> None:
        """Stop the threads (``drain``: let the requests in progress finish), record the
        last answers, log each delivery's counts."""
        self._stop.set()
        for lane in self._lanes:
            while True:  # what waits in the queue was never tried: it stays pending
                try:
                    lane.queue.get_nowait()
                except queue.Empty:
                    break
            for _ in lane.threads:
                lane.queue.put(None)
        for lane in self._lanes:
            for thread in lane.threads:
                thread.join(timeout=None if drain else 2.0)
        if store is not None:
            self._collect(store.deliveries)
        for lane in self._lanes:
            for closer in lane.closers:
                try:
                    closer()
                except Exception:
                    pass
            if lane.done or lane.failed:
                failures = ", ".join(f"{k} {v}" for k, v in sorted(lane.categories.items()))
                log.info(
                    "delivery %s: %d delivered, %d failed%s", lane.spec.name, lane.done,
                    lane.failed, f" ({failures})" if failures else "",
                )
        for destination in self._stores.values():
            destination.close()
        if self._backends is not None:
            self._backends.close()
