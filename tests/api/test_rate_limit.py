"""Request limits (issue 13 §7): per API key when authenticated, per address otherwise;
X-Forwarded-For believed only from trusted proxies; /health and /metrics free."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.api.conftest import RULES, api_settings
from tests.helpers import create_tenant
from vincent.api.rate_limit import GcraLimiter, build_rate_limits, client_address, parse_networks
from vincent.app import create_app
from vincent.config import Settings

REFUSED = {
    "success": False,
    "error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"},
}
PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1")


# ----------------------------------------------------------------------------- the limiter


def test_a_burst_is_allowed_then_requests_are_paced() -> None:
    limiter = GcraLimiter(limit=60, window_s=60, burst=3)  # one a second, three at once

    burst = [limiter.hit("k", 0.0) for _ in range(4)]
    later = limiter.hit("k", 1.0)
    again = limiter.hit("k", 1.0)

    assert [d.allowed for d in burst] == [True, True, True, False]
    assert [d.remaining for d in burst] == [2, 1, 0, 0]
    assert burst[3].retry_after_s == pytest.approx(1.0)
    assert burst[0].reset_s == pytest.approx(1.0)
    assert (later.allowed, again.allowed) == (True, False)


def test_keys_are_counted_apart() -> None:
    limiter = GcraLimiter(limit=1, window_s=60, burst=1)

    assert limiter.hit("a", 0.0).allowed
    assert not limiter.hit("a", 1.0).allowed
    assert limiter.hit("b", 1.0).allowed


def test_memory_is_bounded_however_many_keys_appear() -> None:
    limiter = GcraLimiter(limit=10, window_s=60, burst=5, max_keys=1000)

    for n in range(50_000):
        limiter.hit(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", 0.0)

    assert len(limiter) == 1000


def test_full_buckets_are_forgotten_as_time_passes() -> None:
    limiter = GcraLimiter(limit=60, window_s=60, burst=1)
    for n in range(100):
        limiter.hit(f"client-{n}", 0.0)

    for n in range(100):
        limiter.hit("steady", 10.0 + n)

    assert len(limiter) == 1


@pytest.mark.parametrize(("limit", "window_s", "burst"), [(0, 60.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
def test_a_limiter_needs_positive_numbers(limit: int, window_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="was"):
        GcraLimiter(limit, window_s, burst)


@given(
    limit=st.integers(min_value=1, max_value=30),
    burst=st.integers(min_value=1, max_value=10),
    gaps_ms=st.lists(st.integers(min_value=0, max_value=5000), max_size=80),
    span_s=st.integers(min_value=1, max_value=20),
)
def test_no_interval_admits_more_than_its_burst_plus_its_rate(
    limit: int, burst: int, gaps_ms: list[int], span_s: int
) -> None:
    limiter = GcraLimiter(limit=limit, window_s=10, burst=burst)
    now_ms = 0
    admitted: list[int] = []
    for gap in gaps_ms:
        now_ms += gap
        if limiter.hit("k", now_ms / 1000).allowed:
            admitted.append(now_ms)

    span_ms = span_s * 1000
    allowance = burst + span_ms / (10_000 / limit)
    for start in admitted:
        inside = [t for t in admitted if start <= t < start + span_ms]
        assert len(inside) <= allowance + 1e-9


@given(limit=st.integers(min_value=1, max_value=50), count=st.integers(min_value=1, max_value=50))
def test_requests_at_the_rate_are_never_refused(limit: int, count: int) -> None:
    limiter = GcraLimiter(limit=limit, window_s=60, burst=1)
    interval_s = 60 / limit
    assert all(limiter.hit("k", n * interval_s).allowed for n in range(count))


def test_each_api_process_admits_its_share() -> None:
    one = build_rate_limits(
        per_key=600,
        per_address=60,
        window_s=60,
        burst_s=10,
        processes=1,
        clock=lambda: 0.0,
        trusted_proxies=None,
    )
    four = build_rate_limits(
        per_key=600,
        per_address=60,
        window_s=60,
        burst_s=10,
        processes=4,
        clock=lambda: 0.0,
        trusted_proxies=None,
    )

    assert one.per_key is not None and one.per_address is not None
    assert four.per_key is not None and four.per_address is not None
    assert (one.per_key.limit, one.per_key.burst) == (600, 100)
    assert (one.per_address.limit, one.per_address.burst) == (60, 10)
    assert (four.per_key.limit, four.per_key.burst) == (150, 25)
    assert four.per_address.limit == 15


# ----------------------------------------------------------------------------- the address


def _scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return {"type": "http", "client": (peer, 1234), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "address"),
    [
        # Not trusting proxies (the default): the peer, whatever the header says.
        ("203.0.113.7", "1.1.1.1", None, "203.0.113.7"),
        ("10.0.0.2", "1.1.1.1", None, "10.0.0.2"),
        # A peer that is not a trusted proxy wrote the header itself: ignored.
        ("203.0.113.7", "1.1.1.1", PROXIES, "203.0.113.7"),
        # Our proxy appended the client: the right-most hop that is not ours.
        ("10.0.0.2", "198.51.100.4", PROXIES, "198.51.100.4"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.4", PROXIES, "198.51.100.4"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.4, 10.1.2.3", PROXIES, "198.51.100.4"),
        ("127.0.0.1", "forged, 198.51.100.4", PROXIES, "198.51.100.4"),
        # Only proxies: the left-most of them.
        ("10.0.0.2", "10.9.9.9, 10.1.1.1", PROXIES, "10.9.9.9"),
        ("10.0.0.2", None, PROXIES, "10.0.0.2"),
    ],
)
def test_the_client_address_is_never_one_the_client_chose(
    peer: str,
    forwarded: str | None,
    trusted: tuple[ipaddress.IPv4Network, ...] | None,
    address: str,
) -> None:
    assert client_address(_scope(peer, forwarded), trusted) == address


def test_bad_trusted_proxies_fail_at_start() -> None:
    with pytest.raises(ValueError, match="not an address or CIDR"):
        Settings(trusted_proxies="10.0.0.0/8, banana")


# ----------------------------------------------------------------------------- the app


def _app(database_url: str, peer: str = "203.0.113.7", **overrides: object) -> TestClient:
    settings = api_settings(database_url, **overrides)
    return TestClient(create_app(settings, skill_factory=None), client=(peer, 5000))


def test_one_agent_flooding_does_not_starve_another_on_its_host(database_url: str) -> None:
    alice, bob = create_tenant(database_url, "alice"), create_tenant(database_url, "bob")
    with _app(database_url, rate_limit_per_key=4, rate_limit_burst_s=60) as client:
        flood = [client.get(RULES, headers=alice.headers).status_code for _ in range(6)]
        other = [client.get(RULES, headers=bob.headers).status_code for _ in range(4)]
        anonymous = client.get("/api/skills/polymarket/rules").status_code

    assert flood == [200, 200, 200, 200, 429, 429]
    assert other == [200, 200, 200, 200]
    assert anonymous == 401


def test_a_refusal_keeps_the_envelope_and_the_headers(database_url: str) -> None:
    alice = create_tenant(database_url, "alice")
    with _app(database_url, rate_limit_per_key=2, rate_limit_burst_s=60) as client:
        answers = [client.get(RULES, headers=alice.headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[0].headers["ratelimit-remaining"] == "1"
    assert answers[0].headers["ratelimit-policy"] == "2;w=60;burst=2"
    refused = answers[2]
    body = refused.json()
    assert {"success": body["success"], "error": body["error"]} == REFUSED
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"


def test_guessed_keys_count_against_the_address(database_url: str) -> None:
    alice = create_tenant(database_url, "alice")
    with _app(database_url, rate_limit_per_address=3, rate_limit_burst_s=60) as client:
        guesses = [
            client.get(RULES, headers={"Authorization": f"Bearer ssk_{n:064x}"}).status_code
            for n in range(5)
        ]
        malformed = client.get(RULES, headers={"Authorization": "Bearer"}).status_code
        valid = client.get(RULES, headers=alice.headers).status_code

    assert guesses == [401, 401, 401, 429, 429]
    assert malformed == 429
    assert valid == 200  # a real key from the same host is counted apart


def test_a_new_forwarded_for_per_request_does_not_dodge_the_limit(database_url: str) -> None:
    with _app(database_url, rate_limit_per_address=2, rate_limit_burst_s=60) as client:
        answers = [
            client.get("/openapi.json", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(4)
        ]

    assert [a.status_code for a in answers] == [200, 200, 429, 429]


def test_behind_a_trusted_proxy_clients_are_told_apart(database_url: str) -> None:
    overrides = {
        "rate_limit_per_address": 1,
        "rate_limit_burst_s": 60,
        "trust_proxy": True,
        "trusted_proxies": "10.0.0.0/8",
    }
    with _app(database_url, peer="10.0.0.2", **overrides) as client:

        def get(forwarded: str) -> int:
            return client.get("/openapi.json", headers={"X-Forwarded-For": forwarded}).status_code

        first = get("198.51.100.1")
        forged = get("6.6.6.6, 198.51.100.1")  # the client wrote the left part
        other = get("198.51.100.2")

    assert (first, forged, other) == (200, 429, 200)


def test_health_and_metrics_are_never_limited(database_url: str) -> None:
    with _app(database_url, rate_limit_per_address=1, rate_limit_burst_s=60) as client:
        health = [client.get("/health") for _ in range(5)]
        metrics = [client.get("/metrics") for _ in range(5)]

    assert {a.status_code for a in health + metrics} == {200}
    assert "ratelimit-limit" not in health[0].headers


def test_unknown_paths_with_a_key_still_count_against_the_address(database_url: str) -> None:
    headers = {"Authorization": "Bearer whatever"}
    with _app(database_url, rate_limit_per_address=2, rate_limit_burst_s=60) as client:
        answers = [client.get("/api/nowhere", headers=headers).status_code for _ in range(4)]

    assert answers == [404, 404, 429, 429]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"rate_limit_max_requests": 0}, [200] * 4),  # the original's switch: off
        ({"rate_limit_max_requests": 2, "rate_limit_burst_s": 60}, [200, 200, 429, 429]),
        ({"rate_limit_per_address": 0}, [200] * 4),
    ],
)
def test_the_original_settings_still_work(
    database_url: str, overrides: dict[str, object], expected: list[int]
) -> None:
    with _app(database_url, **overrides) as client:
        answers = [client.get("/openapi.json").status_code for _ in range(4)]

    assert answers == expected


def test_the_owner_is_limited_like_a_key_and_wrong_tokens_like_guesses(
    database_url: str,
) -> None:
    owner = {"Authorization": "Bearer owner-" + "7" * 40}
    wrong = {"Authorization": "Bearer owner-" + "0" * 40}
    overrides = {
        "vincent_admin_token": SecretStr("owner-" + "7" * 40),
        "rate_limit_per_key": 3,
        "rate_limit_per_address": 2,
        "rate_limit_burst_s": 60,
    }
    with _app(database_url, **overrides) as client:
        bad = [client.get("/api/admin/policies", headers=wrong).status_code for _ in range(3)]
        good = [client.get("/api/admin/policies", headers=owner).status_code for _ in range(4)]

    assert bad == [401, 401, 429]
    assert good == [200, 200, 200, 429]
