"""``secrets.policies_version``: raised by the database on every change of a secret's
policies, by any writer, and only that secret's; the skill's ``InputsCache`` is bounded."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.skill.conftest import add_wallet
from vincent.crypto import KeyBox
from vincent.db.base import new_id, utcnow
from vincent.db.models import Policy, Secret
from vincent.db.session import SessionFactory
from vincent.enums import PolicyType
from vincent.services import policies
from vincent.skills.polymarket.bet_inputs import NO_SPENDING, BetInputs, InputsCache
from vincent.skills.polymarket.clients import WalletRef


async def _version(session_factory: SessionFactory, secret_id: str) -> int:
    async with session_factory() as session:
        version = await session.scalar(
            sa.select(Secret.policies_version).where(Secret.id == secret_id)
        )
    assert version is not None
    return version


async def test_every_change_of_a_secrets_policies_raises_its_version_and_no_other(
    session_factory: SessionFactory, keybox: KeyBox
) -> None:
    wallet = await add_wallet(session_factory, keybox)
    other = await add_wallet(session_factory, keybox)
    assert await _version(session_factory, wallet.secret_id) == 0

    async with session_factory() as session:  # the owner's service (CLI, admin API)
        await policies.set_policy(
            session, wallet.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 10}
        )
    assert await _version(session_factory, wallet.secret_id) == 1
    async with session_factory() as session:  # replaced: an UPDATE
        await policies.set_policy(
            session, wallet.secret_id, PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 5}
        )
    assert await _version(session_factory, wallet.secret_id) == 2
    async with session_factory() as session, session.begin():  # a raw INSERT, no service
        await session.execute(
            sa.insert(Policy).values(
                id=new_id(),
                secret_id=wallet.secret_id,
                policy_type=PolicyType.REQUIRE_APPROVAL,
                config={"enabled": True},
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    assert await _version(session_factory, wallet.secret_id) == 3
    async with session_factory() as session:
        await policies.delete_policy(session, wallet.secret_id, PolicyType.REQUIRE_APPROVAL)
    assert await _version(session_factory, wallet.secret_id) == 4
    async with session_factory() as session, session.begin():  # a raw DELETE of the rest
        await session.execute(sa.delete(Policy).where(Policy.secret_id == wallet.secret_id))
    assert await _version(session_factory, wallet.secret_id) == 5
    assert await _version(session_factory, other.secret_id) == 0


def _inputs(version: int) -> BetInputs:
    wallet = WalletRef("s", "0xeoa", "0xfunder", 0)
    return BetInputs(wallet, [], NO_SPENDING, None, version=version)


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.booleans()), max_size=60))
def test_the_inputs_cache_keeps_the_newest_entries_up_to_its_bound(
    steps: list[tuple[str, bool]],
) -> None:
    cache = InputsCache(max_secrets=3)
    model: dict[str, int] = {}  # insertion-ordered, like the cache is meant to be
    for n, (secret_id, remember) in enumerate(steps):
        if remember:
            cache.remember(secret_id, _inputs(n))
            model.pop(secret_id, None)
            model[secret_id] = n
            while len(model) > 3:
                del model[next(iter(model))]
        else:
            cache.forget(secret_id)
            model.pop(secret_id, None)
        assert len(cache) == len(model)
    for secret_id in "abcdefgh":
        held = cache.get(secret_id)
        assert (None if held is None else held.version) == model.get(secret_id)
