"""The trade manager: automated stop-loss, take-profit and trailing-stop rules.

One price event, from socket to sell:
feed (``polymarket_websocket.MarketFeed`` parses a frame, ``market_messages``)
→ book (``order_book.OrderBooks`` keeps top of book and depth per token)
→ price (``pricing.rule_price`` per trigger source)
→ index (``rule_index.RuleIndex.apply_price`` returns only the rules the price crosses)
→ evaluate (``evaluation.evaluate_rule``, the same decision, pure)
→ execute (``rule_executor.RuleExecutor``: claim, attempt, ``place_bet``, outcome)
→ skill (``vincent.skills.polymarket``).
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
