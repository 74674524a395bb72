"""Deliveries: where a run's results go besides ``DIR/records`` (``[[deliver]]``).

Split as scrapy splits an exporter from a storage: what is sent (``records.py``: part
files; ``files.py``: source documents; ``webhook.py``: records as JSON) and where it
lands (``destinations.py``: the seam, one implementation per URL scheme, ``local.py``
and ``s3.py`` built in). Each delivery's state per item lives in the ledger
(``docmill.state.deliveries``); ``docmill.engine.delivery`` runs them on their own
threads behind bounded queues. Nothing here writes the ledger, and nothing raises for
one item: every answer is a :class:`~docmill.state.deliveries.DeliveryResult`.
"""

from docmill.deliver.errors import DeliveryCategory, DeliveryFailed, Stopped

__all__ = ["DeliveryCategory", "DeliveryFailed", "Stopped"]
