"""drf-spectacular hooks and answer shapes shared by every app's API."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse


def drop_trailing_slash_aliases(endpoints):
    """Routes accepted both with and without a trailing slash appear once, without it."""
    paths = {path for path, *_ in endpoints}
    return [
        endpoint
        for endpoint in endpoints
        if not (endpoint[0].endswith("/") and endpoint[0][:-1] in paths)
    ]


def csv_answer(description: str) -> dict:
    """The documented answer of an endpoint that streams a CSV download."""
    return {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=description)}
