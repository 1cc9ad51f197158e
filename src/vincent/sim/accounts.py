"""Balances per wallet address: collateral (pUSD) and shares per token, with cost basis.

Pure state, base units (1 = 0.000001). Open orders reserve what they could spend, so a
second order cannot spend the same balance twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(slots=True)
class Holding:
    """Shares of one token held by one address, and what they cost in total."""

    size: int = 0
    cost: int = 0


class Ledger:
    """Collateral and share balances, plus amounts reserved by resting orders."""

    def __init__(self) -> None:
        self._collateral: dict[str, int] = defaultdict(int)
        self._holdings: dict[str, dict[str, Holding]] = defaultdict(dict)
        self._reserved: dict[tuple[str, str], int] = defaultdict(int)

    @staticmethod
    def key(address: str) -> str:
        return address.lower()

    def collateral(self, address: str) -> int:
        return self._collateral[self.key(address)]

    def shares(self, address: str, token_id: str) -> int:
        holding = self._holdings[self.key(address)].get(token_id)
        return 0 if holding is None else holding.size

    def addresses(self) -> set[str]:
        """Every address (lower case) that ever held shares."""
        return set(self._holdings)

    def holdings(self, address: str) -> dict[str, Holding]:
        return dict(self._holdings[self.key(address)])

    def available(self, address: str, asset: str) -> int:
        """Free balance of ``asset`` ("" for collateral, else a token id)."""
        total = self.collateral(address) if asset == "" else self.shares(address, asset)
        return total - self._reserved[(self.key(address), asset)]

    def reserve(self, address: str, asset: str, amount: int) -> None:
        self._reserved[(self.key(address), asset)] += amount

    def release(self, address: str, asset: str, amount: int) -> None:
        slot = (self.key(address), asset)
        self._reserved[slot] = max(0, self._reserved[slot] - amount)

    def credit_collateral(self, address: str, amount: int) -> None:
        self._collateral[self.key(address)] += amount

    def credit_shares(self, address: str, token_id: str, size: int, cost: int = 0) -> None:
        holding = self._holdings[self.key(address)].setdefault(token_id, Holding())
        holding.size += size
        holding.cost += cost

    def buy(self, address: str, token_id: str, size: int, paid: int) -> None:
        self.credit_collateral(address, -paid)
        self.credit_shares(address, token_id, size, paid)

    def sell(self, address: str, token_id: str, size: int, received: int) -> int:
        """Move ``size`` shares out for ``received`` collateral; return the cost that left."""
        holding = self._holdings[self.key(address)].setdefault(token_id, Holding())
        # Cost basis leaves in proportion to the shares sold (average-cost accounting).
        cost_out = holding.cost * size // holding.size if holding.size else 0
        holding.size -= size
        holding.cost -= cost_out
        self.credit_collateral(address, received)
        return cost_out
