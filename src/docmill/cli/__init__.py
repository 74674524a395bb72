"""The command line: a thin adapter over the library (``docmill.run`` and the ledger)."""
