"""drf-spectacular hooks shared by every app's API."""

from __future__ import annotations


def drop_trailing_slash_aliases(endpoints):
    """Routes accepted both with and without a trailing slash appear once, without it."""
    paths = {path for path, *_ in endpoints}
    return [
        endpoint
        for endpoint in endpoints
        if not (endpoint[0].endswith("/") and endpoint[0][:-1] in paths)
    ]
