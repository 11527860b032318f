"""Metrics over recorded gateway events: retrieval, translation quality, latency, cost."""
