"""The remote stores' request policies (pure, clock given) and the spool's bound."""

from __future__ import annotations

import hashlib
import threading

import pytest

from docmill.model import ErrorInfo
from docmill.settings import SourceSettings
from docmill.sources.backend import BackendError, Backends, RemoteObject, Secrets
from docmill.sources.spool import Spool, fetch, spool_name
from docmill.sources.throttle import Backoff, RequestGate, Retrier, TransientError
from docmill.sources.urls import UrlError, check_no_secret, is_remote, parse


def test_gate_lets_a_burst_through_then_spaces_requests_at_the_rate() -> None:
    gate = RequestGate(rate=10)
    waits = [gate.take(100.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10  # one second's worth at once
    assert waits[10] == pytest.approx(0.1) and waits[11] == pytest.approx(0.2)
    # a second later the bucket has refilled by the rate (less what was borrowed)
    assert gate.take(101.2) == 0.0


def test_gate_over_any_window_admits_no_more_than_the_rate_allows() -> None:
    gate = RequestGate(rate=5)
    now, sent = 0.0, []
    for _ in range(200):
        now += gate.take(now)
        sent.append(now)
    for start in range(len(sent)):
        window = [t for t in sent if sent[start] <= t < sent[start] + 10.0]
        assert len(window) <= 5 * 10 + 5  # the rate over 10 s, plus the burst


def test_unlimited_gate_still_honours_a_pause() -> None:
    gate = RequestGate(rate=0)
    assert gate.take(5.0) == 0.0
    gate.pause(until=7.5)
    assert gate.take(6.0) == pytest.approx(1.5)
    assert gate.take(8.0) == 0.0


def test_backoff_is_full_jitter_capped_and_never_sooner_than_retry_after() -> None:
    b = Backoff(base_s=0.5, cap_s=8.0)
    assert b.delay(1, None, 0.999) < 0.5
    assert b.delay(3, None, 0.5) == pytest.approx(1.0)  # half of 0.5 * 2**2
    assert b.delay(10, None, 0.999) < 8.0  # capped
    assert b.delay(1, 3.0, 0.0) == 3.0  # Retry-After wins over a short jitter
    assert b.delay(1, 10_000.0, 0.0) == 24.0  # ... within reason


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_retrier_retries_transient_errors_and_pauses_on_throttling() -> None:
    clock = FakeClock()
    retrier = Retrier(0, 5, Backoff(0.2, 5.0), clock=clock, sleep=clock.sleep, rand=lambda: 0.5)
    answers: list[Exception | str] = [
        TransientError("slow", throttled=True, retry_after_s=2.0, reason="503"),
        TransientError("gone", reason="connection"),
        "ok",
    ]

    def request() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retrier.call(request) == "ok"
    assert clock.slept == [2.0, 0.2]  # Retry-After, then 0.5 x 0.4
    assert retrier.stats == {"requests": 3, "retry/503": 1, "retry/connection": 1}


def test_retrier_gives_up_after_its_tries() -> None:
    clock = FakeClock()
    retrier = Retrier(0, 3, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)

    def request() -> str:
        raise TransientError("503", reason="503", throttled=True)

    with pytest.raises(TransientError):
        retrier.call(request)
    assert retrier.stats["requests"] == 3 and retrier.stats["gave_up"] == 1


def test_urls_are_told_from_paths_and_secrets_in_them_refused() -> None:
    assert is_remote("s3://b/p") and is_remote("SFTP://h/x") and is_remote("https://h/a.pdf")
    assert not is_remote("/data/x") and not is_remote("@list.txt") and not is_remote("file:///x")
    assert not is_remote("rel/s3://x")
    url = parse("s3://bucket/a dir/file#1?.pdf")
    assert (url.scheme, url.netloc, url.path) == ("s3", "bucket", "a dir/file#1?.pdf")
    assert str(url) == "s3://bucket/a dir/file#1?.pdf"
    assert url.child("x/y.pdf") == "s3://bucket/a dir/file#1?.pdf/x/y.pdf"
    check_no_secret("sftp://alice@host:2222/data")
    for bad in ("sftp://alice:hunter2@host/x",
                "https://h/f.pdf?X-Amz-Signature=abc&X-Amz-Credential=k",
                "https://h/f.pdf?sig=abc", "https://h/f.pdf?access_token=abc"):
        with pytest.raises(UrlError):
            check_no_secret(bad)


def test_unknown_scheme_is_refused_with_the_known_ones() -> None:
    backends = Backends(SourceSettings())
    with pytest.raises(UrlError, match=r"unknown source scheme nope://; known: gdrive, s3, s3a"):
        backends.check("nope://x/y")
    assert backends.check("s3://bucket/p").netloc == "bucket"
    # gdrive:// is docmill's own Drive backend (fsspec's gdrivefs protocol does not take it),
    # and its URL forms are checked without a request
    assert backends.check("gdrive://1AbCdEf").netloc == "1AbCdEf"
    with pytest.raises(UrlError, match="needs a shared drive's name"):
        backends.check("gdrive://shared/")


def test_secrets_are_scrubbed_longest_first() -> None:
    secrets = Secrets.from_environ(
        {"AWS_SECRET_ACCESS_KEY": "abcdef123456", "MY_TOKEN": "abcdef123456-more",
         "HOME": "/root", "SHORT_KEY": "abc"}
    )
    assert secrets.scrub("a abcdef123456-more b abcdef123456 /root abc") == (
        "a [secret] b [secret] /root abc"
    )


def test_spool_reservations_wait_for_room_and_never_exceed_it(tmp_path: object) -> None:
    spool = Spool(str(tmp_path), 100)
    assert spool.reserve(1, 60) and spool.reserve(2, 40)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(spool.reserve(3, 50)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and spool.used == 100  # full: the third download waits
    spool.discard(1)
    waiter.join(10)
    assert got == [True] and spool.used == 90 and spool.high_water == 100
    closing = threading.Thread(target=lambda: got.append(spool.reserve(4, 80)))
    closing.start()
    spool.close()
    closing.join(10)
    assert got == [True, False]  # the run ended: the waiting download gives up


class FlakyBackend:
    """A backend whose first read breaks halfway (a dropped connection)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[int] = []

    def list(self, url: object, select: object) -> list[RemoteObject]:
        return []

    def stat(self, url: str) -> RemoteObject | None:
        return None

    def read(self, obj: RemoteObject, offset: int):  # type: ignore[no-untyped-def]
        self.reads.append(offset)
        yield self.data[offset : offset + 7]
        if len(self.reads) == 1:
            raise TransientError("dropped", reason="connection")
        yield self.data[offset + 7 :]

    def close(self) -> None:
        pass


def test_fetch_resumes_a_dropped_download_from_its_last_byte(tmp_path: object) -> None:
    import hashlib
    from pathlib import Path

    data = b"0123456789abcdefghij"
    backend = FlakyBackend(data)
    clock = FakeClock()
    backends = Backends(
        SourceSettings(), {"mem": lambda ctx: backend}, secrets=Secrets(frozenset()),
        retrier=lambda: Retrier(0, 3, clock=clock, sleep=clock.sleep, rand=lambda: 0.0),
    )
    spool = Spool(Path(str(tmp_path)), 1000)
    result = fetch(backends, spool, 7, "mem://store/a/report.pdf", len(data), "v1", 10_000)
    assert result == (hashlib.sha256(data).hexdigest(), "")
    assert backend.reads == [0, 7]
    assert spool.path(7, "mem://store/a/report.pdf").read_bytes() == data
    assert spool_name("s3://b/x/we?ird:na\\me.pdf") == "we_ird_na_me.pdf"
    assert spool_name("https://h/get?id=3") == "get_id=3" and spool_name("s3://b/") == "b"
    spool.discard(7)
    assert list(Path(str(tmp_path)).iterdir()) == [] and spool.used == 0


class AccountBackend:
    """A backend whose store is the account (every URL of its scheme), whose objects of
    unknown size are at most 64 bytes, and which refuses one object as too large."""

    store_per_scheme = True
    unknown_size_at_most = 64

    def __init__(self, context: object) -> None:
        self.context = context

    def list(self, url: object, select: object) -> list[RemoteObject]:
        return []

    def stat(self, url: str) -> RemoteObject | None:
        return None

    def read(self, obj: RemoteObject, offset: int):  # type: ignore[no-untyped-def]
        if obj.url.endswith("huge"):
            raise BackendError(f"{obj.url}: over the store's export limit", too_large=True)
        yield b"exported"

    def close(self) -> None:
        pass


def test_a_store_per_scheme_backend_serves_every_url_of_its_scheme(tmp_path: object) -> None:
    from pathlib import Path

    from docmill.model import FailureCategory

    backends = Backends(SourceSettings(), {"acct": AccountBackend}, secrets=Secrets(frozenset()),
                        retrier=lambda: Retrier(0, 2, sleep=lambda s: None))
    one, _ = backends.for_url("acct://folder-a/x")
    two, _ = backends.for_url("acct://folder-b/y")
    assert one is two and list(backends.stats()) == ["acct://"]
    assert one.context.store.netloc == ""  # type: ignore[attr-defined]
    spool = Spool(Path(str(tmp_path)), 1000)
    held: list[int] = []
    real_reserve = spool.reserve
    spool.reserve = lambda doc_id, n: held.append(n) or real_reserve(doc_id, n)  # type: ignore[method-assign]
    sha, why = fetch(backends, spool, 1, "acct://folder-a/1/doc", -1, "v", 10_000)  # type: ignore[misc]
    assert held == [64] and why == "" and sha  # not the whole spool for an unknown size
    assert spool.used == len(b"exported")  # what it did not use was given back
    failed = fetch(backends, spool, 2, "acct://folder-a/2/huge", -1, "v", 10_000)
    assert failed is not None and failed[0] is None
    assert isinstance(failed[1], ErrorInfo) and failed[1].category == FailureCategory.TOO_LARGE


class StoreOfObjects:
    """A backend over a dict of objects; reading a name in ``broken`` fails for good. No
    read starts before ``opened`` is set (a test sets it once it has asked for them all)."""

    def __init__(self, objects: dict[str, bytes], broken: frozenset[str] = frozenset()) -> None:
        self.objects = objects
        self.broken = broken
        self.reads: list[str] = []
        self.opened = threading.Event()
        self.opened.set()
        self._lock = threading.Lock()

    def list(self, url: object, select: object) -> list[RemoteObject]:
        return []

    def stat(self, url: str) -> RemoteObject | None:
        return None

    def read(self, obj: RemoteObject, offset: int):  # type: ignore[no-untyped-def]
        name = obj.url.rsplit("/", 1)[-1]
        self.opened.wait(30)
        with self._lock:
            self.reads.append(name)
        if name in self.broken:
            raise BackendError(f"{obj.url}: access denied")
        yield self.objects[name][offset:]

    def close(self) -> None:
        pass


def test_downloads_run_at_most_twice_their_threads_ahead_of_the_workers(tmp_path: object) -> None:
    """``RemoteDocuments`` starts a download only while fewer than 2 x
    ``sources.downloads`` documents are downloading or downloaded and not yet handed to a
    worker; handing one over, settling one, or a download that left no file lets the next
    one start. The rest wait in its queue, not in a thread."""
    from concurrent.futures import wait
    from pathlib import Path

    from docmill.engine.remote import RemoteDocuments
    from docmill.settings import Settings, with_overrides

    objects = {f"{i:02d}.txt": f"object {i} ".encode() * 50 for i in range(12)}
    store = StoreOfObjects(objects, broken=frozenset({"02.txt"}))
    settings = with_overrides(Settings(), {"sources.downloads": 2})
    backends = Backends(settings.sources, {"mem": lambda ctx: store}, secrets=Secrets(frozenset()),
                        retrier=lambda: Retrier(0, 0, sleep=lambda _s: None))
    remote = RemoteDocuments(settings, backends, Spool(Path(str(tmp_path)) / "spool", 1 << 20))
    urls = {i + 1: f"mem://store/{name}" for i, name in enumerate(sorted(objects))}
    try:
        # no download ends while they are being asked for: a failed one's place is taken
        # back at the next call into ``remote``, and the loop below is such calls
        store.opened.clear()
        futures = {d: remote.submit(d, url, len(objects[url[-6:]]), "v1") for d, url in urls.items()}
        store.opened.set()
        wait([futures[d] for d in (1, 2, 3, 4)], timeout=30)
        assert remote.lead == 4 and sorted(store.reads) == ["00.txt", "01.txt", "02.txt", "03.txt"]
        assert remote.queued == 8 and not any(futures[d].done() for d in range(5, 13))
        assert futures[1].result()[1][0] == hashlib.sha256(objects["00.txt"]).hexdigest()
        assert futures[3].result()[3][0] is None  # 02.txt failed: no file, its place is free

        # handing document 1 to a worker frees its place, and the failed one's
        path, name = remote.task_file(1, urls[1])
        assert name == "00.txt" and Path(path).read_bytes() == objects["00.txt"]
        assert Path(path).parent == Path(str(tmp_path)) / "spool"
        wait([futures[5], futures[6]], timeout=30)
        assert len(store.reads) == 6 and remote.queued == 6 and not futures[7].done()
        # a document settled without a worker (a twin's outcome) frees its place too
        remote.settled(2)
        wait([futures[7]], timeout=30)
        assert len(store.reads) == 7 and not futures[8].done()
        # settling a handed document deletes its file and starts nothing more
        remote.settled(1)
        assert not Path(path).exists() and remote.queued == 5
        for d in (4, 5, 6, 7, 8, 9, 10, 11):
            remote.task_file(d, urls[d])
        wait(list(futures.values()), timeout=30)
        assert remote.queued == 0 and sorted(store.reads) == sorted(objects)
    finally:
        remote.stop()
        remote.close()


def test_the_spool_reads_the_files_an_earlier_run_left_in_either_layout(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "spool"
    (folder / "6").mkdir(parents=True)  # the layout before 2026-12: <id>/<name>
    (folder / "6" / "old.pdf").write_bytes(b"old layout")
    (folder / "9").mkdir()  # an empty folder of the old layout
    (folder / "5-new.pdf").write_bytes(b"new layout")
    (folder / "stray.tmp").write_bytes(b"?")
    spool = Spool(folder, 1000)
    found = dict(spool.leftovers())
    assert found == {5: folder / "5-new.pdf", 6: folder / "6" / "old.pdf", 9: folder / "9"}
    assert not (folder / "stray.tmp").exists()
    spool.adopt(5, 10, found[5])
    spool.adopt(6, 10, found[6])
    spool.remove(found[9])
    assert spool.used == 20 and spool.path(5, "s3://b/new.pdf") == folder / "5-new.pdf"
    spool.discard(5)
    spool.discard(6)
    assert list(folder.iterdir()) == [] and spool.used == 0
