"""The glossary router and store alone, in process, for the router's own tests.

The same router, store and error handlers as ``server.app.create_app`` without
the speech workers, so each of the many API tests starts in milliseconds. Tests
of the running service (CLI, crash durability, sessions) use the real
``rasst serve`` process instead (tests/support/live_server.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from glossary.router import router
from glossary.store import GlossaryStore
from server.app import install_error_handlers
from server.settings import Settings


def create_test_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = GlossaryStore.from_settings(settings)
        store.create_schema()
        app.state.glossary_store = store
        app.state.settings = settings
        try:
            yield
        finally:
            store.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    install_error_handlers(app)
    return app
