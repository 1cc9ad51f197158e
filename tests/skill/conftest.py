"""Skill fixtures: the real local exchange on loopback, the real skill, real DB rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from vincent.config import ExecutionMode, Settings
from vincent.crypto import KeyBox
from vincent.db.models import Policy, Secret
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.wallets import classify_wallet


@dataclass(frozen=True)
class Wallet:
    secret_id: str
    private_key: str
    eoa: str
    funder: str
    signature_type: int


@dataclass(frozen=True)
class MarketIds:
    condition_id: str
    yes: str
    no: str


def new_market_ids() -> MarketIds:
    # Random 76-digit token ids sit outside the protocol-v2 position namespace (V2 signing).
    return MarketIds(
        "0x" + secrets.token_hex(32),
        str(secrets.randbits(250) | (1 << 249)),
        str(secrets.randbits(250) | (1 << 249)),
    )


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def keybox(encryption_key: str) -> KeyBox:
    return KeyBox(encryption_key)


@pytest.fixture
async def exchange() -> AsyncIterator[LocalExchange]:
    async with LocalExchange.start(host="127.0.0.1", port=0) as ex:
        yield ex


def skill_settings(
    exchange: LocalExchange, database_url: str, *, paper: bool = False, timeout_s: float = 5.0
) -> Settings:
    return Settings(
        database_url=database_url,
        polymarket_clob_url=exchange.clob_url,
        polymarket_ws_url=exchange.ws_url,
        polymarket_data_api_url=exchange.data_api_url,
        polymarket_gamma_url=exchange.gamma_url,
        polymarket_relayer_url=exchange.relayer_url,
        polymarket_http_timeout_s=timeout_s,
        gamma_lookup_timeout_s=1.0,
        execution_mode=ExecutionMode.PAPER if paper else ExecutionMode.LIVE,
    )


@pytest.fixture
async def skill(
    exchange: LocalExchange, database_url: str, session_factory: SessionFactory, keybox: KeyBox
) -> AsyncIterator[PolymarketSkill]:
    built = create_polymarket_skill(skill_settings(exchange, database_url), session_factory, keybox)
    yield built
    await built.aclose()


@pytest.fixture
async def impatient_skill(
    exchange: LocalExchange, database_url: str, session_factory: SessionFactory, keybox: KeyBox
) -> AsyncIterator[PolymarketSkill]:
    """A skill that gives up on an answer after 0.5 s: for tests of answers that never come.

    The others get 5 s, so a loaded machine does not turn a slow answer into a lost one.
    """
    built = create_polymarket_skill(
        skill_settings(exchange, database_url, timeout_s=0.5), session_factory, keybox
    )
    yield built
    await built.aclose()


@pytest.fixture
async def paper_skill(
    exchange: LocalExchange, database_url: str, session_factory: SessionFactory, keybox: KeyBox
) -> AsyncIterator[PolymarketSkill]:
    built = create_polymarket_skill(
        skill_settings(exchange, database_url, paper=True), session_factory, keybox
    )
    yield built
    await built.aclose()


async def add_wallet(
    session_factory: SessionFactory, keybox: KeyBox, signature_type: int = 0
) -> Wallet:
    """A Secret row for a fresh key, its wallet classified as ``secrets create`` would."""
    private_key = "0x" + secrets.token_hex(32)
    info = classify_wallet(private_key, None, signature_type)
    async with session_factory() as session, session.begin():
        secret = Secret(
            name=f"test-{signature_type}",
            encrypted_private_key=keybox.encrypt(private_key),
            eoa_address=info.eoa_address,
            funder_address=info.funder_address,
            signature_type=info.signature_type,
        )
        session.add(secret)
        await session.flush()
        secret_id = secret.id
    return Wallet(secret_id, private_key, info.eoa_address, info.funder_address, signature_type)


@pytest.fixture
async def wallet(session_factory: SessionFactory, keybox: KeyBox) -> Wallet:
    return await add_wallet(session_factory, keybox, 0)


@pytest.fixture
def market(exchange: LocalExchange) -> MarketIds:
    ids = new_market_ids()
    exchange.create_market(ids.condition_id, [ids.yes, ids.no], title="Will it rain?")
    exchange.set_book(
        ids.yes,
        bids=[("0.50", "100"), ("0.48", "200"), ("0.45", "300")],
        asks=[("0.52", "100"), ("0.55", "200")],
    )
    return ids


async def set_policy(
    session_factory: SessionFactory,
    secret_id: str,
    policy_type: PolicyType,
    config: dict[str, object],
) -> None:
    async with session_factory() as session, session.begin():
        session.add(Policy(secret_id=secret_id, policy_type=policy_type, config=config))


def shares_of(exchange: LocalExchange, address: str, token_id: str) -> Decimal:
    return Decimal(exchange.balances(address)["shares"].get(token_id, "0"))


def collateral_of(exchange: LocalExchange, address: str) -> Decimal:
    return Decimal(exchange.balances(address)["collateral"])
