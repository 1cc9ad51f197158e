"""The local Polymarket-compatible exchange (CLOB V2): a test and demo instrument.

It speaks Polymarket's wire protocol (CLOB REST, Data API, Gamma, relayer, market
WebSocket) on one loopback port and imports nothing from the rest of ``vincent``, so in
tests it stays an independent witness. Pipeline of one order:
REST ``POST /order`` → auth (L2 HMAC) → signatures (EIP-712) → exchange (checks,
balances) → matching (pure) → feed (WebSocket events) and timing (benchmark clock).
Entry points: ``LocalExchange.start(...)`` in process, ``run(host, port)`` blocking.
"""

from vincent.sim.errors import SimError
from vincent.sim.server import LocalExchange, create_app, run

__all__ = ["LocalExchange", "SimError", "create_app", "run"]
