"""The Drive client and backend against the simulator in this process: quota answers,
Retry-After, missing/changed/too-large, 401 and the token endpoint, md5 across resumes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from docmill.settings import SourceSettings
from docmill.sources.backend import BackendError, Backends, RemoteObject, Secrets
from docmill.sources.gdrive.auth import (
    Credentials,
    TokenReference,
    load_credentials,
)
from docmill.sources.gdrive.backend import DriveBackend
from docmill.sources.gdrive.client import DriveClient, DriveConfig, account_pace, retry_after
from docmill.sources.spool import Spool, fetch
from docmill.sources.throttle import Retrier, TransientError
from docmill.sources.urls import parse
from docmill.testkit.drive_sim import DriveSimConfig, SimHandle, serve_in_thread
from drive_kit import write_key

pytest.importorskip("cryptography")


# --- the client and the backend against the simulator ---------------------------------


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with serve_in_thread(DriveSimConfig(seed=2)) as handle:
        yield handle


def options(sim: SimHandle, credentials: Path | None = None, **more: object) -> SourceSettings:
    return SourceSettings(gdrive_api_url=sim.api_url, gdrive_token_url=sim.token_url,
                          gdrive_credentials=str(credentials or ""), **more)  # type: ignore[arg-type]


class FakeClock:
    """A clock that only the client's sleeps move (every sleep recorded)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(sim: SimHandle, tmp_path: Path, clock: FakeClock | None = None) -> DriveClient:
    key = write_key(tmp_path, sim.service_account())
    settings = options(sim, key)
    clock = clock or FakeClock()
    return DriveClient(DriveConfig.from_settings(settings), load_credentials(settings, {}),
                       clock=clock, sleep=clock.sleep)


def test_quota_answers_become_throttled_transient_errors_and_retry_after_holds_every_query(
    sim: SimHandle, tmp_path: Path
) -> None:
    clock = FakeClock()
    client = client_for(sim, tmp_path, clock)
    sim.reconfigure(queries_per_window=1, window_s=100.0)
    client.get_file("root", "id", "root")
    with pytest.raises(TransientError) as caught:
        client.get_file("root", "id", "root")
    assert caught.value.throttled and caught.value.reason == "userRateLimitExceeded"
    assert "403 userRateLimitExceeded" in str(caught.value)
    assert not any(t in str(caught.value) for t in sim.data.grants)
    sim.reconfigure(queries_per_window=0, burst_limit=1, burst_window_s=100.0, retry_after_s=7.0)
    sim.reset()
    client.get_file("root", "id", "root")
    with pytest.raises(TransientError) as caught:
        client.get_file("root", "id", "root")
    assert caught.value.throttled and caught.value.reason == "rateLimitExceeded"
    assert caught.value.retry_after_s == 7.0
    clock.slept.clear()
    sim.reconfigure(burst_limit=0)
    client.get_file("root", "id", "root")  # waits out the Retry-After first
    assert sum(clock.slept) == pytest.approx(7.0, abs=0.01)
    client.close()


