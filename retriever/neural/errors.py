"""Errors of the neural retriever, each naming the model, file or key at fault."""

from __future__ import annotations


class NeuralRetrieverError(Exception):
    """Base class: anything that stops the neural retriever from loading or running."""


class ModelLoadError(NeuralRetrieverError):
    """A base model (by id or path) could not be loaded."""


class CheckpointError(NeuralRetrieverError):
    """A checkpoint or adapter directory is missing, incomplete or does not fit the model."""


class NeuralStackMissing(NeuralRetrieverError):
    """torch / transformers / peft are not installed."""


def require_neural_stack() -> None:
    """Raise :class:`NeuralStackMissing` with the install command when the stack is absent."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise NeuralStackMissing(
            f"the neural retriever needs {', '.join(missing)}: install torch first "
            "(`pip install torch==2.13.0` for CPU, or your CUDA build), then "
            "`pip install 'rasst[neural]'`"
        )
