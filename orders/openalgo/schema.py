"""The OpenAlgo API in the OpenAPI schema (/api/schema/, /api/docs/): its credential, the
request bodies (OpenAlgo sends numbers as strings) and its own answer envelope."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from trading_site.core.api.schema import SecurityScheme

TAG = "OpenAlgo-compatible API"


class BodyApiKeyScheme(SecurityScheme):
    target_class = "orders.openalgo.auth.BodyApiKeyAuthentication"
    name = "openalgoApiKey"
    definition = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-KEY",
        "description": (
            "One of the desk's API keys (`tdk_...`) bound to one broker account, sent "
            "as OpenAlgo clients do: `apikey` in the JSON body (OpenAPI cannot describe a "
            "body credential; the `X-API-KEY` header is read too). A `read` key may call "
            "every read; placing, changing and cancelling need a `trade` key. A bad key "
            "is 403."
        ),
    }


def _text(help_text: str = "", required: bool = False) -> serializers.CharField:
    return serializers.CharField(required=required, help_text=help_text)


APIKEY = {"apikey": _text("the API key", required=True)}
STRATEGY = {"strategy": _text("strategy name: one of yours, made on first use")}
ORDER_FIELDS = {
    "symbol": _text("OpenAlgo symbol: RELIANCE, NIFTY28MAR24FUT, NIFTY28MAR2420800CE", True),
    "exchange": _text("NSE, BSE, NFO, BFO, CDS, MCX", True),
    "action": _text("BUY or SELL", True),
    "pricetype": _text("MARKET (default), LIMIT, SL, SL-M"),
    "product": _text("MIS (default), NRML, CNC"),
    "quantity": _text("units (a multiple of the lot size)", True),
    "price": _text("LIMIT and SL: the limit price; 0 or absent otherwise"),
    "trigger_price": _text("SL and SL-M: the trigger price; 0 or absent otherwise"),
    "disclosed_quantity": _text("0 only (not supported)"),
}
INSTRUMENT_FIELDS = {name: ORDER_FIELDS[name] for name in ("symbol", "exchange")}
ORDER_ID = {"orderid": _text("the desk's order id", True)}
BRACKET_FIELDS = {
    "stoploss": _text("desk extension: with it the order is a bracket (LIMIT or SL entry)"),
    "target": _text("desk extension: the bracket's target price (needs stoploss)"),
    "trailing_sl": _text("0 only: trailing stops are set on the strategy in the desk"),
}

_ERROR = inline_serializer(
    name="OpenAlgoError",
    fields={
        "status": serializers.CharField(help_text='always "error"'),
        "message": serializers.CharField(),
    },
)
ERRORS = {
    400: OpenApiResponse(_ERROR, description="a field is missing or wrong (named in message)"),
    401: OpenApiResponse(_ERROR, description="not used: a missing or bad apikey is 403"),
    403: OpenApiResponse(
        _ERROR, description="bad, unbound or read-only (for writes) apikey; account off"
    ),
    404: OpenApiResponse(_ERROR, description="no such order on the key's account"),
    409: OpenApiResponse(
        _ERROR,
        description="the same request is still being handled; or `code` TRADING_LOCKED: the "
        "kill switch locked the account",
    ),
    429: OpenApiResponse(_ERROR, description="rate limited: see Retry-After"),
    500: OpenApiResponse(_ERROR, description="the broker did not answer, or an internal error"),
    503: OpenApiResponse(
        _ERROR,
        description="`code` NOT_SENT, `retryable` true: the order never reached the broker "
        "(nothing placed); send the same request again after Retry-After",
    ),
}


def request_body(name: str, **fields) -> serializers.Serializer:
    return inline_serializer(name=f"OpenAlgo{name}Request", fields={**APIKEY, **fields})


def answer(name: str, **fields) -> dict:
    """The documented answers of one endpoint: 200 with `fields`, and the errors."""
    body = inline_serializer(
        name=f"OpenAlgo{name}Answer",
        fields={"status": serializers.CharField(help_text='always "success"'), **fields},
    )
    return {200: OpenApiResponse(body), **ERRORS}


def any_object(help_text: str = "") -> serializers.DictField:
    return serializers.DictField(help_text=help_text)


def any_list(help_text: str = "") -> serializers.ListField:
    return serializers.ListField(child=serializers.DictField(), help_text=help_text)
