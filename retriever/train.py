"""``python -m retriever.train``: training the neural retriever (see :mod:`retriever.neural.commands`)."""

from __future__ import annotations


def main() -> None:
    from retriever.neural.commands import main as run

    run()


if __name__ == "__main__":
    main()
