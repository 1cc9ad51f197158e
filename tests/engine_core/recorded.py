"""Recorded-style market-channel payloads (tests/engine_core/payloads) and their token ids."""

from __future__ import annotations

from pathlib import Path

PAYLOADS = Path(__file__).parent / "payloads"

TOKEN_YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
TOKEN_NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def payload(name: str) -> str:
    """Return the frame text of ``payloads/<name>.json``."""
    return (PAYLOADS / f"{name}.json").read_text()
