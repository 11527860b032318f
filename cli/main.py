"""The ``rasst`` command line: the composition root of the command-line tools.

It is the only module that sees every package: the gateway (``serve``, ``stream``), glossaries,
the retriever service, evaluation and training. Each package owns its commands; this file only
mounts them, so the gateway itself never imports the offline applications.
"""

from __future__ import annotations

import sys

import typer

from server.cli import app as gateway_app


def build_app() -> typer.Typer:
    # Sub-apps import their heavy extras (sacrebleu, matplotlib, torch) lazily, so
    # mounting them costs nothing for `rasst serve`.
    from evaluation.cli import data_app, eval_command
    from glossary.cli import glossary_app
    from retriever.cli import retriever_app
    from server.subtitles_cli import subtitles_command
    from training.cli import train_app

    app = typer.Typer(
        name="rasst",
        help="Terminology-aware simultaneous speech translation: server and clients.",
        no_args_is_help=True,
        add_completion=False,
    )
    app.registered_commands.extend(gateway_app.registered_commands)
    app.add_typer(glossary_app, name="glossary", help="Upload and manage glossaries.")
    app.add_typer(retriever_app, name="retriever", help="The term retriever service.")
    app.add_typer(data_app, name="data", help="Evaluation data: synthesise talk audio.")
    app.add_typer(train_app, name="train", help="Speech-LLM SFT data, LoRA, term_map ablation.")
    app.command("eval")(eval_command)
    app.command("subtitles")(subtitles_command)
    return app


def main() -> None:
    app = build_app()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
