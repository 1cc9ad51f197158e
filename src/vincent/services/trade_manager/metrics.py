"""Prometheus metrics of the monitoring worker, on a registry the worker owns (never global).

Owns counter and histogram definitions only; it never reads the database or the network.
``/metrics`` renders ``WorkerMetrics.registry`` with ``prometheus_client.generate_latest``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds; the target is a few milliseconds, so the buckets are dense below 50 ms.
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
# Seconds; the event loop's lag target is 2 ms at p99.
LOOP_LAG_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _FeedCounters(Collector):
    """Exposes the market feed's own message counters without double bookkeeping."""

    def __init__(self, read: Callable[[], tuple[int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        messages, parse_errors = self._read()
        yield CounterMetricFamily(
            "vincent_trade_manager_feed_messages",
            "Market WebSocket messages received",
            value=messages,
        )
        yield CounterMetricFamily(
            "vincent_trade_manager_feed_parse_errors",
            "Market WebSocket messages dropped as malformed",
            value=parse_errors,
        )


class WorkerMetrics:
    """The worker's counters and histograms. Outcome labels: see ``ExecutionOutcome``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.price_updates = Counter(
            "vincent_trade_manager_price_updates",
            "Token price updates applied to the rule index",
            ["source"],
            registry=self.registry,
        )
        self.evaluations = Counter(
            "vincent_trade_manager_evaluations",
            "Rules evaluated against a price (fired or trailing moved)",
            ["result"],
            registry=self.registry,
        )
        self.triggers = Counter(
            "vincent_trade_manager_triggers",
            "Rules whose trigger was crossed",
            ["source"],
            registry=self.registry,
        )
        self.executions = Counter(
            "vincent_trade_manager_executions",
            "Rule executions by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "vincent_trade_manager_poll_ticks",
            "Poll ticks by result",
            ["result"],
            registry=self.registry,
        )
        self.rule_syncs = Counter(
            "vincent_trade_manager_rule_syncs",
            "Index syncs with the database: full (every ACTIVE rule) or delta (changed rules)",
            ["kind"],
            registry=self.registry,
        )
        self.rule_sync_rows = Counter(
            "vincent_trade_manager_rule_sync_rows",
            "Rule rows read by the index syncs, by kind (full, delta)",
            ["kind"],
            registry=self.registry,
        )
        self.http_price_failures = Counter(
            "vincent_trade_manager_http_price_failures",
            "Tokens whose HTTP price failed, by reason (not_found, transient, other)",
            ["reason"],
            registry=self.registry,
        )
        self.http_prices = Counter(
            "vincent_trade_manager_http_prices",
            "Tokens the poll tick asked for over HTTP, by reason (stale: not covered live by "
            "the feed and older than the stale threshold; quiet_recheck: covered live, but "
            "quiet past the re-check interval)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("stale", "quiet_recheck"):  # http_pricing.HttpPriceReason
            self.http_prices.labels(reason)
        self.http_price_skipped = Counter(
            "vincent_trade_manager_http_price_skipped",
            "Tokens due for an HTTP price (stale or quiet re-check) not asked for on a tick "
            "because they are backing off",
            registry=self.registry,
        )
        self.tokens_backing_off = Gauge(
            "vincent_trade_manager_http_price_tokens_backing_off",
            "Tokens whose HTTP price failed last time and which wait before the next try",
            registry=self.registry,
        )
        self.trailing_writes = Counter(
            "vincent_trade_manager_trailing_writes",
            "Trailing-stop levels persisted (coalesced)",
            registry=self.registry,
        )
        self.active_rules = Gauge(
            "vincent_trade_manager_active_rules",
            "ACTIVE rules held in the in-memory index",
            registry=self.registry,
        )
        self.order_latency = Histogram(
            "vincent_trade_manager_price_event_to_order_seconds",
            "From the price event that crossed a rule to its order being handed to the skill",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "vincent_trade_manager_event_loop_lag_seconds",
            "How late the worker's event loop ran a callback that was due (sampled)",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=self.registry,
        )

        # ---- standby workers (leadership)
        self.leader = Gauge(
            "vincent_trade_manager_leader",
            "1 while this worker leads (may fire and execute), 0 on standby",
            registry=self.registry,
        )
        self.takeovers = Counter(
            "vincent_trade_manager_takeovers",
            "Times this worker became leader (at start or from standby)",
            registry=self.registry,
        )

    def watch_feed(self, read: Callable[[], tuple[int, int]]) -> None:
        """Expose the feed's (messages, parse_errors) totals as counters."""
        self.registry.register(_FeedCounters(read))
