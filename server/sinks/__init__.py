"""Caption sinks: a session's captions delivered to Zoom, YouTube Live or a webhook.

A sink follows the session's feed (server.feeds) like an audience viewer, so it never
slows the session: a sink that cannot keep up loses its place in the feed and stops,
and a failed delivery is retried, then reported as a ``sink_failed`` warning.
"""
