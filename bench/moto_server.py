#!/usr/bin/env python3
"""moto's S3 server for ``bench/remote.py --server moto-cached``: ``moto_server -H HOST -p
PORT`` (werkzeug's threaded server, as moto runs it), with one change: the list of moto's
own service packages, which moto reads from its folder (a ``listdir`` and ~200 ``stat``
calls) twice for every request to tell which service a ``Host`` names, is read once.
What each request does is otherwise moto's; this only takes ~0.5 ms of a GET's CPU
that no real store spends.

    python bench/moto_server.py HOST PORT
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    from moto.server import main as moto_main

    moto_main(["-H", argv[0], "-p", argv[1]])


if __name__ == "__main__":
    main(sys.argv[1:])
