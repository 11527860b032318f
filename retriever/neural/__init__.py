"""The paper's neural retriever: Qwen3-Omni audio encoder + BGE-M3, adapted with LoRA.

Nothing here is imported by the embedded default, and no module of this package
imports torch at import time (``config`` and ``lora`` not at all), so the
service can read the configuration and pick an encoder without the neural
stack installed. Entry points:

* :func:`retriever.neural.encoder.load_neural_encoders` — the
  :class:`~retriever.encoders.SpeechEncoder` / :class:`~retriever.encoders.TermEncoder`
  pair the index and the chunk retriever use;
* :mod:`retriever.neural.train` — ``python -m retriever.train``;
* :mod:`retriever.neural.data_builder` — TTS training data for domain adaptation.
"""
