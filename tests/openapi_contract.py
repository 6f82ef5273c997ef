"""The OpenAPI schema the server publishes, as a contract the API's real answers are validated
against (`nullable` read as JSON Schema's null alternative): `published_contract()`."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient

_URN = "urn:trading-desk:openapi"


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if "$ref" in converted:
        converted["$ref"] = _URN + converted["$ref"]
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class Contract:
    def __init__(self, document: dict):
        self.document = document
        resource = DRAFT202012.create_resource(_json_schema(document))
        self.registry = Registry().with_resource(_URN, resource)

    def response_schema(self, path: str, method: str, status: int) -> dict:
        operation = self.document["paths"][path][method]
        responses = operation["responses"]
        assert str(status) in responses, f"{method.upper()} {path} answers {status}, undocumented"
        content = responses[str(status)].get("content", {}).get("application/json")
        assert content, f"{method.upper()} {path} {status} has no documented body"
        return content["schema"]

    def validate(self, path: str, method: str, response) -> None:
        documented = self.document["paths"][path][method]["responses"].get(
            str(response.status_code), {}
        )
        if "text/csv" in documented.get("content", {}):
            # A CSV download (issue 13's exports): the documented type, and a header row.
            assert response["Content-Type"].startswith("text/csv"), (path, response.status_code)
            first = next(iter(response.streaming_content)).decode()
            assert first.strip() and "," in first, (path, first)
            return
        schema = _json_schema(self.response_schema(path, method, response.status_code))
        validator = Draft202012Validator(schema, registry=self.registry)
        problems = sorted(validator.iter_errors(response.json()), key=lambda e: e.path)
        assert not problems, f"{method.upper()} {path} {response.status_code}: " + "; ".join(
            f"{list(p.path)}: {p.message}" for p in problems[:5]
        )


def published_contract() -> Contract:
    """The schema GET /api/schema/ answers, as a Contract."""
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return Contract(response.json())
