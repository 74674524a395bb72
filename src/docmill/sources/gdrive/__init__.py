"""Google Drive sources (``gdrive://``): the HTTP client, credentials, quota and backend.

Imported only for a ``gdrive://`` URL (the registry names
``docmill.sources.gdrive.backend:DriveBackend``), so the CLI never pays for it otherwise.

* :mod:`.locations` — the URL forms (a SOURCE, a document);
* :mod:`.auth` — credentials by reference, token refresh policy, the service-account JWT;
* :mod:`.quota` — the per-user query quota (pure, time given);
* :mod:`.client` — Drive API v3 over httpx, errors translated in one place (reusable by
  a Drive delivery);
* :mod:`.backend` — the source backend: the lazy folder walk, change tokens, downloads
  and exports.
"""
