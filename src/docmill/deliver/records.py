"""``records``: each part file, as it is closed (or rewritten), copied to the
destination under its own name (``part-000001.jsonl``): the destination mirrors
``DIR/records``. A part the ledger forgets is deleted there too. A put always
overwrites: a part's name is deterministic and its newest bytes are the right ones."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import BinaryIO

from docmill.deliver.destinations import Destination
from docmill.deliver.work import PartWork, Work, settle
from docmill.settings.deliveries import DeliverySpec
from docmill.sources.backend import Secrets
from docmill.sources.throttle import Retrier
from docmill.state.deliveries import DeliveryResult

CHUNK = 1 << 20


def chunks_of(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


class RecordsDelivery:
    def __init__(
        self, spec: DeliverySpec, destination: Destination, retrier: Retrier, secrets: Secrets,
        stop: threading.Event,
    ) -> None:
        self.spec = spec
        self._dest = destination
        self._retrier = retrier
        self._secrets = secrets
        self._stop = stop

    def deliver(self, work: Work) -> DeliveryResult:
        if not isinstance(work, PartWork):
            raise TypeError(f"a {self.spec.kind} delivery takes PartWork, not {type(work).__name__}")
        def attempt() -> None:
            if work.op == "delete":
                self._dest.delete(work.key)
                return
            try:
                handle = open(work.path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                return  # forgotten since: the ledger's reconcile turns this into a delete
            with handle:
                size = os.fstat(handle.fileno()).st_size
                self._dest.put(work.key, chunks_of(handle), size, None, f"{self.spec.name}-{work.item}")

        return settle(self.spec.name, work, self._retrier, attempt, self._secrets, self._stop)
