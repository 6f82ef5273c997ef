"""The API's JSON parser: bounded in size and in nesting depth.

DRF's JSONParser reads the raw request stream, which skips Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check, and parses with `json.load`, which recurses once per
nesting level. Here a body over that size raises RequestDataTooBig (413 in the error
envelope) and a document nested deeper than JSON_MAX_DEPTH is a ParseError (400).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

from trading_site.core import safe_json


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            text = raw.decode(encoding)
            parse_constant = drf_json.strict_constant if self.strict else None
            return safe_json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:  # UnicodeDecodeError and JsonTooDeep included
            raise ParseError(f"JSON parse error - {exc}") from None
