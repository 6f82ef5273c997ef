"""The OpenAPI schema's error answers and list bounds (a drf-spectacular postprocessing hook).

Every error under /api/ is the one envelope (trading_site.core.api.errors), but the views only
document their successes: a client generated from the schema knew nothing of 400, 401, 404,
413 or 429. This hook adds them to every operation, each pointing at one `Error` component
(429 with `retry_after`), keeping any description a view gave. It also documents the bounds
the paginator enforces on `limit` and `offset` (outside them: a 400).
"""

from __future__ import annotations

from typing import Any

from trading_site.core import errors
from trading_site.core.api.pagination import MAX_OFFSET, LimitOffsetTotalPagination

_CODES = [
    errors.VALIDATION_ERROR,
    errors.METHOD_NOT_ALLOWED,
    errors.AUTHENTICATION_FAILED,
    errors.PERMISSION_DENIED,
    errors.NOT_FOUND,
    errors.RATE_LIMITED,
    errors.CONFLICT,
    errors.MARKET_CLOSED,
    errors.TRADING_LOCKED,
    errors.BROKER_REJECTED,
    errors.BROKER_UNAVAILABLE,
    errors.INTERNAL_ERROR,
]

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error under /api/.",
    "properties": {
        "error": {"type": "string", "description": "One line for a human."},
        "code": {"type": "string", "enum": _CODES},
        "details": {"type": "object", "additionalProperties": True},
    },
    "required": ["error", "code", "details"],
}
RATE_LIMITED_SCHEMA = {
    "allOf": [
        {"$ref": "#/components/schemas/Error"},
        {
            "type": "object",
            "properties": {"retry_after": {"type": "integer", "minimum": 1}},
            "required": ["retry_after"],
        },
    ]
}

_DESCRIPTIONS = {
    "400": "VALIDATION_ERROR: a field, query parameter or JSON body is not valid "
    "(details name the fields); JSON nested too deep",
    "401": "AUTHENTICATION_FAILED: no valid bearer token or session",
    "403": "PERMISSION_DENIED: not allowed, or a cookie-authenticated write without CSRF",
    "404": "NOT_FOUND: no such object among yours",
    "413": "VALIDATION_ERROR: the body is larger than the server accepts",
    "429": "RATE_LIMITED: slow down; retry after `retry_after` seconds (also the "
    "Retry-After header)",
    "500": "INTERNAL_ERROR: details.request_id identifies the failure in the logs",
}


def _error_content(status: str) -> dict[str, Any]:
    schema = (
        {"$ref": "#/components/schemas/RateLimitedError"}
        if status == "429"
        else {"$ref": "#/components/schemas/Error"}
    )
    return {"application/json": {"schema": schema}}


# A query parameter or body field naming one of the caller's accounts: another user's (or no)
# account is a 404, as an object in the path is.
_ACCOUNT_FIELDS = frozenset({"account_id", "bound_account_id"})


def _body_fields(schema: dict, schemas: dict) -> set[str]:
    if "$ref" in schema:
        return _body_fields(schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}), schemas)
    fields = set(schema.get("properties", {}))
    for part in schema.get("allOf", []) + schema.get("oneOf", []) + schema.get("anyOf", []):
        fields |= _body_fields(part, schemas)
    return fields


def _names_an_account(operation: dict, schemas: dict) -> bool:
    names = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
    for content in operation.get("requestBody", {}).get("content", {}).values():
        names |= _body_fields(content.get("schema", {}), schemas)
    return bool(names & _ACCOUNT_FIELDS)


def _statuses_for(path: str, method: str, operation: dict, schemas: dict) -> list[str]:
    statuses = ["400", "429", "500"]
    if operation.get("security") != [{}] and path != "/api/login":
        statuses += ["401", "403"]
    if "{" in path or _names_an_account(operation, schemas):
        statuses.append("404")
    if "requestBody" in operation or method in ("post", "put", "patch"):
        statuses.append("413")
    return statuses


def _bound_paging(operation: dict) -> None:
    top = LimitOffsetTotalPagination.max_limit
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        if parameter.get("name") == "limit":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": top}
            parameter["description"] = (
                f"Rows per page, 1 to {top} (default depends on the list); "
                "outside that range: 400 VALIDATION_ERROR"
            )
        elif parameter.get("name") == "offset":
            parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
            parameter["description"] = "Rows to skip; negative or too large: 400"


def document_errors(result: dict, generator, request, public) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["RateLimitedError"] = RATE_LIMITED_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in list(responses.items()):
                if status.startswith(("4", "5")) and "content" not in response:
                    response["content"] = _error_content(status)
            for status in _statuses_for(path, method, operation, schemas):
                responses.setdefault(
                    status,
                    {"description": _DESCRIPTIONS[status], "content": _error_content(status)},
                )
            _bound_paging(operation)
    return result