def test_the_clients_of_one_account_share_its_quota_and_its_retry_after(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Google counts a user's queries whoever sends them: a run's source and its Drive
    deliveries (each a client) spend one quota, and a Retry-After one of them got holds
    the others too; another account's client keeps its own."""
    clock = FakeClock()
    settings = options(sim, write_key(tmp_path, sim.service_account()))
    config = DriveConfig.from_settings(settings)
    credentials = load_credentials(settings, {})

    def client(account: Credentials) -> DriveClient:
        return DriveClient(config, account, clock=clock, sleep=clock.sleep,
                           pace=account_pace(config, account))

    source, delivery = client(credentials), client(credentials)
    other = client(TokenReference(env="TOKEN", environ={"TOKEN": sim.access_token("someone@example.com")}))
    assert account_pace(config, credentials) is account_pace(config, load_credentials(settings, {}))
    sim.reconfigure(burst_limit=1, burst_window_s=100.0, retry_after_s=7.0)
    source.get_file("root", "id", "root")
    with pytest.raises(TransientError) as caught:
        source.get_file("root", "id", "root")
    assert caught.value.retry_after_s == 7.0
    sim.reconfigure(burst_limit=0)
    clock.slept.clear()
    other.get_file("root", "id", "root")  # another account: not held
    assert sum(clock.slept) == 0.0
    delivery.get_file("root", "id", "root")  # the same account: waits out the source's 429
    assert sum(clock.slept) == pytest.approx(7.0, abs=0.01)
    for each in (source, delivery, other):
        each.close()


def test_missing_changed_and_too_large_are_told_apart(sim: SimHandle, tmp_path: Path) -> None:
    client = client_for(sim, tmp_path)
    with pytest.raises(BackendError) as caught:
        client.get_file("1NoSuchFile00000000000000000000000", "id", "gdrive://x/1No/a")
    assert caught.value.missing
    small = sim.data.add_file("a.bin", b"12345")
    with pytest.raises(BackendError) as caught:
        list(client.download(small, 5, "gdrive://x/y/a.bin"))
    assert caught.value.changed
    doc = sim.data.add_native("Big", "document", ["z" * 3000] * 5)
    sim.reconfigure(export_limit=1000)
    with pytest.raises(BackendError) as caught:
        client.export(doc, "application/pdf", "gdrive://x/y/Big.pdf")
    assert caught.value.too_large and "exportSizeLimitExceeded" in str(caught.value)
    sim.reconfigure(export_limit=10 * 1024 * 1024)
    with pytest.raises(BackendError) as caught:  # over the client's own cap too
        client.export(doc, "application/pdf", "gdrive://x/y/Big.pdf", limit=1000)
    assert caught.value.too_large
    assert retry_after({"retry-after": "3"}, 0.0) == 3.0
    assert retry_after({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, 4.0) == 6.0


class _Rotating(Mapping[str, str]):
    """An environment whose token is stale on the first read and fresh after."""

    def __init__(self, stale: str, fresh: str) -> None:
        self.values = [stale, fresh]

    def __getitem__(self, key: str) -> str:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]

    def __iter__(self) -> Iterator[str]:
        return iter(["TOKEN"])

    def __len__(self) -> int:
        return 1


def test_a_401_reads_the_token_again_once(sim: SimHandle) -> None:
    fresh = sim.access_token()
    reference = TokenReference(env="TOKEN", environ=_Rotating("ya29.stale-token", fresh))
    client = DriveClient(DriveConfig.from_settings(options(sim)), reference)
    assert client.get_file("root", "id", "root")["id"] == sim.data.my_drive
    assert client.stats["unauthorized"] == 1 and client.stats["token_reads"] == 2
    bad = DriveClient(DriveConfig.from_settings(options(sim)),
                      TokenReference(env="TOKEN", environ={"TOKEN": "ya29.never-valid"}))
    with pytest.raises(BackendError) as caught:
        bad.get_file("root", "id", "root")
    assert "is not accepted" in str(caught.value) and "ya29.never-valid" not in str(caught.value)


def test_the_token_endpoint_refusing_says_so_without_the_secret(sim: SimHandle, tmp_path: Path) -> None:
    user = sim.authorized_user()
    wrong = write_key(tmp_path, {**user, "client_secret": "GOCSPX-wrong-secret-value"}, "adc.json")
    settings = options(sim, wrong)
    client = DriveClient(DriveConfig.from_settings(settings), load_credentials(settings, {}))
    with pytest.raises(BackendError) as caught:
        client.get_file("root", "id", "root")
    message = str(caught.value)
    assert "refused authorized user" in message and "invalid_client" in message
    assert "GOCSPX-wrong-secret-value" not in message and user["refresh_token"] not in message


def _backend(sim: SimHandle, tmp_path: Path) -> tuple[Backends, DriveBackend]:
    key = write_key(tmp_path, sim.service_account())
    backends = Backends(options(sim, key), secrets=Secrets(frozenset()),
                        retrier=lambda: Retrier(0, 6, sleep=lambda s: None))
    backend, _ = backends.for_url("gdrive://root")
    assert isinstance(backend, DriveBackend)
    return backends, backend


def test_a_file_replaced_after_it_was_listed_fails_changed_even_across_a_resume(
    sim: SimHandle, tmp_path: Path
) -> None:
    backends, backend = _backend(sim, tmp_path)
    folder = sim.data.add_folder("F")
    file_id = sim.data.add_file("a.txt", b"A" * 300_000, folder)
    [obj] = backend.list(parse(f"gdrive://{folder}"), lambda rel: True)
    sim.reconfigure(drop_every=1)
    got = b""
    with pytest.raises(TransientError):
        for chunk in backend.read(obj, 0):
            got += chunk
    assert 0 < len(got) < 300_000  # what arrived before the drop was handed on
    sim.reconfigure(drop_every=0)
    sim.data.update(file_id, content=b"B" * 300_000)  # same size, other bytes
    with pytest.raises(BackendError) as caught:
        list(backend.read(obj, len(got)))
    assert caught.value.changed
    # the same resume without a change completes and is checked whole
    sim.data.update(file_id, content=b"A" * 300_000)
    [obj] = backend.list(parse(f"gdrive://{folder}"), lambda rel: True)
    sim.reconfigure(drop_every=2)
    spool = Spool(tmp_path / "spool", 10_000_000)
    sha, why = fetch(backends, spool, 1, obj.url, obj.size, obj.version, 10_000_000)  # type: ignore[misc]
    assert why == "" and sha == hashlib.sha256(b"A" * 300_000).hexdigest()
    assert sim.stats()["dropped"] >= 1
    backends.close()


def test_one_store_serves_every_gdrive_url(sim: SimHandle, tmp_path: Path) -> None:
    backends, backend = _backend(sim, tmp_path)
    other, retrier = backends.for_url("gdrive://shared/Team/1Abc/x.pdf")
    assert other is backend and list(backends.stats()) == ["gdrive://"]
    exported = RemoteObject("gdrive://root/1Abc/x.pdf", -1, "document:1:t")
    assert backend.unknown_size_at_most == 10 * 1024 * 1024 and exported.size == -1
    backends.close()
    assert time.monotonic() > 0 and retrier is not None
