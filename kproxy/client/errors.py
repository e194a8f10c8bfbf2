"""Client-side failures that are not answers from the server.

A server that answered with a failure raises kproxy.api.status.ApiError (its Status); a server
that could not be reached, or broke the connection, raises ApiConnectionError.
"""
from __future__ import annotations


class ApiConnectionError(ConnectionError):
    """The apiserver could not be reached or the connection broke (retryable)."""
