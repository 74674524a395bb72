"""API keys, tiers and rate limits: the pure policy with a fake clock, the key store,
the real CLI, and real `docmill serve` processes on loopback (two of them sharing a real
`redis-server`)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.service.keys import KeyStore, parse_key
from docmill.service.ratelimit import FallbackLimiter, MemoryLimiter, RedisLimiter, window_step
from docmill.service.tiers import BUILTIN, Limit, check_tier, group_of, load_tiers
from docmill.settings import SettingsError
from engine_kit import REAL, run_cli
from service_kit import free_port, kill_group, start_redis, start_server

SMALL = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"
TIERS = """
[tiers.tiny]
window_s = 60
all = 8
extract = 2
jobs_create = 2
other = 5

[tiers.shared]
window_s = 60
other = 6
"""


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the pure policy ---------------------------------------------------------------------


def test_a_burst_is_part_of_the_count_and_frees_as_it_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    five_a_minute = [("k:other", Limit(5, 60.0))]
    answers = [limiter.hit_now(five_a_minute) for _ in range(5)]
    assert all(a.allowed for a in answers)
    assert [a.remaining for a in answers] == [4, 3, 2, 1, 0]
    # the millisecond of 1000.0 counts whole: it leaves the window at 1000.001 + 60
    assert [a.reset_s for a in answers] == pytest.approx([60.001] * 5)
    refused = limiter.hit_now(five_a_minute)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(60.001)
    h = refused.headers()
    assert h == {"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "61",
                 "RateLimit-Policy": "5;w=60", "Retry-After": "61"}
    clock.now += 59.99
    assert not limiter.hit_now(five_a_minute).allowed  # refusals do not count
    clock.now += 0.011
    again = [limiter.hit_now(five_a_minute) for _ in range(6)]
    assert [a.allowed for a in again] == [True] * 5 + [False]  # the whole burst, never more
    clock.now += 600
    assert [limiter.hit_now(five_a_minute).allowed for _ in range(6)] == [True] * 5 + [False]


def test_peek_answers_without_counting() -> None:
    limiter = MemoryLimiter(FakeClock())
    two = [("k", Limit(2, 60.0))]
    assert [limiter.peek_now(two).allowed for _ in range(5)] == [True] * 5
    assert [limiter.hit_now(two).allowed for _ in range(3)] == [True, True, False]
    held = limiter.peek_now(two)
    assert not held.allowed and held.retry_after_s == pytest.approx(60.001)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 40),
    window=st.sampled_from([1.0, 10.0, 60.0]),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=400),
)
def test_no_window_ever_admits_more_than_the_limit(limit: int, window: float, gaps: list[float]) -> None:
    clock = FakeClock(12_345.678)
    limiter = MemoryLimiter(clock)
    check = [("k", Limit(limit, window))]
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap * window / 10
        if limiter.hit_now(check).allowed:
            admitted.append(clock.now)
    for i, start in enumerate(admitted):  # every window (start - w, start] ending on an admission
        inside = [t for t in admitted[: i + 1] if t > start - window]
        assert len(inside) <= limit


@pytest.mark.parametrize("limit", [10, 120, 1000])
def test_a_saturating_client_gets_the_advertised_figure_in_every_window(limit: int) -> None:
    """Asked 20 times a second for ten minutes, a key is admitted exactly its limit in its
    first window, never more in any window, and within 5 % of it in every window after, less
    at most the one slot in transit at the window's edge (a slot is free again 60.001 s
    after its use and taken at the client's next ask, up to 50 ms later)."""
    clock = FakeClock(5_000.25)
    limiter = MemoryLimiter(clock)
    check = [("k", Limit(limit, 60.0))]
    start = clock.now
    admitted: list[float] = []
    for _ in range(20 * 600):
        for _ in range(max(1, limit // 600)):
            if limiter.hit_now(check).allowed:
                admitted.append(clock.now)
        clock.now += 0.05
    assert sum(1 for t in admitted if t < start + 60) == limit
    for offset in range(0, 540, 7):
        s = start + offset + 0.013
        n = sum(1 for t in admitted if s <= t < s + 60)
        assert 0.95 * limit - 1 <= n <= limit, (offset, n)


def test_all_limits_count_a_request_or_none_does() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    key_wide = ("k:all", Limit(3, 60.0))
    extract = [key_wide, ("k:extract", Limit(1, 60.0))]
    other = [key_wide, ("k:other", Limit(10, 60.0))]
    assert limiter.hit_now(extract).allowed
    second = limiter.hit_now(extract)
    assert not second.allowed and second.limit == 1  # the group refused it ...
    first_other = limiter.hit_now(other)
    assert first_other.allowed and first_other.limit == 3 and first_other.remaining == 1  # ... and `all` kept its share
    assert limiter.hit_now(other).allowed
    last = limiter.hit_now(other)
    assert not last.allowed and last.limit == 3 and last.retry_after_s == pytest.approx(60.001)
    # another key has its own budget
    assert limiter.hit_now([("j:all", Limit(3, 60.0))]).allowed


def test_memory_limiter_forgets_idle_keys_past_its_bound() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock, max_keys=10)
    for i in range(10):
        limiter.hit_now([(f"k{i}", Limit(1, 1.0))])
    clock.now += 5
    limiter.hit_now([("new", Limit(1, 1.0))])
    assert len(limiter) == 1


def test_stale_buckets_are_the_same_as_none() -> None:
    fresh = window_step((), 50.0, Limit(2, 10.0))
    stale = window_step(((100, 2), (39_999, 1)), 50.0, Limit(2, 10.0))  # 39.999 s: gone
    assert fresh == stale and fresh.allowed and fresh.remaining == 1
    assert fresh.buckets == ((50_000, 1),)  # 50 s in ticks of 1 ms
    big = window_step((), 50.0, Limit(12_000, 60.0))  # over EXACT_UP_TO: ticks of 60/1200 s
    assert big.buckets == ((1000, 1),)


# --- tiers ---------------------------------------------------------------------------------


def test_tiers_builtin_overridden_and_extended(tmp_path: Path) -> None:
    assert {"free", "pro", "enterprise", "unlimited"} <= set(BUILTIN)
    assert BUILTIN["unlimited"].limit("all") is None
    f = tmp_path / "tiers.toml"
    f.write_text('[tiers.pro]\nextract = 7\n\n[tiers.mini]\nbase = "free"\nwindow_s = 10\nall = 3\n')
    tiers = load_tiers(str(f))
    assert tiers["pro"].extract == 7 and tiers["pro"].other == BUILTIN["pro"].other
    assert tiers["mini"].limit("all") == Limit(3, 10.0)
    assert tiers["mini"].extract == BUILTIN["free"].extract
    with pytest.raises(SettingsError, match="known tiers: enterprise, free, mini, pro, unlimited"):
        check_tier(tiers, "gold")
    for bad, message in [
        ("[tiers.x]\nextract = -1\n", "must be a number"),
        ("[tiers.x]\nburst = 2\n", "unknown keys"),
        ('[tiers.x]\nbase = "nope"\n', "unknown base"),
        ("[tiers.x]\nwindow_s = 0\n", "window_s must be > 0"),
        ("[other]\nx = 1\n", "only \\[tiers.NAME\\]"),
        ("[tiers.x\n", "not valid TOML"),
    ]:
        f.write_text(bad)
        with pytest.raises(SettingsError, match=message):
            load_tiers(str(f))
    with pytest.raises(SettingsError, match="cannot read"):
        load_tiers(str(tmp_path / "missing.toml"))


def test_service_auth_setting() -> None:
    from docmill.settings import load_settings

    assert load_settings(env={}).service.auth == "keys"
    assert load_settings(env={"DOCMILL_SERVICE__AUTH": "none"}).service.auth == "none"
    with pytest.raises(SettingsError, match="not one of keys, none"):
        load_settings(env={}, overrides={"service.auth": "maybe"})


def test_local_mode_is_said_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from docmill.service.app import create_app
    from docmill.service.auth import KeyAuth
    from docmill.service.deps import local_caller
    from docmill.settings import load_settings

    base = {"service.data_dir": str(tmp_path), "service.job_workers": "0"}
    with caplog.at_level(logging.WARNING, logger="docmill.service"):
        local = create_app(load_settings(env={}, overrides={**base, "service.auth": "none"}))
    assert local.state.authenticate is local_caller
    assert any("service.auth=none" in r.message for r in caplog.records)
    keyed = create_app(load_settings(env={}, overrides=base))
    assert isinstance(keyed.state.authenticate, KeyAuth)
    keyed.state.authenticate.keys.close()
    tiers = tmp_path / "bad.toml"
    tiers.write_text("[tiers.x]\nnope = 1\n")
    with pytest.raises(SettingsError, match="unknown keys"):
        create_app(load_settings(env={}, overrides={**base, "service.tiers_file": str(tiers)}))


def test_endpoint_groups() -> None:
    assert group_of("POST", "/v1/extract") == "extract"
    assert group_of("POST", "/v1/jobs") == "jobs_create"
    assert group_of("GET", "/v1/jobs") == "other"
    assert group_of("POST", "/v1/jobs/{job_id}/cancel") == "other"


# --- the key store and the CLI ---------------------------------------------------------------


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_keys_are_stored_hashed(tmp_path: Path) -> None:
    with KeyStore.open(tmp_path) as store:
        key, plaintext = store.create("pro", "ci")
        key_id, secret = parse_key(plaintext) or ("", "")
        assert key_id == key.id and len(secret) == 48
        assert store.verify(plaintext) == key
        assert store.verify(plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")) is None
        assert store.verify(f"dm_{'f' * 12}_{secret}") is None
        assert store.verify("not a key") is None
        revoked = store.revoke(key.id)
        assert revoked is not None and revoked.revoked
        assert store.revoke("000000000000") is None
    data = _all_bytes(tmp_path)
    assert b"api_keys" in data and key.id.encode() in data
    assert secret.encode() not in data and plaintext.encode() not in data


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("keys", *args, "--set", f"service.data_dir={data}", timeout=120)


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = _cli(data, "create", "--tier", "pro", "--name", "ci", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["tier"] == "pro" and created["name"] == "ci"
    assert created["key"].startswith(f"dm_{created['id']}_")
    plain = _cli(data, "create", "--tier", "free")
    assert plain.returncode == 0 and plain.stdout.startswith("dm_") and "shown once" in plain.stderr
    listed = json.loads(_cli(data, "list", "--json").stdout)
    assert [k["tier"] for k in listed] == ["pro", "free"]
    assert all("key" not in k and "secret" not in json.dumps(k) for k in listed)
    assert created["key"] not in _cli(data, "list").stdout
    bad = _cli(data, "create", "--tier", "gold")
    assert bad.returncode == 1 and "known tiers: enterprise, free, pro, unlimited" in bad.stderr
    assert _cli(data, "revoke", created["id"]).returncode == 0
    assert [k["revoked_at"] is not None for k in json.loads(_cli(data, "list", "--json").stdout)] == [True, False]
    missing = _cli(data, "revoke", "000000000000")
    assert missing.returncode == 1 and "no key" in missing.stderr
    assert created["key"].encode() not in _all_bytes(data)
    # a bad tiers file stops `docmill serve` with a message, not a traceback
    bad_tiers = tmp_path / "tiers.toml"
    bad_tiers.write_text("[tiers.x]\nextract = -1\n")
    served = run_cli("serve", "--port", str(free_port()), "--set", f"service.data_dir={data}",
                     "--set", f"service.tiers_file={bad_tiers}", timeout=120)
    assert served.returncode == 1 and "must be a number" in served.stderr
    assert "Traceback" not in served.stderr


# --- a real server with keys -------------------------------------------------------------------


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) <= {"code", "message", "details"} and body["message"]
    return body


def _key(data: Path, tier: str, tiers_file: Path | None = None) -> str:
    extra = ["--set", f"service.tiers_file={tiers_file}"] if tiers_file else []
    made = _cli(data, "create", "--tier", tier, "--json", *extra)
    assert made.returncode == 0, made.stderr
    key: str = json.loads(made.stdout)["key"]
    return key


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    data = tmp_path / "data"
    data.mkdir()
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    port = free_port()
    proc = start_server(data, port, "service.auth=keys", f"service.tiers_file={tiers}",
                        "service.job_workers=0")
    try:
        yield f"http://127.0.0.1:{port}", data, tiers
    finally:
        kill_group(proc)


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_keys_on_a_real_server(keyed: tuple[str, Path, Path]) -> None:
    base, data, _tiers = keyed
    alice, bob = _key(data, "pro"), _key(data, "pro")
    # the public routes need no key
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(base + path).status_code == 200, path
    spec = httpx.get(base + "/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["paths"]["/v1/jobs"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "429" in spec["paths"]["/v1/extract"]["post"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    # 401s: missing, malformed, wrong secret, unknown id; all in the envelope with a challenge
    cases = [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer nope"}, "invalid_api_key"),
        ({"Authorization": "Basic " + alice}, "missing_api_key"),
        ({"Authorization": "Bearer " + alice[:-4] + "0000"}, "invalid_api_key"),
        ({"X-API-Key": "dm_000000000000_" + alice[-48:]}, "invalid_api_key"),
    ]
    for headers, code in cases:
        r = httpx.get(base + "/v1/jobs", headers=headers)
        assert _error(r, 401)["code"] == code, headers
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="docmill"')
        assert "ratelimit-limit" not in r.headers
    assert _error(httpx.post(base + "/v1/extract"), 401)["code"] == "missing_api_key"
    # a key sees only its own jobs: another key's job is a 404, as a missing one
    a, b = _client(base, alice), httpx.Client(base_url=base, headers={"X-API-Key": bob}, timeout=60)
    created = a.post("/v1/jobs", files=[("files", ("a.pdf", SMALL.read_bytes()))])
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.headers["RateLimit-Limit"] == "60" and created.headers["RateLimit-Remaining"] == "59"
    assert [j["id"] for j in a.get("/v1/jobs").json()["items"]] == [job_id]
    assert a.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert b.get("/v1/jobs").json()["items"] == []
    for method, path in [("GET", f"/v1/jobs/{job_id}"), ("GET", f"/v1/jobs/{job_id}/documents"),
                         ("GET", f"/v1/jobs/{job_id}/export"), ("POST", f"/v1/jobs/{job_id}/cancel")]:
        r = b.request(method, path)
        assert _error(r, 404)["code"] == "job_not_found", path
        assert "RateLimit-Remaining" in r.headers  # counted, and said so, on errors too
    assert a.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # bob's cancel did nothing
    # a streamed answer carries the headers too
    with a.stream("GET", f"/v1/jobs/{job_id}/events") as streamed:
        assert streamed.status_code == 200 and "RateLimit-Remaining" in streamed.headers
    # revoked through the CLI while the server runs: refused at once
    bob_id = parse_key(bob)
    assert bob_id is not None
    assert _cli(data, "revoke", bob_id[0]).returncode == 0
    assert _error(b.get("/v1/jobs"), 401)["code"] == "revoked_api_key"
    assert a.get("/v1/jobs").status_code == 200
    # a key whose tier is no longer configured is refused, clearly
    with KeyStore.open(data) as store:
        _gone, orphan = store.create("retired")
    assert _error(_client(base, orphan).get("/v1/jobs"), 403)["code"] == "unknown_tier"
    a.close()
    b.close()
    assert alice.encode() not in _all_bytes(data)
    logs = "".join(p.read_text() for p in data.parent.glob("server-*.log"))
    assert alice not in logs and alice[-48:] not in logs


def test_per_key_and_per_endpoint_429(keyed: tuple[str, Path, Path]) -> None:
    base, data, tiers = keyed
    key, other_key = _key(data, "tiny", tiers), _key(data, "tiny", tiers)
    c = _client(base, key)
    pdf = {"file": ("a.pdf", SMALL.read_bytes())}
    # extract: 2 a minute
    first = c.post("/v1/extract", files=pdf)
    assert first.status_code == 200 and first.json()["status"] == "done"
    assert first.headers["RateLimit-Limit"] == "2" and first.headers["RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit-Policy"] == "2;w=60"
    assert c.post("/v1/extract", files=pdf).status_code == 200
    refused = c.post("/v1/extract", files=pdf)
    body = _error(refused, 429)
    assert body["code"] == "rate_limited" and body["details"]["group"] == "extract"
    assert body["details"]["tier"] == "tiny" and body["details"]["limit"] == 2
    # free again when the first extract leaves the window, 60 s after it (less what passed)
    assert 50 <= int(refused.headers["Retry-After"]) <= 61 and refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Limit"] == "2" and int(refused.headers["RateLimit-Reset"]) <= 61
    # other endpoints still answer; the key-wide limit (8) counts them all
    remaining = []
    for _ in range(5):
        r = c.get("/v1/jobs")
        assert r.status_code == 200
        remaining.append(int(r.headers["RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]  # `other` (5) is the tighter one here
    assert _error(c.get("/v1/jobs"), 429)["details"]["group"] == "other"
    # the key-wide limit: 2 extracts + 5 reads = 7 of 8; one job creation fits, the next does not
    assert c.post("/v1/jobs", files=[("files", ("a.pdf", SMALL.read_bytes()))]).status_code == 202
    over = c.post("/v1/jobs", files=[("files", ("a.pdf", SMALL.read_bytes()))])
    assert _error(over, 429)["details"]["limit"] == 8 and over.headers["RateLimit-Limit"] == "8"
    # another key of the same tier has its own budget
    o = _client(base, other_key)
    assert o.post("/v1/extract", files=pdf).status_code == 200
    assert o.get("/v1/jobs").headers["RateLimit-Remaining"] == "4"
    c.close()
    o.close()
    metrics = httpx.get(base + "/metrics").text
    assert 'status="429"' in metrics


# --- two instances, one real redis-server ----------------------------------------------------


def test_redis_script_matches_the_memory_policy(redis_url: str) -> None:
    """The Lua script and the Python policy answer the same sequence alike."""
    key_wide = ("k:all", Limit(3, 60.0))
    sequence = [[key_wide, ("k:extract", Limit(1, 60.0))]] * 2 + [[key_wide, ("k:other", Limit(10, 60.0))]] * 3

    async def through_redis() -> list[tuple[bool, int, int]]:
        limiter = RedisLimiter(redis_url)
        try:
            answers = [((d := await limiter.hit(c)).allowed, d.limit, d.remaining) for c in sequence]
            # peek answers without counting: a fresh key stays fresh, a full one says so
            fresh = [("k:fresh", Limit(1, 60.0))]
            assert [(await limiter.peek(fresh)).allowed for _ in range(3)] == [True] * 3
            assert (await limiter.hit(fresh)).allowed and not (await limiter.peek(fresh)).allowed
            return answers
        finally:
            await limiter.close()

    memory = MemoryLimiter(FakeClock())
    expected = [((d := memory.hit_now(c)).allowed, d.limit, d.remaining) for c in sequence]
    assert expected == [(True, 1, 0), (False, 1, 0), (True, 3, 1), (True, 3, 0), (False, 3, 0)]
    assert asyncio.run(through_redis()) == expected
    import redis

    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl("docmill:rl:k:all")
    assert 59_000 < ttl <= 60_001  # a key expires once its newest admission leaves the window
    client.close()


def test_fallback_to_memory_while_redis_is_down_then_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    clock = FakeClock()
    check = [("k:other", Limit(2, 60.0))]
    started: list[subprocess.Popen[bytes]] = []

    async def scenario() -> list[list[tuple[bool, str]]]:
        limiter = FallbackLimiter(RedisLimiter(f"redis://127.0.0.1:{port}/0"), MemoryLimiter(clock),
                                  clock, retry_s=5.0)

        async def hits(n: int) -> list[tuple[bool, str]]:
            return [((d := await limiter.hit(check)).allowed, d.backend) for _ in range(n)]

        try:
            down = await hits(3)
            started.append(start_redis(port, tmp_path))
            too_soon = await hits(1)  # Redis is not asked again before retry_s
            clock.now += 5.0
            back = await hits(2)
        finally:
            await limiter.close()
        return [down, too_soon, back]

    try:
        with caplog.at_level(logging.INFO, logger="docmill.service"):
            down, too_soon, back = asyncio.run(scenario())
    finally:
        for proc in started:
            proc.kill()
            proc.wait(timeout=30)
    assert down == [(True, "memory"), (True, "memory"), (False, "memory")]
    assert too_soon == [(False, "memory")]
    assert back == [(True, "redis"), (True, "redis")]  # Redis holds its own, fresh budget
    messages = [r.message for r in caplog.records]
    assert sum("Redis unreachable" in m for m in messages) == 1
    assert sum("Redis reachable again" in m for m in messages) == 1


def test_two_instances_share_one_budget_through_redis(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    key = _key(data, "shared", tiers)
    common = ("service.auth=keys", f"service.tiers_file={tiers}", f"service.redis_url={redis_url}",
              "service.job_workers=0")
    ports = [free_port(), free_port()]
    procs = [start_server(data, p, *common) for p in ports]
    try:
        clients = [_client(f"http://127.0.0.1:{p}", key) for p in ports]
        answers = [clients[i % 2].get("/v1/jobs") for i in range(8)]  # alternate instances
        assert [r.status_code for r in answers] == [200] * 6 + [429] * 2
        assert [r.headers["RateLimit-Remaining"] for r in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
        # the window's first request leaves it 60 s after it was made (less what has passed)
        assert all(50 <= int(r.headers["Retry-After"]) <= 61 for r in answers[6:])
        assert _error(answers[7], 429)["code"] == "rate_limited"
        # Redis gone: each instance limits in its own memory (logged), it never fails a request
        import redis

        redis.Redis.from_url(redis_url).shutdown(nosave=True)
        after = [clients[0].get("/v1/jobs") for _ in range(7)]
        assert [r.status_code for r in after] == [200] * 6 + [429]
        for c in clients:
            c.close()
        logs = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
        assert "Redis unreachable" in logs and "rate limits in Redis" in logs
    finally:
        for proc in procs:
            kill_group(proc)
