"""Positions (live MTM), exits, and delivery holdings (SPEC 13's later additions).

GET /api/positions[?account_id=]: every position of the caller's active accounts (or one),
valued at the latest price; totals per kind of money (paper and live never added).
POST /api/positions/exit {account_id, exchange_segment, exchange_instrument_id,
product_type}: a MARKET order for the net quantity through the write-ahead path (200 with
what was sent; 409 when nothing could be sent, with why). POST /api/positions/exit-all
{account_id, "confirm": "EXIT ALL"}: every position of the account. A bracket whose position
was not exited keeps its stop-loss and targets, or gets them back at once
(`protected_order_ids`, and `protected` in words); `unprotected_order_ids` are those whose
stop-loss could not be placed (act at the broker). GET /api/holdings.
Another user's account is a 404; a live broker outside the trading window is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import BrokerAccount
from accounts.selectors import active_broker_account_for
from orders.positions import holdings, selectors, services
from orders.positions.api import serializers as s
from orders.services.audit import user_actor
from orders.validation import check_trading_window
from trading_site.core.errors import Conflict

ACCOUNT_ID = OpenApiParameter("account_id", int, description="One account (default: all)")


def _account_filter(request) -> int | None:
    query = s.AccountFilterSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    account_id = query.validated_data.get("account_id")
    if account_id is not None:
        active_broker_account_for(user=request.user, account_id=account_id)  # 404 if not theirs
    return account_id


# GET the caller's book (every active account's, or `account_id`'s): `read` it, shape it with
# `present` and answer it as `answer` documents it (its schema too). (No docstring: the schema
# describes an endpoint by the docstring its view inherits.)
class _AccountBookView(APIView):
    rate_limit_group = "read"
    read: Callable[..., Any]
    present: Callable[[Any], dict[str, Any]]
    answer: type[serializers.Serializer]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        extend_schema_view(get=extend_schema(parameters=[ACCOUNT_ID], responses=cls.answer))(cls)

    def get(self, request):
        book = self.read(user=request.user, account_id=_account_filter(request))
        return Response(self.answer(self.present(book)).data)


class PositionsView(_AccountBookView):
    read = staticmethod(selectors.positions_for)
    present = staticmethod(s.positions_body)
    answer = s.PositionsResponseSerializer


def _exit_request(
    request, serializer_class: type[serializers.Serializer]
) -> tuple[BrokerAccount, dict[str, Any]]:
    """The exit's body, parsed, and its account: the caller's, inside the trading window."""
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    account = active_broker_account_for(user=request.user, account_id=data["account_id"])
    check_trading_window(account)
    return account, data


def _exit_response(result: services.ExitResult) -> Response:
    body = s.ExitResultSerializer(s.exit_body(result)).data
    if not result.exited and result.errors:
        protection = " ".join(result.words)
        raise Conflict(
            "Nothing was sent: "
            + "; ".join(result.errors)
            + (f". {protection}" if protection else ""),
            details=dict(body),
        )
    return Response(body)


_EXIT_ANSWERS = {
    200: s.ExitResultSerializer,
    409: OpenApiResponse(
        description="CONFLICT: nothing could be sent (`details`: the exit's result, why in "
        "`error`); MARKET_CLOSED: a live broker outside the trading window"
    ),
}


# POST an exit: the body parsed by `body` (documented as the request), the account's positions
# named by `keys_of` (all of them when None) squared off. (No docstring, as above.)
class _ExitView(APIView):
    rate_limit_group = "orders"
    body: type[serializers.Serializer]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        operation = extend_schema(request=cls.body, responses=_EXIT_ANSWERS)
        extend_schema_view(post=operation)(cls)

    def keys_of(self, data: dict[str, Any]) -> set[services.PositionKey] | None:
        return None

    def post(self, request):
        account, data = _exit_request(request, self.body)
        result = services.exit_positions(
            account=account, actor=user_actor(request.user), keys=self.keys_of(data)
        )
        return _exit_response(result)


class ExitPositionView(_ExitView):
    body = s.ExitPositionSerializer

    def keys_of(self, data):
        return {(data["exchange_segment"], data["exchange_instrument_id"], data["product_type"])}


class ExitAllPositionsView(_ExitView):
    body = s.ExitAllSerializer


class HoldingsView(_AccountBookView):
    read = staticmethod(holdings.holdings_for)
    present = staticmethod(s.holdings_body)
    answer = s.HoldingsResponseSerializer
