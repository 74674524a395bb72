"""The Drive source's pure parts, the time given: the per-user quota, token refresh, the
URL forms, change tokens, and settings that refer to a secret without holding it."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmill.settings import SourceSettings
from docmill.settings.loader import SettingsError, load_settings
from docmill.sources.backend import BackendError
from docmill.sources.gdrive.auth import (
    AccessToken,
    TokenReference,
    load_credentials,
    refresh_due,
)
from docmill.sources.gdrive.backend import change_token
from docmill.sources.gdrive.locations import SourceLocation, document_id, parse_source, path_name
from docmill.sources.gdrive.quota import EXACT_UP_TO, QueryQuota
from docmill.sources.urls import UrlError, parse


def _drive(quota: QueryQuota, n: int) -> list[float]:
    """Send ``n`` queries one after the other, each when the quota says: their times."""
    now, sent = 0.0, []
    for _ in range(n):
        now += quota.take(now)
        sent.append(now)
    return sent


def _most_in_any_window(sent: list[float], window: float) -> int:
    most, start = 0, 0
    for end, t in enumerate(sent):
        while sent[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_quota_never_admits_more_than_the_limit_in_any_window() -> None:
    sent = _drive(QueryQuota(limit=50, window_s=10.0), 400)
    assert _most_in_any_window(sent, 10.0) <= 50
    assert sent[-1] == pytest.approx(80.0, abs=10.0)  # ~ the limit's rate, not slower


def test_quota_paces_a_start_instead_of_spending_the_whole_window() -> None:
    quota = QueryQuota(limit=1000)  # 10 a second, ten seconds' worth at once
    waits = [quota.take(0.0) for _ in range(102)]
    assert waits[:100] == [0.0] * 100
    assert waits[100] == pytest.approx(0.1) and waits[101] == pytest.approx(0.2)


def test_a_large_quota_keeps_bounded_memory_and_stays_under_the_limit() -> None:
    quota = QueryQuota(limit=100_000)
    sent = _drive(quota, 30_000)
    assert len(quota._times) <= EXACT_UP_TO
    assert _most_in_any_window(sent, 100.0) <= 100_000
    assert _most_in_any_window(sent, 5.0) <= EXACT_UP_TO


def test_concurrent_reservations_are_handed_out_in_order() -> None:
    quota = QueryQuota(limit=20, window_s=10.0)
    slots = [t + quota.take(t) for t in (0.0,) * 30]
    assert slots == sorted(slots)
    assert _most_in_any_window(slots, 10.0) <= 20
    assert QueryQuota(limit=0).take(5.0) == 0.0


def test_a_throttling_answer_halves_the_pace_and_successes_bring_it_back() -> None:
    quota = QueryQuota(limit=1000)  # 10 a second
    assert quota.take(0.0) == 0.0
    quota.throttled(0.0)  # no burst left, and 5 a second
    assert quota.take(0.0) == pytest.approx(0.2)
    assert quota.take(0.0) == pytest.approx(0.4)
    for _ in range(10):
        quota.throttled(1.0)
    assert quota.factor == pytest.approx(1 / 32)  # never slower than a 32nd
    for _ in range(100):
        quota.succeeded()
    assert quota.factor == 1.0
    sent = _drive(quota, 300)  # the window's limit holds whatever the pace
    assert _most_in_any_window(sent, 100.0) <= 1000


def test_after_a_throttling_answer_a_long_pause_refills_no_burst() -> None:
    """A retry that waited out a long backoff sends its queries at the cut pace, one at
    a time, not as the burst Google refused; the burst comes back with the pace."""
    quota = QueryQuota(limit=1000)  # 10 a second, a burst of 100
    quota.take(0.0)
    quota.throttled(0.0)  # 5 a second
    waits = [quota.take(30.0) for _ in range(4)]  # 30 s later, four queries at once
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])
    for _ in range(32):
        quota.succeeded()
    assert quota.factor == 1.0
    waits = [quota.take(100.0) for _ in range(50)]  # whole again: the burst is back
    assert waits == [0.0] * 50


def test_tokens_are_refreshed_before_they_expire() -> None:
    assert refresh_due(None, 0.0)
    hour = AccessToken("t", issued_at=0.0, expires_at=3600.0)
    assert not refresh_due(hour, 3299.0) and refresh_due(hour, 3300.0)  # five minutes ahead
    short = AccessToken("t", issued_at=100.0, expires_at=104.0)
    assert not refresh_due(short, 102.9) and refresh_due(short, 103.0)  # a quarter ahead
    assert not refresh_due(AccessToken("t", issued_at=0.0), 1e9)  # given as is: no expiry
    assert "ya29.hidden" not in repr(AccessToken("ya29.hidden", 0.0))


def test_source_url_forms_and_document_ids() -> None:
    assert parse_source(parse("gdrive://1AbC_d-E")) == SourceLocation(root_id="1AbC_d-E")
    assert parse_source(parse("gdrive://1AbC/Reports/2024")) == SourceLocation(
        root_id="1AbC", path=("Reports", "2024"))
    assert parse_source(parse("gdrive://root/Projects/A ／ B")) == SourceLocation(
        root_id="root", path=("Projects", "A / B"))
    assert parse_source(parse("gdrive://shared/Team Finance/Q1")) == SourceLocation(
        shared_drive="Team Finance", path=("Q1",))
    for bad in ("gdrive://shared/", "gdrive://bad!id/x", "gdrive:///x"):
        with pytest.raises(UrlError):
            parse_source(parse(bad))
    assert document_id("gdrive://1AbC/Reports/1FileId/report.pdf") == "1FileId"
    assert document_id("gdrive://shared/Team/1FileId/a ／ b.pdf") == "1FileId"
    with pytest.raises(UrlError):
        document_id("gdrive://1AbC")
    assert path_name("a/b") == "a／b" and path_name("  ") == "untitled"


def test_change_tokens_come_from_the_listing() -> None:
    binary = {"mimeType": "application/pdf", "size": "1024", "md5Checksum": "abc",
              "version": "7", "modifiedTime": "2024-05-01T10:00:00.000Z"}
    assert change_token(binary) == (1024, "md5:abc")
    doc = {"mimeType": "application/vnd.google-apps.document", "size": "99", "version": "12",
           "modifiedTime": "2024-05-01T10:00:00.000Z"}
    assert change_token(doc) == (-1, "document:12:2024-05-01T10:00:00.000Z")
    no_md5 = {"mimeType": "application/octet-stream", "size": "5", "version": "3", "modifiedTime": "t"}
    assert change_token(no_md5) == (5, "rev:3:t")


def test_settings_refuse_a_secret_where_a_reference_belongs() -> None:
    token = "ya29.a0AfH6SMBx-not-a-variable-name"
    with pytest.raises(SettingsError) as caught:
        load_settings(env={}, overrides={"sources.gdrive_token_env": token})
    assert "not the token itself" in str(caught.value) and token not in str(caught.value)
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE"}'
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"DOCMILL_SOURCES__GDRIVE_CREDENTIALS": key})
    assert "not its content" in str(caught.value) and "MIIE" not in str(caught.value)
    for size in ("0", "1001"):
        with pytest.raises(SettingsError):
            load_settings(env={}, overrides={"sources.gdrive_page_size": size})
    ok = load_settings(env={}, overrides={"sources.gdrive_token_env": "GDRIVE_TOKEN",
                                          "sources.gdrive_credentials": "~/keys/robot.json"})
    assert ok.sources.gdrive_token_env == "GDRIVE_TOKEN"


def test_credentials_are_read_from_the_reference_and_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no Google credentials"):
        load_credentials(SourceSettings(), {})
    with pytest.raises(BackendError, match="GDRIVE_TOKEN, which is not set"):
        load_credentials(SourceSettings(gdrive_token_env="GDRIVE_TOKEN"), {}).given_token()
    token_file = tmp_path / "token"
    token_file.write_text("ya29.from-a-file\n")
    found = load_credentials(SourceSettings(), {"GOOGLE_APPLICATION_CREDENTIALS": str(token_file)})
    assert isinstance(found, TokenReference) and found.given_token() == "ya29.from-a-file"
    odd = tmp_path / "odd.json"
    odd.write_text('{"type": "external_account"}')
    with pytest.raises(BackendError, match="of type 'external_account'"):
        load_credentials(SourceSettings(gdrive_credentials=str(odd)), {})


