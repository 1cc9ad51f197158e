"""The trade manager: automated stop-loss, take-profit and trailing-stop rules.

One price event, from socket to sell:
feed (``polymarket_websocket.MarketFeed`` parses a frame, ``market_messages``)
→ book (``order_book.OrderBooks`` keeps top of book and depth per token)
→ price (``price_dispatch.PriceDispatcher.on_prices``: ``pricing.source_price`` per source)
→ index (``rule_registry.RuleRegistry`` → ``rule_index.RuleIndex.apply_price`` returns only
  the rules the price crosses; ``evaluation.evaluate_rule`` is the same decision, pure)
→ fire queue (``price_dispatch.PriceDispatcher``: 8 fires at once as ``TaskOwner`` jobs,
  each freeing its slot when its POST is answered; ``fire_lanes.FireLanes`` records after)
→ execute (``rule_executor.RuleExecutor``: position from ``holdings_cache``, size, then
  ``place_bet`` with the claim written in the skill's one transaction, then the outcome)
→ skill (``vincent.skills.polymarket``: read, policies, sign, one commit, POST).
``monitoring_worker.TradeMonitoringWorker`` owns that path plus the poll tick (reconcile,
positions, HTTP prices for stale tokens); ``reconciliation`` settles crashes and approvals.
"""

from vincent.services.trade_manager.monitoring_worker import (
    TradeMonitoringWorker,
    WorkerState,
    start_trade_monitoring_worker,
    stop_trade_monitoring_worker,
)

__all__ = [
    "TradeMonitoringWorker",
    "WorkerState",
    "start_trade_monitoring_worker",
    "stop_trade_monitoring_worker",
]
