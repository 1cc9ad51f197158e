"""Run the real worker in its own process until killed (the crash-recovery test's victim).

Usage: ``python -m tests.engine.worker_process`` with ``VINCENT_TEST_WORKER`` holding a JSON
object of Settings values and ``VINCENT_TEST_KEYBOX`` the test's Fernet key. Prints READY
once the worker runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.session import create_engine, create_session_factory
from vincent.services.trade_manager import start_trade_monitoring_worker
from vincent.skills.polymarket import create_polymarket_skill


async def main() -> None:
    settings = Settings(**json.loads(os.environ["VINCENT_TEST_WORKER"]))
    keybox = KeyBox(os.environ["VINCENT_TEST_KEYBOX"])
    engine = create_engine(settings.database_url)
    session_factory = create_session_factory(engine)
    skill = create_polymarket_skill(settings, session_factory, keybox)
    await start_trade_monitoring_worker(settings, session_factory, skill)
    print("READY", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
