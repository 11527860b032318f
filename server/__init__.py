"""The streaming gateway: WebSocket protocol, per-session pipeline, CLI, metrics."""
