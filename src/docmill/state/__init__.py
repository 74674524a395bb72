"""The durable ledger: one SQLite file per output folder, the source of truth."""

from docmill.state.store import LedgerRow, Store, StoreBusyError, StoreError

__all__ = ["LedgerRow", "Store", "StoreBusyError", "StoreError"]
