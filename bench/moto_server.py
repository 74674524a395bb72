#!/usr/bin/env python3
"""moto's S3 server for ``bench/remote.py --server moto-fast``: moto's own WSGI app (what
``moto_server`` serves) with two changes that a real store does not pay for either:

* served by uvicorn (its WSGI interface, h11), which keeps connections alive as S3 does,
  where ``moto_server``'s werkzeug development server answers every request with
  ``Connection: close`` (a TCP connection per GET, for the client and the server);
* the list of moto's own service packages, which moto reads from its folder (a
  ``listdir`` and ~200 ``stat`` calls) twice for every request to tell which service a
  ``Host`` names, read once.

What each request does is otherwise moto's: ~0.4 ms of a GET's CPU less (bench/README.md).

    python bench/moto_server.py HOST PORT
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    import uvicorn
    from moto.server import DomainDispatcherApplication, create_backend_app

    uvicorn.run(
        DomainDispatcherApplication(create_backend_app), host=argv[0], port=int(argv[1]),
        interface="wsgi", log_level="error", access_log=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
