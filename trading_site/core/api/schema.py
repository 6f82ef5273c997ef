"""drf-spectacular hooks and answer shapes shared by every app's API."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
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


class SecurityScheme(OpenApiAuthenticationExtension):
    """An authentication class's security scheme, declared as data: the class's dotted path
    (`target_class`), the scheme's `name` and its OpenAPI Security Scheme Object
    (`definition`)."""

    definition: ClassVar[dict[str, str]] = {}

    def get_security_definition(self, auto_schema):
        return self.definition
