"""``rasst retriever ...``: the retriever service's command line (a typer sub-app).

Mounted by the gateway CLI as ``rasst retriever``; ``python -m retriever.service``
runs the same ``serve`` command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

retriever_app = typer.Typer(help="The term retriever service.", no_args_is_help=True)


@retriever_app.callback()
def _group() -> None:
    """The term retriever service."""


@retriever_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8001,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Index cache (default: $RASST_DATA_DIR/retriever-cache if set)."),
    ] = None,
    batch_window_ms: Annotated[
        float, typer.Option(help="How long a batch waits for more requests.")
    ] = 5.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Most requests per batch.")] = 32,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Serve retrieval over HTTP (uvicorn)."""
    import uvicorn

    from retriever.encoder_factory import EncoderParams
    from retriever.service import ServiceParams, create_service_app
    from retriever.settings import RetrieverSettings

    if cache_dir is None and os.environ.get("RASST_DATA_DIR"):
        cache_dir = Path(os.environ["RASST_DATA_DIR"]) / "retriever-cache"
    # The encoder choice comes from the RASST_* environment (RASST_RETRIEVER_ENCODER,
    # RASST_NEURAL_*), validated here so a bad value fails before anything loads.
    settings = RetrieverSettings()
    app = create_service_app(
        ServiceParams(
            cache_dir=cache_dir,
            batch_window_seconds=batch_window_ms / 1000,
            max_batch=max_batch,
            encoder=EncoderParams.from_settings(settings),
        )
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
