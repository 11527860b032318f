"""Evaluation harness: synthesise talks, stream them through the gateway, score the events.

A client of the gateway like any other: it talks to it over REST and WebSocket only.
``rasst data synth`` builds the audio, ``rasst eval`` runs and scores, ``bench/eval_sweep.py``
repeats ``rasst eval`` over lm and glossary sizes. See docs/evaluation.md.
"""
