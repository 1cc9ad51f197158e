"""The one error type of the local exchange: a Polymarket refusal (status + JSON body).

Raised anywhere in the exchange; only the REST layer turns it into a response.
"""

from __future__ import annotations

from typing import Any


class SimError(Exception):
    """A refusal the way Polymarket answers it: an HTTP status and ``{"error": message}``.

    ``extra`` adds fields to the body (for example the ``orderID`` of a killed FOK order).
    """

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


# Polymarket's error texts, kept verbatim in one place.
NOT_ENOUGH_BALANCE = "not enough balance / allowance"
FOK_NOT_FILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
FAK_NOT_FILLED = (
    "no orders found to match with FAK order. "
    "FAK orders are partially filled or killed if no match is found."
)
INVALID_SIGNATURE = "invalid signature"
SIGNER_NOT_API_KEY = "the order signer address has to be the address of the API KEY"
ORDER_VERSION_MISMATCH = "order_version_mismatch"
INVALID_L1 = "Invalid L1 Request headers"
INVALID_API_KEY = "Unauthorized/Invalid api key"
NO_ORDERBOOK = "No orderbook exists for the requested token id"
MARKET_CLOSED = "market is closed"
MAKER_NOT_WALLET = "maker address not allowed, please use the deposit wallet flow"
