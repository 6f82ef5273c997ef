"""Limit/offset pagination that answers {<items>, total, limit, offset}."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from trading_site.core.errors import ValidationFailed

# Past this the database refuses the OFFSET (and no list is that long).
MAX_OFFSET = 2**63 - 1


class LimitOffsetTotalPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
    results_key = "results"

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        try:
            limit = int(raw)
        except ValueError:
            raise ValidationFailed("limit must be an integer", details={"limit": [raw]}) from None
        if limit < 1 or limit > self.max_limit:
            raise ValidationFailed(
                f"limit must be between 1 and {self.max_limit}", details={"limit": [raw]}
            )
        return limit

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param, "0")
        try:
            offset = int(raw)
        except ValueError:
            raise ValidationFailed("offset must be an integer", details={"offset": [raw]}) from None
        if offset < 0 or offset > MAX_OFFSET:
            raise ValidationFailed(
                f"offset must be between 0 and {MAX_OFFSET}", details={"offset": [raw]}
            )
        return offset

    def get_paginated_response(self, data):
        return self.paginated_response(data, total=self.count, limit=self.limit, offset=self.offset)

    def paginated_response(
        self, data, *, total: int | None, limit: int | None, offset: int | None
    ) -> Response:
        """The envelope, for a view that read its page and count itself (in one statement,
        say) after `get_limit` and `get_offset` checked the request."""
        return Response({self.results_key: data, "total": total, "limit": limit, "offset": offset})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "properties": {
                self.results_key: schema,
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        }
