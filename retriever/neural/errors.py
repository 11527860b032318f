"""Errors of the neural retriever, each naming the model, file or key at fault."""

from __future__ import annotations


class NeuralRetrieverError(Exception):
    """Base class: anything that stops the neural retriever from loading or running."""


class ModelLoadError(NeuralRetrieverError):
    """A base model (by id or path) could not be loaded."""


class CheckpointError(NeuralRetrieverError):
    """A checkpoint or adapter directory is missing, incomplete or does not fit the model."""
