#!/usr/bin/env python3
"""Load: latency, throughput, errors and memory of ``docmill serve`` under concurrent users.

    at 100 users on 2 cores: p95 <= 300 ms, >= 150 requests/s, zero 5xx, memory flat
    --tables (extracts ask for tables): at 100 users, p95 <= 500 ms, zero errors

A real ``docmill serve`` on loopback (local mode: no keys, no rate limit) and an asyncio
httpx client in this process. Each level runs N users for ``--duration`` seconds; a
user is closed-loop: it sends one request, waits for the answer, thinks, and sends the
next. A request is ``POST /v1/extract`` of a one-page PDF with probability ``--mix``,
else ``GET /v1/jobs/{id}`` of a job created (and finished) before the levels. Think
time is uniform in [0.5, 1.5] x ``--think`` (seeded), so a user asks about once every
``--think`` seconds plus the answer's latency. With ``--tables`` every extract sends the
form field ``settings={"extract.tables": true}`` ("upload a PDF, get its tables"), and
the warm-up checks that the answers hold tables.

Why a think time: with closed-loop users, requests/s = users / (latency + think)
(Little's law). Without think time, 100 users on a server doing 150 requests/s wait
100/150 = 0.67 s each on average, so p95 <= 300 ms and >= 150 requests/s cannot both
hold; the figure is then the saturation throughput. ``--saturation`` adds one level
without think time to measure it.

Per level: p50/p95/p99 (all requests, and per kind), requests/s (answers / duration),
error rate (non-2xx or no answer), 5xx, 429 rate, the server's RSS (the serve process
and all its descendants: HTTP workers, extract workers) at the level's start and end,
and the CPU seconds of the server (split: the serve process itself, i.e. HTTP, auth,
the extract driver thread; and its worker processes, i.e. parsing) and of this client.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus import REPO, SOURCE, ensure_venv, idle_share, usable_cores, write_results

TARGET = {"users": 100, "p95_ms": 300.0, "rps": 150.0}
TARGET_TABLES = {"users": 100, "p95_ms": 500.0, "errors": 0}
TABLES_SETTINGS = '{"extract.tables": true}'
DEFAULT_PDF = SOURCE / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"


@dataclass
class Sample:
    kind: str
    latency_s: float
    status: int  # 0: no answer (connection error, timeout)


@dataclass
class Level:
    users: int
    think_s: float
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    main_rss_start_mb: float = 0.0  # the serve process alone (HTTP, job ledger), no workers
    main_rss_end_mb: float = 0.0
    server_cpu_s: float = 0.0
    main_cpu_s: float = 0.0  # of it, the serve process alone (HTTP, auth, extract driver)
    client_cpu_s: float = 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def server_tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mb(pid: int, tree: bool = True) -> float:
    total = 0
    for proc in server_tree(pid) if tree else server_tree(pid)[:1]:
        try:
            total += proc.memory_info().rss
        except Exception:
            continue
    return total / 2**20


class CpuMeter:
    """CPU seconds of the server tree over a level. Extract workers are recycled every
    ``run.recycle_after`` documents, so the tree is sampled and each process counts from
    its first sample (0 when it started during the level) to its last; the CPU of a
    process after its last sample (at most one sampling interval) is missed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.started = False

    def sample(self) -> None:
        for proc in server_tree(self.pid):
            try:
                t = proc.cpu_times()
            except Exception:
                continue
            used = t.user + t.system
            self.first.setdefault(proc.pid, used if not self.started else 0.0)
            self.last[proc.pid] = used
        self.started = True

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)

    @property
    def main_seconds(self) -> float:
        """The serve process's own share (its workers excluded)."""
        return self.last.get(self.pid, 0.0) - self.first.get(self.pid, 0.0)


