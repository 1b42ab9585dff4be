"""Serving logic without Ray: request/response schemas, limits (``serve/`` wraps it in Ray Serve)."""
