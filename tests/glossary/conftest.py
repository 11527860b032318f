from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from glossary.store import GlossaryStore
from server.settings import Settings
from tests.glossary.app_for_tests import create_test_app
from tests.support.postgres import PostgresServer, postgres  # noqa: F401  (fixture)

SHARED_GLOSSARIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "glossaries"
ADMIN_KEY = "admin-secret-for-tests"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'glossaries.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def store(database_url: str) -> Iterator[GlossaryStore]:
    store = GlossaryStore.from_url(database_url)
    store.create_schema()
    yield store
    store.close()


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(db_url=database_url, data_dir=tmp_path, admin_key=ADMIN_KEY, **overrides)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, reached in-process over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_test_app(make_settings(database_url, tmp_path))) as test_client:
        yield test_client


@pytest.fixture
async def auth_client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_test_app(make_settings(database_url, tmp_path, auth_enabled=True))
    async with serve(app) as test_client:
        yield test_client