def start_server(args: argparse.Namespace, data: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    cmd = [
        sys.executable, "-m", "docmill", "serve", "--port", str(port), "--workers", str(args.workers),
        "--set", f"service.data_dir={data}", "--set", f"service.extract_workers={args.extract_workers}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    log = open(data.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"bench: the server did not start; see {data.parent / 'server.log'}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (one request at a time).

    httpx's AsyncClient spends several milliseconds of CPU a request at 100 connections,
    on the same cores as the server; this one sends prebuilt request bytes and reads
    the status line, the headers and a ``Content-Length`` body (uvicorn always sends
    one for these routes), so the load generator leaves the CPU to the server.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        try:
            return await asyncio.wait_for(self._request(raw), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            await self.close()
            return 0

    async def _request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for header in lines[1:]:
            name, _, value = header.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def raw_requests(port: int, pdf: bytes, job_id: str, key: str, settings: str | None) -> dict[str, bytes]:
    """The two requests as bytes: the multipart upload (with a ``settings`` field when
    given) and the job status."""
    boundary = "docmillbenchboundary7d1f"
    field = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n{settings}\r\n"
        if settings is not None else ""
    )
    body = field.encode() + (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"one.pdf\"\r\n"
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
    host = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
    extract = (
        f"POST /v1/extract HTTP/1.1\r\n{host}Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    job = f"GET /v1/jobs/{job_id} HTTP/1.1\r\n{host}\r\n".encode()
    return {"extract": extract, "job": job}


async def run_level(
    base: str, pid: int, users: int, think_s: float, args: argparse.Namespace, pdf: bytes, job_id: str,
    key: str,
) -> Level:
    import httpx

    level = Level(users, think_s)
    port = int(base.rsplit(":", 1)[1])
    settings = TABLES_SETTINGS if args.tables else None
    raw = raw_requests(port, pdf, job_id, key, settings)
    form = {"settings": settings} if settings is not None else {}
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=args.timeout, limits=limits, headers=headers) as client:
        level.rss_start_mb = level.rss_peak_mb = rss_mb(pid)
        level.main_rss_start_mb = rss_mb(pid, tree=False)
        meter = CpuMeter(pid)
        meter.sample()
        own0 = time.process_time()
        started = time.perf_counter()
        deadline = started + args.duration

        async def user(index: int) -> None:
            rng = random.Random(args.seed * 100_003 + users * 1009 + index)
            conn = RawConnection("127.0.0.1", port, args.timeout)
            await asyncio.sleep(rng.uniform(0, max(think_s, 0.05)))  # spread the first requests
            while time.perf_counter() < deadline:
                kind = "extract" if rng.random() < args.mix else "job"
                t0 = time.perf_counter()
                if args.client == "raw":
                    status = await conn.request(raw[kind])
                else:
                    try:
                        if kind == "extract":
                            files = {"file": ("one.pdf", pdf, "application/pdf")}
                            r = await client.post("/v1/extract", files=files, data=form)
                        else:
                            r = await client.get(f"/v1/jobs/{job_id}")
                        status = r.status_code
                    except httpx.HTTPError:
                        status = 0
                level.samples.append(Sample(kind, time.perf_counter() - t0, status))
                if think_s > 0:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
            await conn.close()

        async def sample_rss() -> None:
            while time.perf_counter() < deadline:
                level.rss_peak_mb = max(level.rss_peak_mb, await asyncio.to_thread(rss_mb, pid))
                await asyncio.to_thread(meter.sample)
                await asyncio.sleep(0.25)

        await asyncio.gather(sample_rss(), *(user(i) for i in range(users)))
        level.wall_s = time.perf_counter() - started
        meter.sample()
        level.server_cpu_s = meter.seconds
        level.main_cpu_s = meter.main_seconds
        level.client_cpu_s = time.process_time() - own0
        level.rss_end_mb = rss_mb(pid)
        level.main_rss_end_mb = rss_mb(pid, tree=False)
    return level


def summarise(level: Level) -> dict[str, Any]:
    s = level.samples
    n = len(s)

    def lat(kind: str | None) -> dict[str, float]:
        vals = [x.latency_s * 1000 for x in s if kind is None or x.kind == kind]
        return {f"p{q}_ms": round(percentile(vals, q), 1) for q in (50, 95, 99)} | {"n": len(vals)}

    return {
        "users": level.users,
        "think_s": level.think_s,
        "requests": n,
        "wall_s": round(level.wall_s, 2),
        "rps": round(n / level.wall_s, 1) if level.wall_s else 0.0,
        "all": lat(None),
        "extract": lat("extract"),
        "job": lat("job"),
        "error_rate": round(sum(1 for x in s if not 200 <= x.status < 300) / n, 4) if n else 0.0,
        "no_answer": sum(1 for x in s if x.status == 0),
        "status_5xx": sum(1 for x in s if x.status >= 500),
        "rate_429": round(sum(1 for x in s if x.status == 429) / n, 4) if n else 0.0,
        "statuses": {str(k): v for k, v in sorted(statistics_counter(x.status for x in s).items())},
        "rss_start_mb": round(level.rss_start_mb, 1),
        "rss_end_mb": round(level.rss_end_mb, 1),
        "rss_peak_mb": round(level.rss_peak_mb, 1),
        "main_rss_start_mb": round(level.main_rss_start_mb, 1),
        "main_rss_end_mb": round(level.main_rss_end_mb, 1),
        "server_cpu_s": round(level.server_cpu_s, 1),
        "server_cpu_ms_per_request": round(1000 * level.server_cpu_s / n, 2) if n else None,
        "main_cpu_s": round(level.main_cpu_s, 1),
        "workers_cpu_s": round(level.server_cpu_s - level.main_cpu_s, 1),
        "client_cpu_s": round(level.client_cpu_s, 1),
    }


def statistics_counter(values: Any) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import httpx

    pdf = args.pdf.read_bytes()
    data = work / "data"
    data.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    foreign_before = idle_share(1.0)
    from docmill.service.keys import KeyStore

    with KeyStore.open(data) as keys:  # API keys on, as in production; one key for every user
        _, key = keys.create(args.tier, "load bench")
    proc = start_server(args, data, port)
    levels: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
            job_id = client.post("/v1/jobs", files=[("files", ("one.pdf", pdf))]).json()["id"]
            deadline = time.monotonic() + 120
            while True:
                r = client.get(f"/v1/jobs/{job_id}")
                if r.status_code == 200 and r.json()["status"] in ("done", "failed"):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: the status job never finished: {r.status_code} {r.text[:300]}")
                time.sleep(0.2)
            form = {"settings": TABLES_SETTINGS} if args.tables else {}
            tables_found = 0
            for _ in range(20):  # warm up: imports in the extract workers, connections
                r = client.post("/v1/extract", files={"file": ("one.pdf", pdf)}, data=form)
                tables_found = len(r.json().get("tables", [])) if r.status_code == 200 else -1
            if args.tables and tables_found <= 0:  # the figure would not be about tables
                raise SystemExit(f"bench: --tables, but the answer holds no tables: {r.status_code} {r.text[:300]}")
        plan = [(u, args.think) for u in args.levels]
        if args.saturation:
            plan += [(u, 0.0) for u in args.saturation]
        for users, think in plan:
            level = asyncio.run(run_level(base, proc.pid, users, think, args, pdf, job_id, key))
            row = summarise(level)
            levels.append(row)
            print(f"  {line(row)}", flush=True)
    finally:
        stop_server(proc)
    foreign_after = idle_share(1.0)
    return {
        "target": TARGET_TABLES if args.tables else TARGET,
        "tables": args.tables,
        "tables_found": tables_found,
        "pdf": str(args.pdf),
        "pdf_bytes": len(pdf),
        "mix_extract": args.mix,
        "think_s": args.think,
        "duration_s": args.duration,
        "client": args.client,
        "server_workers": args.workers,
        "extract_workers": args.extract_workers,
        "cores": usable_cores(),
        "other_load_before": round(foreign_before, 3),
        "other_load_after": round(foreign_after, 3),
        "levels": levels,
    }


HEADER = (
    f"{'users':>5} {'think':>5} {'req':>6} {'rps':>6} {'p50':>6} {'p95':>6} {'p99':>6} "
    f"{'ex p95':>6} {'job p95':>7} {'err%':>5} {'5xx':>4} {'429%':>5} "
    f"{'rss MB start→end (peak)':>24} {'srv cpu':>7} {'ms/req':>6} {'cli cpu':>7}"
)


def line(r: dict[str, Any]) -> str:
    a = r["all"]
    rss = f"{r['rss_start_mb']:.0f}→{r['rss_end_mb']:.0f} ({r['rss_peak_mb']:.0f})"
    return (
        f"{r['users']:>5} {r['think_s']:>5.2f} {r['requests']:>6} {r['rps']:>6.1f} {a['p50_ms']:>6.0f} "
        f"{a['p95_ms']:>6.0f} {a['p99_ms']:>6.0f} {r['extract']['p95_ms']:>6.0f} {r['job']['p95_ms']:>7.0f} "
        f"{100 * r['error_rate']:>5.2f} {r['status_5xx']:>4} {100 * r['rate_429']:>5.2f} {rss:>24} "
        f"{r['server_cpu_s']:>7.1f} {r['server_cpu_ms_per_request'] or 0:>6.2f} {r['client_cpu_s']:>7.1f}"
    )


def report(fig: dict[str, Any]) -> str:
    out = [
        f"docmill serve under load: {fig['cores']} cores, {fig['server_workers']} HTTP worker(s), "
        f"extract_workers={fig['extract_workers']} (0: cores), {fig['duration_s']:.0f} s a level",
        f"  user: {100 * fig['mix_extract']:.0f}% POST /v1/extract ({Path(fig['pdf']).name}, "
        f"{fig['pdf_bytes']:,} bytes, 1 page"
        + (f"; tables on: {fig['tables_found']} found a page" if fig.get("tables") else "")
        + f"), else GET /v1/jobs/{{id}}; think {fig['think_s']} s x U[0.5,1.5]; client {fig['client']}",
        f"  other load on the machine: {100 * fig['other_load_before']:.0f}% before, "
        f"{100 * fig['other_load_after']:.0f}% after (of all cores; the client itself runs here too)",
        "  latencies in ms; rps = answers / level wall time; think 0.00 = saturation (no think time);",
        "  srv cpu = CPU s of the server and its workers in the level, ms/req = that / requests",
        "  " + HEADER,
        *("  " + line(r) for r in fig["levels"]),
    ]
    t = fig["target"]
    at = [r for r in fig["levels"] if r["users"] == t["users"] and r["think_s"] > 0]
    if at and fig.get("tables"):
        r = at[0]
        errors = round(r["error_rate"] * r["requests"])
        ok = r["all"]["p95_ms"] <= t["p95_ms"] and errors == t["errors"]
        out.append(
            f"  target (tables on) at {t['users']} users: p95 {r['all']['p95_ms']:.0f} ms (<= {t['p95_ms']:.0f}), "
            f"{errors} errors (0), {r['rps']:.1f} rps: {'met' if ok else 'NOT met'}"
        )
    elif at:
        r = at[0]
        ok = r["all"]["p95_ms"] <= t["p95_ms"] and r["rps"] >= t["rps"] and r["status_5xx"] == 0
        out.append(
            f"  target at {t['users']} users: p95 {r['all']['p95_ms']:.0f} ms (<= {t['p95_ms']:.0f}), "
            f"{r['rps']:.1f} rps (>= {t['rps']:.0f}), {r['status_5xx']} 5xx (0): {'met' if ok else 'NOT met'}"
        )
    split = [(r["users"], r["think_s"], r["main_cpu_s"], r["workers_cpu_s"], r["wall_s"]) for r in fig["levels"]]
    out.append("  server CPU split, s (serve process: HTTP, auth, extract driver / workers: parsing): " + ", ".join(
        f"{u}u{'' if th else ' sat'} {m:.1f} / {w:.1f} ({(m + w) / wall:.2f} cores)" for u, th, m, w, wall in split
    ))
    per = [r["server_cpu_ms_per_request"] for r in fig["levels"] if r["server_cpu_ms_per_request"]]
    if per:
        cost = statistics.median(per)
        out.append(
            f"  server CPU a request (median over levels): {cost:.2f} ms -> at most "
            f"{fig['cores'] * 1000 / cost:.0f} requests/s on {fig['cores']} free cores"
        )
    rss = [r["rss_end_mb"] for r in fig["levels"]]
    if rss:
        main = [r["main_rss_end_mb"] for r in fig["levels"]]
        out.append(
            f"  server RSS at the end of each level: {', '.join(f'{x:.0f}' for x in rss)} MB "
            f"(the serve process alone: {', '.join(f'{x:.0f}' for x in main)} MB)"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]  # noqa: E731
    parser.add_argument("--levels", type=ints, default=[10, 25, 50, 100, 150],
                        help="concurrent users per level (default: 10,25,50,100,150)")
    parser.add_argument("--saturation", type=ints, default=[100],
                        help="levels without think time, after the others (default: 100; '' for none)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds a level (default: %(default)s)")
    parser.add_argument("--think", type=float, default=0.5, help="mean think time of a user in s (default: %(default)s)")
    parser.add_argument("--mix", type=float, default=0.5,
                        help="share of POST /v1/extract; the rest is GET /v1/jobs/{id} (default: %(default)s)")
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF, help="the one-page PDF (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="docmill serve --workers (default: %(default)s)")
    parser.add_argument("--extract-workers", type=int, default=0,
                        help="service.extract_workers (default: 0 = usable cores)")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request in s")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="the users' HTTP client: a minimal asyncio HTTP/1.1 one, or httpx's "
                        "AsyncClient (several ms of CPU a request) (default: %(default)s)")
    parser.add_argument("--tier", default="unlimited",
                        help="tier of the users' API key (default: %(default)s: no limits; e.g. pro to"
                        " measure the limiter's 429s)")
    parser.add_argument("--tables", action="store_true",
                        help='every extract asks for tables (settings={"extract.tables": true}); '
                        "target: p95 <= 500 ms, zero errors at 100 users")
    parser.add_argument("--seed", type=int, default=1, help="seed of the users' choices and think times")
    parser.add_argument("--tmp", type=Path, help="parent of the scratch folder (default: the system temp)")
    parser.add_argument("--json", type=Path,
                        help="results file (default: bench/results/load.json, load_tables.json with --tables)")
    args = parser.parse_args(argv)
    if not args.pdf.is_file():
        raise SystemExit(f"bench: no {args.pdf}; pass --pdf")
    print(f"  {HEADER}", flush=True)
    with tempfile.TemporaryDirectory(prefix="docmill-bench-load-", dir=args.tmp) as tmp:
        fig = measure(args, Path(tmp))
    print(report(fig))
    name = "load_tables" if args.tables else "load"
    print(f"  -> {write_results(name, fig, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
