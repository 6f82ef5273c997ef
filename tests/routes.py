"""The project's routes, for the tests that hold every view (or every API view) to a rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.urls import get_resolver
from django.urls.resolvers import URLResolver


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, Callable]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def all_routes() -> Iterator[tuple[str, Callable]]:
    """(route, view callback) of every route of the root URLconf, nested ones joined up."""
    return _walk(get_resolver().url_patterns)


def api_routes() -> Iterator[tuple[str, Callable]]:
    """(route, view callback) of every route under api/, but the prefixes ending in "/"."""
    for route, callback in all_routes():
        if route.startswith("api/") and not route.endswith("/"):
            yield route, callback
