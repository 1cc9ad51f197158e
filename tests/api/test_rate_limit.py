"""The per-client request limit: the pure window counter, the middleware, the app's wiring."""

from __future__ import annotations

from collections import defaultdict

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.api.conftest import api_settings
from vincent.api.rate_limit import FixedWindowLimiter, RateLimitMiddleware
from vincent.app import create_app

REFUSED = {
    "success": False,
    "error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"},
}


def test_a_window_allows_the_limit_then_refuses_until_it_ends() -> None:
    limiter = FixedWindowLimiter(limit=2, window_s=60)

    first, second, third = (limiter.hit("1.2.3.4", now) for now in (0.0, 1.0, 59.0))
    again = limiter.hit("1.2.3.4", 60.0)

    assert [d.allowed for d in (first, second, third)] == [True, True, False]
    assert [d.remaining for d in (first, second, third)] == [1, 0, 0]
    assert (first.reset_s, third.reset_s) == (60.0, 1.0)
    assert (again.allowed, again.remaining, again.reset_s) == (True, 1, 60.0)


def test_clients_are_counted_apart() -> None:
    limiter = FixedWindowLimiter(limit=1, window_s=60)

    assert limiter.hit("a", 0.0).allowed
    assert not limiter.hit("a", 1.0).allowed
    assert limiter.hit("b", 1.0).allowed


def test_expired_windows_are_swept_once_many_clients_are_tracked() -> None:
    limiter = FixedWindowLimiter(limit=1, window_s=1)
    for n in range(10_000):
        limiter.hit(f"client-{n}", 0.0)
    assert len(limiter) == 10_000

    limiter.hit("late", 5.0)

    assert len(limiter) == 1


@pytest.mark.parametrize(("limit", "window_s"), [(0, 60.0), (1, 0.0)])
def test_a_limiter_needs_a_positive_limit_and_window(limit: int, window_s: float) -> None:
    with pytest.raises(ValueError, match="was"):
        FixedWindowLimiter(limit, window_s)


@given(
    limit=st.integers(min_value=1, max_value=5),
    # Whole seconds keep the window arithmetic exact, so windows can be grouped by their end.
    gaps=st.lists(st.integers(min_value=0, max_value=30), max_size=60),
)
def test_each_window_allows_exactly_its_first_limit_hits(limit: int, gaps: list[int]) -> None:
    limiter = FixedWindowLimiter(limit=limit, window_s=10)
    now = 0.0
    by_window: dict[float, list[bool]] = defaultdict(list)
    for gap in gaps:
        now += gap
        decision = limiter.hit("k", now)
        assert 0 < decision.reset_s <= 10
        by_window[now + decision.reset_s].append(decision.allowed)

    for allowed in by_window.values():
        quota = min(limit, len(allowed))
        assert allowed == [True] * quota + [False] * (len(allowed) - quota)


def _limited_app(limit: int, clock: list[float], *, trust_proxy: bool) -> RateLimitMiddleware:
    async def hello(_request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return RateLimitMiddleware(
        Starlette(routes=[Route("/", hello)]),
        FixedWindowLimiter(limit=limit, window_s=60),
        lambda: clock[0],
        trust_proxy=trust_proxy,
    )


def test_the_middleware_sends_the_standard_headers_and_the_original_refusal() -> None:
    clock = [100.0]
    with TestClient(_limited_app(2, clock, trust_proxy=True)) as client:
        answers = [client.get("/") for _ in range(3)]
        clock[0] = 160.0
        after_window = client.get("/")

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[0].headers["ratelimit-policy"] == "2;w=60"
    assert answers[0].headers["ratelimit-reset"] == "60"
    assert answers[2].json() == REFUSED
    assert answers[2].headers["retry-after"] == "60"
    assert after_window.status_code == 200


@pytest.mark.parametrize(("trust_proxy", "second_status"), [(True, 200), (False, 429)])
def test_forwarded_clients_count_apart_only_behind_a_trusted_proxy(
    trust_proxy: bool, second_status: int
) -> None:
    with TestClient(_limited_app(1, [0.0], trust_proxy=trust_proxy)) as client:
        first = client.get("/", headers={"X-Forwarded-For": "10.0.0.1, 172.16.0.1"})
        second = client.get("/", headers={"X-Forwarded-For": "10.0.0.2, 172.16.0.1"})

    assert (first.status_code, second.status_code) == (200, second_status)


def test_the_app_limits_every_route_and_a_zero_limit_turns_it_off(database_url: str) -> None:
    limited = create_app(api_settings(database_url, rate_limit_max_requests=2), skill_factory=None)
    with TestClient(limited) as client:
        answers = [
            client.get("/health"),
            client.get("/api/skills/polymarket/rules"),
            client.get("/health"),
        ]
    settings = api_settings(database_url, rate_limit_max_requests=0)
    unlimited = create_app(settings, skill_factory=None)
    with TestClient(unlimited) as client:
        free = [client.get("/health") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 401, 429]
    assert answers[2].json() == REFUSED
    assert "x-trace-id" not in answers[2].headers
    assert [a.status_code for a in free] == [200, 200, 200]
    assert "ratelimit-limit" not in free[0].headers
