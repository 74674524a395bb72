"""A webhook receiver on loopback for tests, benches and rehearsals of ``kind = "webhook"``.

It accepts ``POST`` (any path), keeps every request it got (arrival order, the
``Idempotency-Key``, the JSON body, the status it answered) and misbehaves on a
schedule, by the request's number (from 1):

* ``fail_every``: every n-th answers 500;
* ``too_many_every``: every n-th answers 429 with ``Retry-After: retry_after``;
* ``slow_every`` / ``slow_s``: every n-th answers only after ``slow_s`` seconds;
* ``hold_from``: from that request on, each is recorded on arrival and then waits until
  :meth:`HookHandle.release` (a test kills the sender while requests are held);
* ``token``: requests without ``Authorization: Bearer <token>`` answer 401;
* ``echo_errors``: an error answer's body repeats the request's credentials and headers,
  as a careless receiver's might (the sender must keep them out of its messages).

Like a receiver that keeps the keys it has seen, :meth:`HookHandle.accepted` says which
records arrived under which keys::

    with serve_in_thread(HookConfig(token="s3cret", too_many_every=3)) as hook:
        url = hook.url                  # "http://127.0.0.1:PORT/hook"
        ...
        hook.accepted()                 # [(request key, item key, record), ...] answered 2xx

``python -m docmill.testkit.webhook --port 8099`` serves one and prints a line a request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HookConfig:
    """How the receiver behaves (see the module docstring); 0 turns a fault off."""

    token: str | None = None
    fail_every: int = 0
    too_many_every: int = 0
    retry_after: str = "1"
    slow_every: int = 0
    slow_s: float = 0.0
    hold_from: int = 0
    echo_errors: bool = False


@dataclass
class Received:
    """One request as it arrived."""

    number: int
    key: str | None
    body: Any  # the JSON (None when it was not JSON)
    headers: dict[str, str]
    status: int = 0  # what it answered (0: not yet: held, or the sender went away)


@dataclass
class _State:
    config: HookConfig
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    verbose: bool = False


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # stats for people: what arrived, as JSON
            with state.lock:
                data = [
                    {"number": r.number, "key": r.key, "status": r.status} for r in state.requests
                ]
            self._answer(200, json.dumps(data).encode(), "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {k: v for k, v in self.headers.items()}
            c = state.config
            with state.lock:
                entry = Received(len(state.requests) + 1, self.headers.get("Idempotency-Key"), body, headers)
                state.requests.append(entry)
            n = entry.number
            if c.hold_from and n >= c.hold_from:
                state.released.wait()
            if c.slow_every and n % c.slow_every == 0:
                time.sleep(c.slow_s)
            status, extra = 200, {}
            if c.token is not None and self.headers.get("Authorization") != f"Bearer {c.token}":
                status = 401
            elif c.fail_every and n % c.fail_every == 0:
                status = 500
            elif c.too_many_every and n % c.too_many_every == 0:
                status, extra = 429, {"Retry-After": c.retry_after}
            text = b'{"ok": true}'
            if status != 200:
                echo = {"authorization": self.headers.get("Authorization"), "headers": headers}
                text = json.dumps({"error": status, **(echo if c.echo_errors else {})}).encode()
            entry.status = status
            if state.verbose:
                print(f"{n:>5} {status} {entry.key} {len((body or {}).get('items', []))} record(s)", flush=True)
            self._answer(status, text, "application/json", extra)

        def _answer(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the sender went away (killed while we held its request)
                pass

    return Handler


class HookHandle:
    """A running receiver: ``url``, what it got, and the switches of a test."""

    def __init__(self, server: ThreadingHTTPServer, state: _State) -> None:
        self._server = server
        self._state = state
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}/hook"

    @property
    def config(self) -> HookConfig:
        return self._state.config

    def requests(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.requests)

    def accepted(self) -> list[tuple[str | None, str, dict[str, Any]]]:
        """(request key, record key, record) of every record in a request answered 2xx."""
        out: list[tuple[str | None, str, dict[str, Any]]] = []
        for r in self.requests():
            if 200 <= r.status < 300 and isinstance(r.body, dict):
                for item in r.body.get("items", []):
                    out.append((r.key, item["idempotency_key"], item["record"]))
        return out

    def arrived(self) -> list[tuple[str | None, str, dict[str, Any]]]:
        """As :meth:`accepted`, for every request that arrived, whatever it was answered."""
        out: list[tuple[str | None, str, dict[str, Any]]] = []
        for r in self.requests():
            if isinstance(r.body, dict):
                for item in r.body.get("items", []):
                    out.append((r.key, item["idempotency_key"], item["record"]))
        return out

    def release(self) -> None:
        """Let held requests (``hold_from``) go, and every later one."""
        self._state.config.hold_from = 0
        self._state.released.set()

    def hold(self, from_number: int) -> None:
        """Hold requests numbered ``from_number`` and up (until :meth:`release`)."""
        self._state.released.clear()
        self._state.config.hold_from = from_number

    def reconfigure(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self._state.config, key, value)

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def start(config: HookConfig | None = None, host: str = "127.0.0.1", port: int = 0,
          *, verbose: bool = False) -> HookHandle:
    state = _State(config or HookConfig(), verbose=verbose)
    server = ThreadingHTTPServer((host, port), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="docmill-hook", daemon=True).start()
    return HookHandle(server, state)


@contextmanager
def serve_in_thread(config: HookConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[HookHandle]:
    """A receiver on a daemon thread for the ``with`` block (port 0: any free port)."""
    handle = start(config, host, port)
    try:
        yield handle
    finally:
        handle.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docmill.testkit.webhook", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token-env", metavar="NAME", help="require Authorization: Bearer $NAME")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--too-many-every", type=int, default=0)
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--slow-every", type=int, default=0)
    parser.add_argument("--slow-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env) if args.token_env else None
    config = HookConfig(token=token, fail_every=args.fail_every, too_many_every=args.too_many_every,
                        retry_after=args.retry_after, slow_every=args.slow_every, slow_s=args.slow_s)
    handle = start(config, args.host, args.port, verbose=True)
    print(f"webhook receiver at {handle.url}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        handle.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
