"""``vincent serve``'s app freezes what its start built (``create_app(gc_freeze=True)``):
full collections then walk only what requests make, not the libraries and the app."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import api_settings
from vincent.app import create_app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # what a test froze is collectable again


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("gc_freeze", [True, False])
def test_the_served_app_freezes_what_its_start_built(database_url: str, gc_freeze: bool) -> None:
    app = create_app(api_settings(database_url), skill_factory=None, gc_freeze=gc_freeze)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        frozen = gc.get_freeze_count()
    if gc_freeze:
        assert frozen > 10_000  # the imported libraries and the app, at least
    else:
        assert frozen == 0
