"""A Deepgram-compatible live endpoint (``/v1/listen``) over RASST sessions (docs/integrations.md)."""
